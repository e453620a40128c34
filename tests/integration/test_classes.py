"""Remote classes against a real runner: lifecycle hooks, parameters, containers, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import nbremote as nr
from nbremote._session import RemoteSession

app = nr.App("class-tests")


def make_counter(log: Path, **settings: object) -> nr.Cls:
    @app.cls(**settings)
    class Counter:
        start: int = nr.parameter(default=0)

        @nr.enter()
        def open(self) -> None:
            import os

            with open(log, "a") as out:  # which container (in a sandbox each pid is 2)
                out.write(f"enter {self.start} {os.environ.get('NBREMOTE_TASK_ID')}\n")
            self.total = self.start

        @nr.method()
        def add(self, x: int) -> int:
            self.total += x
            return self.total

        @nr.method()
        def pid(self) -> str:
            import os

            return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))  # which container

        @nr.exit()
        def close(self) -> None:
            with open(log, "a") as out:
                out.write(f"exit {self.start} {self.total}\n")

        def helper(self) -> None:
            pass

    return Counter


def lines(log: Path, word: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith(word)]


def test_enter_runs_once_per_container_and_state_persists(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    counter = make_counter(log, max_containers=1)(start=10)
    assert [counter.add.remote(1) for _ in range(5)] == [11, 12, 13, 14, 15]
    assert list(counter.add.map([1, 1])) == [16, 17]
    assert counter.pid.remote() == lines(log, "enter")[0].split()[2]  # both methods, one container
    assert len(lines(log, "enter")) == 1


def test_parameters_select_their_own_containers(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    counter = make_counter(tmp_path / "log")
    one, two = counter(start=1), counter(start=2)
    assert one.add.remote(0) == 1 and two.add.remote(0) == 2
    assert one.pid.remote() != two.pid.remote()


def test_exit_runs_at_scale_down(remote_session: RemoteSession, tmp_path: Path) -> None:
    log = tmp_path / "log"
    counter = make_counter(log, scaledown_window=1)(start=3)
    counter.add.remote(4)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not log.read_text().count("exit"):
        time.sleep(0.2)
    assert lines(log, "exit") == ["exit 3 7"]


def test_local_runs_the_method_here(tmp_path: Path) -> None:
    import os

    counter = make_counter(tmp_path / "log")(start=5)
    assert counter.add.local(1) == 6 and counter.pid.local() == str(os.getpid())


def test_unmarked_method_is_refused_with_the_remote_ones_listed(tmp_path: Path) -> None:
    counter = make_counter(tmp_path / "log")()
    with pytest.raises(AttributeError, match=r"helper is not marked @nr.method\(\).*add, pid"):
        counter.helper.remote()


def test_failing_enter_fails_the_call_and_the_next_gets_a_fresh_container(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    flag = tmp_path / "broken"
    flag.touch()

    @app.cls(max_containers=1)
    class Fragile:
        @nr.enter()
        def load(self) -> None:
            import os

            if os.path.exists(flag):
                raise RuntimeError("weights are corrupt")

        @nr.method()
        def pid(self) -> int:
            import os

            return os.getpid()

    with pytest.raises(RuntimeError, match="weights are corrupt") as caught:
        Fragile().pid.remote()
    assert ", in load" in "".join(caught.value._render_traceback_())  # type: ignore[attr-defined]
    flag.unlink()
    assert isinstance(Fragile().pid.remote(), int)


def test_concurrent_inputs_overlap_in_one_container(remote_session: RemoteSession) -> None:
    @app.function(max_containers=1)
    @nr.concurrent(max_inputs=4)
    def slow(x: int) -> tuple[int, float, float]:
        import os
        import time

        started = time.time()
        time.sleep(0.6)
        return os.environ["NBREMOTE_TASK_ID"], started, time.time()

    slow.remote(0)  # a warm container first, so that its start does not count
    spans = list(slow.map(range(4)))
    assert len({pid for pid, _, _ in spans}) == 1
    overlap = min(end for _, _, end in spans) - max(start for _, start, _ in spans)
    assert overlap > 0.3  # all four ran at the same time


def test_async_methods_interleave_on_one_event_loop(remote_session: RemoteSession) -> None:
    @app.cls(max_containers=1)
    @nr.concurrent(max_inputs=5)
    class Service:
        @nr.method()
        async def wait(self, seconds: float) -> int:
            import asyncio
            import os

            await asyncio.sleep(seconds)
            return os.getpid()

    service = Service()
    service.wait.remote(0)
    started = time.monotonic()
    assert len(set(service.wait.map([0.5] * 5))) == 1
    assert time.monotonic() - started < 1.5  # five half-second waits at once, not 2.5 s


def test_concurrent_inputs_share_a_dict(remote_session: RemoteSession) -> None:
    @app.function(max_containers=1)
    @nr.concurrent(max_inputs=3)
    def tally(x: int) -> int:
        shared = nr.Dict.from_name("tally")
        shared[x] = x * 10
        return int(shared[x])

    tallies = nr.Dict.from_name("tally", create_if_missing=True)
    assert list(tally.map(range(12))) == [x * 10 for x in range(12)]
    assert len(tallies) == 12
    tallies.delete()


def test_allow_concurrent_inputs_warns(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match=r"use @nr.concurrent\(max_inputs=...\) instead"):
        handle = app.function(allow_concurrent_inputs=3)(lambda x: x)
    assert handle.options.max_inputs == 3


def test_with_options_gives_a_copy(tmp_path: Path) -> None:
    counter = make_counter(tmp_path / "log", max_containers=3)
    narrower = counter.with_options(max_containers=1, timeout=5)
    assert (narrower.options.max_containers, narrower.options.timeout) == (1, 5)
    assert (counter.options.max_containers, counter.options.timeout) == (3, None)
    assert narrower.methods == counter.methods == ["add", "pid"]
