"""Modal's names and spellings that Modal code uses, against a real runner: old option names in
``with_options``, iterating an ``nr.Dict``, ``modal.exception`` and ``modal.enable_output``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import nbremote as nr
from nbremote._session import RemoteSession
from tests.conftest import RunningRunner, run_python

app = nr.App("modal-names")


@app.function
def task_after(seconds: float) -> str:
    """Which worker ran it."""
    time.sleep(seconds)
    return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))


@app.cls()
class Counter:
    @nr.method()
    def where(self, seconds: float) -> str:
        time.sleep(seconds)
        return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))


def test_old_names_in_with_options_replace_the_setting(remote_session: RemoteSession) -> None:
    with pytest.warns(DeprecationWarning, match="`concurrency_limit` is deprecated") as warned:
        one = task_after.with_options(concurrency_limit=1)
    assert warned[0].filename == __file__  # the warning points at the caller's line
    assert "use `max_containers` instead" in str(warned[0].message)
    assert len(set(one.map([0.2] * 4))) == 1  # one container at most: the limit holds
    with pytest.warns(DeprecationWarning) as renamed:
        tuned = task_after.with_options(
            keep_warm=0, container_idle_timeout=5, allow_concurrent_inputs=2
        )
    assert {str(w.message).split("`")[1] for w in renamed} == {
        "keep_warm",
        "container_idle_timeout",
        "allow_concurrent_inputs",
    }
    assert tuned.options.max_inputs == 2 and tuned.options.scaledown_window == 5
    assert tuned.remote(0)
    both = "give `max_containers` or `concurrency_limit`, not both"
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match=both):
        task_after.with_options(concurrency_limit=1, max_containers=2)


def test_old_names_in_a_class_with_options(remote_session: RemoteSession) -> None:
    with pytest.warns(DeprecationWarning, match="use `max_containers` instead"):
        single = Counter.with_options(concurrency_limit=1)
    assert len(set(single().where.map([0.2] * 3))) == 1


@app.function
def listing(name: str) -> tuple[list[object], list[object], list[tuple[object, object]], int]:
    shared = nr.Dict.from_name(name)
    return (
        sorted(shared, key=repr),
        sorted(shared.values(), key=repr),
        sorted(shared.items(), key=repr),
        len(shared),
    )


def test_dict_keys_values_items_and_iteration(remote_session: RemoteSession) -> None:
    with nr.Dict.ephemeral() as d:
        assert list(d) == [] and list(d.items()) == [] and list(d.values()) == []
        d.update({"a": 1, ("t", 2): [1, 2]}, b="bee")
        d[7] = np.arange(4)  # a value of more than one buffer
        keys = d.keys()
        assert iter(keys) is keys  # an iterator, as in Modal, not a view
        assert sorted(keys, key=repr) == sorted(["a", ("t", 2), "b", 7], key=repr)
        assert sorted(d, key=repr) == sorted(["a", ("t", 2), "b", 7], key=repr)
        pairs = dict(d.items())
        assert pairs.pop(7).tolist() == [0, 1, 2, 3]
        assert pairs == {"a": 1, ("t", 2): [1, 2], "b": "bee"}
        assert len(list(d.values())) == 4
        assert "a" in d and d.contains(("t", 2)) and 8 not in d
        assert len(d) == d.len() == 4
        del d[7]
        with pytest.raises(KeyError):
            del d[7]
        keys_there, values_there, items_there, size_there = listing.remote(d.name)
        assert sorted(keys_there, key=repr) == sorted(["a", ("t", 2), "b"], key=repr)
        assert sorted(values_there, key=repr) == sorted([1, [1, 2], "bee"], key=repr)
        assert dict(items_there) == {"a": 1, ("t", 2): [1, 2], "b": "bee"}
        assert size_there == 3


def test_modal_exception_names_catch_what_nbremote_raises(remote_session: RemoteSession) -> None:
    import nbremote as modal

    with pytest.raises(modal.exception.NotFoundError, match="no Dict named 'absent-dict'"):
        modal.Dict.from_name("absent-dict")
    with pytest.raises(modal.exception.NotFoundError, match="absent-volume"):
        modal.Volume.from_name("absent-volume").listdir("/")
    with pytest.raises(modal.exception.NotFoundError, match="no deployed app 'ghost-app'"):
        modal.Function.from_name("ghost-app", "f")
    with pytest.raises(modal.exception.NotFoundError, match="ghost-app"):
        modal.App.lookup("ghost-app")
    try:
        modal.Queue.from_name("absent-queue")
    except modal.exception.Error as exc:  # Modal's root name catches nbremote's errors
        assert isinstance(exc, nr.RunnerError) and exc.kind == "NotFound"


@app.function(timeout=1)
def overruns() -> None:
    time.sleep(30)


def test_a_function_timeout_is_modal_function_timeout_error(
    remote_session: RemoteSession,
) -> None:
    import nbremote as modal

    with pytest.raises(modal.exception.FunctionTimeoutError, match="longer than its timeout"):
        overruns.remote()
    with pytest.raises(modal.exception.TimeoutError):  # the same, by Modal's base name
        overruns.remote()


ENABLE_OUTPUT = """
import nbremote as modal

app = modal.App("enable-output")


@app.function()
def hello(name):
    print(f"hello {name} from the worker")
    return len(name)


with modal.enable_output():
    with app.run():
        print("returned", hello.remote("modal"))
"""


def test_enable_output_runs_modal_code_and_shows_remote_prints(
    runner: RunningRunner, tmp_path: Path
) -> None:
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    (tmp_path / "script.py").write_text(ENABLE_OUTPUT)
    output = run_python("import runpy; runpy.run_path('script.py')", tmp_path, env)
    assert "hello modal from the worker" in output and "returned 5" in output
