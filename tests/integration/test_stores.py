"""Dicts and Queues held by a real runner: shared with workers, bounded, kept across restarts."""

from __future__ import annotations

import queue
import time

import pytest

import nbremote as nr
from nbremote import _session
from nbremote._session import RemoteSession
from tests.conftest import RunningRunner, start_runner

app = nr.App("store-tests")


@app.function
def record(name: str, key: int) -> int:
    shared = nr.Dict.from_name(name)
    shared[key] = key * key
    nr.Queue.from_name(name).put(key)
    return len(shared)


def test_dict_and_queue_are_shared_between_a_map_and_the_notebook(
    remote_session: RemoteSession,
) -> None:
    shared = nr.Dict.from_name("shared", create_if_missing=True)
    jobs = nr.Queue.from_name("shared", create_if_missing=True)
    shared["seed"] = {"from": "notebook"}
    assert all(size >= 1 for size in record.map(["shared"] * 20, range(20)))
    assert len(shared) == 21 and shared[7] == 49 and shared["seed"] == {"from": "notebook"}
    assert sorted(jobs.get_many(100)) == list(range(20))
    assert jobs.len() == 0


def test_dict_operations(remote_session: RemoteSession) -> None:
    with nr.Dict.ephemeral() as d:
        d.update({"a": 1, ("tuple", 2): [1, 2]})
        assert d.get("missing", "default") == "default"
        assert ("tuple", 2) in d and "b" not in d
        assert d.pop("a") == 1 and d.pop("a", None) is None
        with pytest.raises(KeyError):
            d["a"]
        d.clear()
        assert len(d) == 0


@app.function
def put_later(name: str) -> None:
    time.sleep(0.5)
    nr.Queue.from_name(name).put("late")


def test_queue_get_waits_for_a_put_elsewhere(remote_session: RemoteSession) -> None:
    with nr.Queue.ephemeral() as q:
        put_later.spawn(q.name)
        started = time.monotonic()
        assert q.get(timeout=10) == "late"
        assert 0.3 < time.monotonic() - started < 5
        with pytest.raises(queue.Empty):
            q.get(timeout=0.2)
        with pytest.raises(queue.Empty):
            q.get(block=False)


def test_missing_names_are_listed(remote_session: RemoteSession) -> None:
    nr.Dict.from_name("listed-one", create_if_missing=True)
    with pytest.raises(nr.RunnerError, match=r"no Dict named 'absent' \(there are: .*listed-one"):
        nr.Dict.from_name("absent")


def test_unpicklable_value_names_its_key(remote_session: RemoteSession) -> None:
    d = nr.Dict.from_name("unpicklable", create_if_missing=True)
    with pytest.raises(nr.SerializationError, match="the value for key 'rows'"):
        d["rows"] = (row for row in range(3))
    assert "rows" not in d


def test_limit_and_restart(fresh_runner: RunningRunner) -> None:
    fresh_runner.stop()
    limited = start_runner(fresh_runner.data_dir, "tok", "--store-limit", "3")
    try:
        _session.connect(limited.url, limited.token)
        d = nr.Dict.from_name("bounded", create_if_missing=True)
        q = nr.Queue.from_name("bounded", create_if_missing=True)
        d.update({1: "one", 2: "two", 3: "three"})
        with pytest.raises(
            nr.RunnerError, match="would hold 4 items, over the runner's limit of 3"
        ):
            d[4] = "four"
        d[3] = "drei"  # replacing is fine
        q.put_many(["x", "y"])
        _session.current_session().close()
        limited.stop()
        limited = start_runner(fresh_runner.data_dir, "tok")
        _session.connect(limited.url, limited.token)
        d = nr.Dict.from_name("bounded")
        assert [d[1], d[2], d[3]] == ["one", "two", "drei"]
        assert nr.Queue.from_name("bounded").get_many(5) == ["x", "y"]
    finally:
        _session.current_session().close()
        _session._current = None
        limited.stop()
