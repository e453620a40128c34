"""The runner's HTTP API: health, auth, errors, OpenAPI, sessions, state across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from nbremote._client import RunnerClient
from nbremote.errors import AuthenticationError, RunnerError, RunnerUnavailable
from tests.conftest import RunningRunner, start_runner


def raw(
    url: str, method: str = "GET", token: str | None = None, body: bytes | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = response.read()
            return response.status, json.loads(data) if data else None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_health_needs_no_token(runner: RunningRunner) -> None:
    status, body = raw(f"{runner.url}/api/v1/health")
    assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_api_refuses_missing_or_wrong_token(runner: RunningRunner, token: str | None) -> None:
    status, body = raw(f"{runner.url}/api/v1/runner", token=token)
    assert status == 401
    assert body == {"error": {"type": "Unauthorized", "message": "missing or wrong bearer token"}}


def test_client_turns_401_into_a_clear_error(runner: RunningRunner) -> None:
    with (
        RunnerClient(runner.url, "wrong-token") as client,
        pytest.raises(AuthenticationError, match="refused the token"),
    ):
        client.request("GET", "/api/v1/runner")


def test_unreachable_runner_fails_fast_with_its_url() -> None:
    started = time.monotonic()
    with (
        RunnerClient("http://127.0.0.1:9", None) as client,
        pytest.raises(RunnerUnavailable, match=r"127\.0\.0\.1:9\b"),
    ):
        client.request("GET", "/api/v1/health")
    assert time.monotonic() - started < 5


def test_errors_are_json_and_name_the_field(runner: RunningRunner) -> None:
    status, body = raw(f"{runner.url}/api/v1/sessions", "POST", runner.token, b'{"id": "bad id!"}')
    assert status == 422
    assert body["error"]["type"] == "ValidationError" and body["error"]["message"].startswith("id:")
    status, body = raw(f"{runner.url}/api/v1/nowhere", token=runner.token)
    assert status == 404 and body["error"]["type"] == "NotFound"
    with runner.client() as client, pytest.raises(RunnerError, match="no session 'missing'"):
        client.request("GET", "/api/v1/sessions/missing")


def test_sessions_are_created_listed_and_deleted(runner: RunningRunner) -> None:
    with runner.client() as client:
        created = client.request(
            "POST", "/api/v1/sessions", {"id": "api-test", "notebook": "a.ipynb"}
        )
        assert created["id"] == "api-test" and created["workers"] == []
        assert created["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
        listed = client.request("GET", "/api/v1/sessions")["sessions"]
        assert "api-test" in [session["id"] for session in listed]
        assert client.request("DELETE", "/api/v1/sessions/api-test") is None
        assert "api-test" not in [
            s["id"] for s in client.request("GET", "/api/v1/sessions")["sessions"]
        ]


def test_openapi_document_is_generated_from_the_schema(runner: RunningRunner) -> None:
    status, document = raw(f"{runner.url}/api/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/v1/sessions/{session_id}" in document["paths"]
    post = document["paths"]["/api/v1/sessions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CreateSession"
    )
    assert "CreateSession" in document["components"]["schemas"]


def test_runner_refuses_to_listen_beyond_loopback_without_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbremote",
            "runner",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "pass --token" in result.stderr


def test_run_history_survives_a_restart(fresh_runner: RunningRunner, tmp_path: Path) -> None:
    from nbremote._session import RemoteSession, Request

    session = RemoteSession(fresh_runner.client())
    header = {"op": "exec", "code": "x = 1", "inputs": [], "outputs": ["x"], "deletes": []}
    done, _ = session.call(Request(header), lambda f, b: None)
    assert done["ok"]
    session.close()
    fresh_runner.stop()
    restarted = start_runner(fresh_runner.data_dir)
    try:
        with restarted.client() as client:
            assert client.request("GET", "/api/v1/runner")["cells_run"] == 1
    finally:
        restarted.stop()
