"""Remote functions against a real runner and real workers: calls, maps, spawns, policies."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbremote as nr
from nbremote._session import RemoteSession
from nbremote.errors import RemoteError, SerializationError
from tests.conftest import RunningRunner

app = nr.App("tests")


@app.function
def square(x: int) -> int:
    return x * x


@app.function
def pid_after(seconds: float) -> str:
    """Which worker (or process) ran it: in a sandbox every worker's pid is 2."""
    time.sleep(seconds)
    return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"three is bad ({x})")
    return x


failing = app.function(fails_on_three)


def test_plain_call_runs_here_remote_call_runs_there(remote_session: RemoteSession) -> None:
    assert pid_after(0) == str(os.getpid()) == pid_after.local(0)
    assert pid_after.remote(0) != str(os.getpid())
    assert square.remote(12) == 144


def test_globals_are_read_at_call_time(remote_session: RemoteSession) -> None:
    namespace: dict[str, object] = {"nr": nr, "app": app}
    exec("factor = 2\n@app.function\ndef scale(x):\n    return x * factor\n", namespace)
    scale = namespace["scale"]
    assert scale.remote(5) == 10  # type: ignore[attr-defined]
    namespace["factor"] = 7
    assert scale.remote(5) == 35  # type: ignore[attr-defined]


def test_remote_exception_carries_the_remote_traceback(remote_session: RemoteSession) -> None:
    with pytest.raises(ValueError, match=r"three is bad \(3\)") as caught:
        failing.remote(3)
    assert isinstance(caught.value, RemoteError)
    text = "".join(caught.value._render_traceback_())
    assert "fails_on_three" in text and "raise ValueError" in text


def test_unpicklable_argument_is_named_before_sending(remote_session: RemoteSession) -> None:
    @app.function
    def takes_two(a: int, rows: object) -> int:
        return a

    with pytest.raises(SerializationError) as caught:
        takes_two.remote(1, (row for row in range(3)))
    assert caught.value.name == "argument 1 (rows)"
    assert "generator" in caught.value.reason


def test_map_keeps_order_and_streams_lazily(remote_session: RemoteSession) -> None:
    assert list(square.map(range(2000))) == [x * x for x in range(2000)]
    assert list(square.starmap([(2,), (3,)])) == [4, 9]
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        while True:  # endless: the map must read only as far as results are taken
            pulled += 1
            yield pulled

    results = square.map(numbers())
    first = list(itertools.islice(results, 10))
    assert first == [x * x for x in range(1, 11)]
    assert pulled < 20_000  # an endless input: read only as far as results are taken
    results.close()  # type: ignore[attr-defined]


def test_map_over_a_large_generator_streams(remote_session: RemoteSession) -> None:
    total = sum(square.map(x % 10 for x in range(100_000)))
    assert total == 10_000 * sum(x * x for x in range(10))


def test_map_failures_raise_or_come_back_in_place(remote_session: RemoteSession) -> None:
    outcomes = list(failing.map(range(6), return_exceptions=True))
    assert outcomes[:3] == [0, 1, 2] and outcomes[4:] == [4, 5]
    assert isinstance(outcomes[3], ValueError) and "input #3" in str(outcomes[3].__notes__)
    with pytest.raises(ValueError, match="three is bad"):
        list(failing.map(range(6)))
    assert square.remote(3) == 9  # the session is still fine


def test_error_in_the_middle_of_the_iterable_fails_the_map_cleanly(
    remote_session: RemoteSession,
) -> None:
    def broken() -> Iterator[int]:
        yield from range(50)
        raise RuntimeError("the data source broke")

    with pytest.raises(RuntimeError, match="the data source broke"):
        list(square.map(broken()))
    assert square.remote(4) == 16


def test_spawn_get_from_another_process_and_timeout(
    remote_session: RemoteSession, runner: RunningRunner, tmp_path: Path
) -> None:
    call = pid_after.spawn(1.5)
    with pytest.raises(TimeoutError, match="still running"):
        call.get(timeout=0.2)
    code = (
        "import nbremote as nr\nfrom nbremote import _session\n"
        f"_session.connect({runner.url!r}, {runner.token!r})\n"
        f"print(nr.FunctionCall.from_id({call.object_id!r}).get(timeout=30))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == call.get(timeout=30) != str(os.getpid())


def test_cancel_a_spawned_call(remote_session: RemoteSession) -> None:
    call = pid_after.spawn(30)
    time.sleep(0.5)
    call.cancel()
    started = time.monotonic()
    with pytest.raises(RemoteError, match="cancelled"):
        call.get(timeout=20)
    assert time.monotonic() - started < 10


def test_closing_a_map_early_cancels_the_rest(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()

    @app.function(max_containers=2)
    def slow(i: int) -> int:
        import pathlib
        import time

        time.sleep(0.3)
        pathlib.Path(marks, str(i)).touch()
        return i

    results = slow.map(range(40))
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]
    time.sleep(1.5)
    assert len(list(marks.iterdir())) < 20


def test_retries_rerun_failed_inputs(remote_session: RemoteSession, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"

    @app.function(retries=nr.Retries(max_retries=3, initial_delay=0.0, backoff_coefficient=1.0))
    def flaky() -> str:
        with open(attempts, "a") as log:
            log.write("x")
        if len(attempts.read_text()) < 3:
            raise ConnectionError("try again")
        return "ok"

    assert flaky.remote() == "ok"
    assert attempts.read_text() == "xxx"


def test_timeout_stops_the_input_and_replaces_the_worker(remote_session: RemoteSession) -> None:
    @app.function(timeout=1)
    def sleepy(seconds: float) -> str:
        time.sleep(seconds)
        return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))

    first = sleepy.remote(0)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"input #0 ran longer than its timeout of 1 s"):
        sleepy.remote(30)
    assert time.monotonic() - started < 10
    assert sleepy.remote(0) != first


@app.function
def span(seconds: float) -> tuple[str, float, float]:
    """Which worker ran it, and when (wall clock: the same for every process here)."""
    began = time.time()
    time.sleep(seconds)
    return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid())), began, time.time()


def most_at_once(spans: list[tuple[str, float, float]]) -> int:
    """How many of ``spans`` ran at the same moment, at most."""
    return max(sum(b <= start < e for _, b, e in spans) for _, start, _ in spans)


def test_max_containers_bounds_concurrency(remote_session: RemoteSession) -> None:
    one = list(span.with_options(max_containers=1).map([0.2] * 4))
    assert len({pid for pid, _, _ in one}) == 1 and most_at_once(one) == 1
    two = list(span.with_options(max_containers=2).map([0.5] * 4))
    assert len({pid for pid, _, _ in two}) == 2
    assert most_at_once(two) <= 2  # never more than two at a time


def test_min_containers_and_scaledown_window(remote_session: RemoteSession) -> None:
    @app.function(min_containers=2, scaledown_window=1)
    def warm() -> int:
        return os.getpid()

    warm.remote()
    time.sleep(1.0)
    assert len(remote_session.describe().workers) == 2  # kept warm while idle

    @app.function(scaledown_window=1)
    def cold() -> int:
        return os.getpid()

    cold.remote()
    workers = len(remote_session.describe().workers)
    # Gone about a window after its last use (a direct call's lease first lets go: <= 1 s).
    deadline = time.monotonic() + 6
    while len(remote_session.describe().workers) == workers and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(remote_session.describe().workers) == workers - 1


def test_old_modal_names_warn_and_map_to_new_ones() -> None:
    with pytest.warns(
        DeprecationWarning, match="`concurrency_limit` is deprecated, use `max_containers`"
    ):
        fn = app.function(concurrency_limit=3)(fails_on_three)
    assert fn.options.max_containers == 3
    with pytest.warns(DeprecationWarning, match="`keep_warm` is deprecated, use `min_containers`"):
        assert app.function(keep_warm=1)(fails_on_three).options.min_containers == 1
    with pytest.warns(DeprecationWarning, match="`container_idle_timeout` is deprecated"):
        assert app.function(container_idle_timeout=9)(fails_on_three).options.scaledown_window == 9


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"timeout": 0}, ValueError, "timeout=0: must be a positive"),
        ({"retries": 11}, ValueError, "max_retries=11"),
        ({"retries": "3"}, TypeError, "retries must be an int"),
        ({"max_containers": 0}, ValueError, "max_containers=0"),
        ({"gpu": "A100:0"}, ValueError, "fails_on_three: the count in .A100:0."),
        ({"colour": "red"}, TypeError, "unexpected settings colour"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    settings: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        app.function(**settings)(fails_on_three)


def test_nbremote_run_runs_the_entrypoint_or_a_function(runner: RunningRunner) -> None:
    script = Path(__file__).parents[2] / "examples" / "squares.py"
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    command = [sys.executable, "-m", "nbremote", "run"]
    result = subprocess.run(
        [*command, str(script)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "sum of squares below 100: 328350" in result.stdout
    assert "squaring 99 on the runner" in result.stdout  # remote output is printed as it comes
    one = subprocess.run(
        [*command, f"{script}::square"], capture_output=True, text=True, timeout=60, env=env
    )
    assert one.stdout.strip().splitlines()[-1] == "49"
    bad = subprocess.run(
        [*command, f"{script}::nope"], capture_output=True, text=True, timeout=60, env=env
    )
    assert (
        bad.returncode == 2
        and "has no entrypoint or function 'nope' (it has: main, square)" in bad.stderr
    )
