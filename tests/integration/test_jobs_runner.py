"""Scheduled jobs on a real runner: a cell promoted over its session's channel (inputs by hash,
asked for with need/blobs), fired by a 1-second Period, run now with parameters, paused,
resumed, removed, promoted again; runs, logs and outputs read over REST."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from nbremote.wire.serialize import dumps
from tests.conftest import RunningRunner
from tests.integration.jobs_helpers import (
    api,
    channel_of,
    cron,
    error_of,
    finished,
    outputs,
    period,
    promote,
    raw,
    runs,
    wait_for,
)

CODE = "y = x * 2\nprint('x is', x)"


@pytest.fixture
def name(runner: RunningRunner) -> Iterator[str]:
    """A job name of this test's own; the job is removed afterwards (the runner is shared)."""
    job = f"t-{uuid.uuid4().hex[:8]}"
    yield job
    if job in [j["name"] for j in api(runner, "GET", "/jobs")["jobs"]]:
        api(runner, "DELETE", f"/jobs/{job}")


def test_a_promoted_cell_fires_every_second_with_its_inputs(
    runner: RunningRunner, name: str
) -> None:
    started = time.monotonic()
    with channel_of(runner) as channel:
        done, frames = promote(
            channel, CODE, {"x": 21}, {"name": name, "schedule": period(1)}, ["y"]
        )
    promoted = time.monotonic() - started
    assert done["ok"] is True, done
    assert frames[0]["op"] == "need"  # the runner asked for the input it did not hold
    job = done["job"]
    assert (job["name"], job["version"], job["kind"], job["inputs"]) == (name, 1, "cell", ["x"])
    assert len(job["next_fires"]) == 3

    ran = finished(runner, name, 2)
    assert all(run["status"] == "succeeded" for run in ran[:2]), ran
    assert all(run["trigger"] == "schedule" for run in ran[:2])
    assert outputs(runner, name, ran[0]["number"]) == {"y": 42}
    assert raw(runner, f"/jobs/{name}/runs/{ran[0]['number']}/logs").decode() == "x is 21\n"
    described = ran[0]["outputs"]
    assert [(o["name"], o["type"]) for o in described] == [("y", "int")]
    late = ", ".join(f"{(run['started'] - run['scheduled']) * 1000:.1f} ms" for run in ran[:2])
    print(f"promotion {promoted * 1000:.0f} ms; fire lateness {late}")


def test_an_input_already_stored_is_not_asked_for_again(runner: RunningRunner, name: str) -> None:
    values = {"x": np.arange(1000)}
    schedule = {"name": name, "schedule": period(3600)}
    with channel_of(runner) as channel:
        first, frames = promote(channel, CODE, values, schedule, ["y"])
        again, frames_again = promote(channel, CODE, values, schedule, ["y"])
    assert first["ok"] and again["ok"], (first, again)
    assert [f["op"] for f in frames] == ["need", "done"]
    assert [f["op"] for f in frames_again] == ["done"]  # the runner holds it: nothing sent
    assert again["job"]["version"] == 2


def test_run_now_with_params_replaces_an_input_for_that_run_only(
    runner: RunningRunner, name: str
) -> None:
    with channel_of(runner) as channel:
        done, _ = promote(channel, CODE, {"x": 21}, {"name": name, "schedule": period(3600)}, ["y"])
    assert done["ok"], done
    run = api(runner, "POST", f"/jobs/{name}/runs", {"params": {"x": 5}})
    assert (run["status"], run["trigger"], run["params"]) == ("queued", "manual", {"x": 5})
    finished(runner, name, 1)
    assert outputs(runner, name, run["number"]) == {"y": 10}
    plain = api(runner, "POST", f"/jobs/{name}/runs", {})
    finished(runner, name, 2)
    assert outputs(runner, name, plain["number"]) == {"y": 42}  # the snapshot is unchanged
    assert outputs(runner, name, "last") == {"y": 42}

    message = error_of(runner, "POST", f"/jobs/{name}/runs", {"params": {"z": 1}})
    assert "no input 'z'" in message and "its inputs: x" in message


def test_pause_stops_the_fires_and_resume_starts_them_again(
    runner: RunningRunner, name: str
) -> None:
    with channel_of(runner) as channel:
        done, _ = promote(channel, CODE, {"x": 1}, {"name": name, "schedule": period(1)}, ["y"])
    assert done["ok"], done
    finished(runner, name, 1)
    paused = api(runner, "POST", f"/jobs/{name}/pause")
    assert paused["paused"] is True
    time.sleep(1.5)  # a run fired just before the pause may still be starting
    count = len(runs(runner, name))
    time.sleep(3)
    assert len(runs(runner, name)) == count  # three fire times passed: nothing fired
    resumed = api(runner, "POST", f"/jobs/{name}/resume")
    assert resumed["paused"] is False
    wait_for(lambda: len(runs(runner, name)) > count)


def test_a_run_still_going_when_the_next_is_due_is_skipped(
    runner: RunningRunner, name: str
) -> None:
    code = "import time\ntime.sleep(4)\ny = x"
    with channel_of(runner) as channel:
        done, _ = promote(channel, code, {"x": 1}, {"name": name, "schedule": period(1)}, ["y"])
    assert done["ok"], done
    skipped = wait_for(lambda: [r for r in runs(runner, name) if r["status"] == "skipped"])
    assert skipped[0]["started"] is None and skipped[0]["scheduled"] is not None
    api(runner, "POST", f"/jobs/{name}/pause")


def test_promoting_again_makes_a_new_version_and_keeps_the_history(
    runner: RunningRunner, name: str
) -> None:
    schedule = {"name": name, "schedule": period(3600)}
    with channel_of(runner) as channel:
        assert promote(channel, CODE, {"x": 1}, schedule, ["y"])[0]["ok"]
        api(runner, "POST", f"/jobs/{name}/runs", {})
        finished(runner, name, 1)
        second, _ = promote(channel, "y = x + 100", {"x": 1}, schedule, ["y"])
    assert second["job"]["version"] == 2
    api(runner, "POST", f"/jobs/{name}/runs", {})
    ran = finished(runner, name, 2)
    assert [(r["version"], r["number"]) for r in ran] == [(2, 2), (1, 1)]
    assert outputs(runner, name, 1) == {"y": 2} and outputs(runner, name, 2) == {"y": 101}


def test_removing_a_job_removes_its_runs(runner: RunningRunner, name: str) -> None:
    with channel_of(runner) as channel:
        assert promote(channel, CODE, {"x": 1}, {"name": name, "schedule": period(3600)}, ["y"])[0][
            "ok"
        ]
    api(runner, "POST", f"/jobs/{name}/runs", {})
    finished(runner, name, 1)
    assert api(runner, "DELETE", f"/jobs/{name}") is None
    assert name not in [job["name"] for job in api(runner, "GET", "/jobs")["jobs"]]
    assert f"no job {name!r}" in error_of(runner, "GET", f"/jobs/{name}/runs")
    assert f"no job {name!r}" in error_of(runner, "GET", f"/jobs/{name}/runs/1/outputs")


def test_a_failing_run_is_retried_and_its_traceback_logged(
    runner: RunningRunner, name: str
) -> None:
    settings = {"name": name, "schedule": period(3600), "retries": 1}
    with channel_of(runner) as channel:
        assert promote(channel, "print('trying')\n1 / x", {"x": 0}, settings, [])[0]["ok"]
    api(runner, "POST", f"/jobs/{name}/runs", {})
    run = finished(runner, name, 1)[0]
    assert (run["status"], run["attempt"]) == ("failed", 2)
    assert run["error"].startswith("ZeroDivisionError")
    log = raw(runner, f"/jobs/{name}/runs/last/logs").decode()
    assert log.splitlines().count("trying") == 2 and log.count("ZeroDivisionError: ") == 2
    assert "no outputs" in error_of(runner, "GET", f"/jobs/{name}/runs/last/outputs")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook on loopback: its URL (with a token in the query), and the JSON bodies posted."""
    posted: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=s3cret", posted
    server.shutdown()
    server.server_close()


def test_a_failed_run_is_posted_to_the_webhook_and_a_success_is_not(
    runner: RunningRunner, name: str, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = webhook
    settings = {"name": name, "schedule": period(3600), "notify": url}
    with channel_of(runner) as channel:
        assert promote(channel, "y = 1 / x", {"x": 1}, settings, ["y"])[0]["ok"]
    api(runner, "POST", f"/jobs/{name}/runs", {})
    assert finished(runner, name, 1)[0]["status"] == "succeeded"
    api(runner, "POST", f"/jobs/{name}/runs", {"params": {"x": 0}})
    finished(runner, name, 2)
    (body,) = wait_for(lambda: posted)  # the failure only: a success is not asked for
    assert (body["job"], body["number"], body["status"]) == (name, 2, "failed")
    assert body["error"].startswith("ZeroDivisionError") and body["finished"] >= body["started"]


def test_input_is_refused_as_nbclient_refuses_it(runner: RunningRunner, name: str) -> None:
    code = "try:\n    input('? ')\nexcept Exception as e:\n    y = type(e).__name__"
    with channel_of(runner) as channel:
        assert promote(channel, code, {}, {"name": name, "schedule": period(3600)}, ["y"])[0]["ok"]
    api(runner, "POST", f"/jobs/{name}/runs", {})
    assert finished(runner, name, 1)[0]["status"] == "succeeded"
    assert outputs(runner, name, "last") == {"y": "StdinNotImplementedError"}


def deploy(runner: RunningRunner, app: str, settings: dict[str, Any]) -> None:
    """Deploy an app of one function, ``double(n=3)``, pickled by value as `nbremote deploy`
    sends it (the client's side is not this test's: the request is what it sends)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def double(n=3):\n    print('doubling', n)\n    return n * 2", namespace)
    payload = dumps("double", namespace["double"])
    document = {
        "objects": [
            {
                "name": "double",
                "kind": "function",
                "settings": settings,
                "payload": base64.b64encode(b"".join(payload.parts)).decode(),
                "sizes": [part.nbytes for part in payload.parts],
                "hash": payload.hash,
            }
        ]
    }
    api(runner, "PUT", f"/apps/{app}", document)


def test_a_deployed_scheduled_function_is_a_job_run_now_with_keyword_arguments(
    runner: RunningRunner,
) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    name = f"{app}.double"
    deploy(runner, app, {"schedule": cron("0 2 * * *", "Europe/Berlin")})
    try:
        job = api(runner, "GET", f"/jobs/{name}")
        assert (job["kind"], job["app"], job["version"]) == ("function", app, 1)
        assert job["schedule"] == "0 2 * * * (Europe/Berlin)"
        assert job["next_fires"][0].endswith(("+01:00", "+02:00"))
        api(runner, "POST", f"/jobs/{name}/runs", {})
        assert finished(runner, name, 1)[0]["status"] == "succeeded"
        assert outputs(runner, name, "last") == {"result": 6}
        api(runner, "POST", f"/jobs/{name}/runs", {"params": {"n": 21}})
        assert finished(runner, name, 2)[0]["outputs"][0]["name"] == "result"
        assert outputs(runner, name, "last") == {"result": 42}
        assert raw(runner, f"/jobs/{name}/runs/last/logs").decode() == "doubling 21\n"

        deploy(runner, app, {"schedule": cron("0 2 * * *", "Europe/Berlin")})
        assert api(runner, "GET", f"/jobs/{name}")["version"] == 1  # unchanged: no new version
        deploy(runner, app, {})  # the schedule dropped: the job goes
        assert name not in [j["name"] for j in api(runner, "GET", "/jobs")["jobs"]]
        deploy(runner, app, {"schedule": period(3600), "job": "renamed"})
        assert api(runner, "GET", "/jobs/renamed")["app"] == app
    finally:
        api(runner, "DELETE", f"/apps/{app}")
    assert "renamed" not in [j["name"] for j in api(runner, "GET", "/jobs")["jobs"]]


def test_a_deploy_with_a_bad_schedule_is_refused(runner: RunningRunner) -> None:
    app = f"app-{uuid.uuid4().hex[:8]}"
    message = ""
    try:
        deploy(runner, app, {"schedule": cron("0 25 * * *")})
    except Exception as exc:
        message = str(exc)
    assert "hour 25 is out of 0" in message
    assert app not in [a["name"] for a in api(runner, "GET", "/apps")["apps"]]


def test_outputs_come_back_as_the_client_unpacks_a_cells(runner: RunningRunner, name: str) -> None:
    code = "import numpy as np\narr = np.arange(x) * 2.5\nmeta = {'n': x, 'tag': 'ok'}\nsame = x"
    with channel_of(runner) as channel:
        done, _ = promote(
            channel,
            code,
            {"x": 100000},
            {"name": name, "schedule": period(3600)},
            ["arr", "meta", "same"],
        )
    assert done["ok"], done
    api(runner, "POST", f"/jobs/{name}/runs", {})
    run = finished(runner, name, 1)[0]
    values = outputs(runner, name, run["number"])
    assert np.array_equal(values["arr"], np.arange(100000) * 2.5)
    assert values["meta"] == {"n": 100000, "tag": "ok"} and values["same"] == 100000
    described = {o["name"]: o for o in run["outputs"]}
    assert described["arr"]["type"] == "ndarray" and described["arr"]["nbytes"] >= 800000
    # The run's record shows each value's repr, made by the worker (the runner never unpickles).
    assert described["meta"]["repr"] == "{'n': 100000, 'tag': 'ok'}"
    assert described["arr"]["repr"].startswith("array([0.000000e+00, 2.500000e+00")
