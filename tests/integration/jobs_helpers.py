"""Helpers of the job tests: a cell promoted over a raw channel as the client does it, REST
calls, and a run's outputs read back as the client reads a cell's done."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nbremote._client import Channel, RunnerClient
from nbremote._namespace import pack, unpack
from nbremote.wire.codec import LENGTH, PREFIX, decode_header
from tests.conftest import RunningRunner

API = "/api/v1"


@contextmanager
def channel_of(runner: RunningRunner) -> Iterator[Channel]:
    """A new session's frame channel (the session is ended afterwards)."""
    session_id = uuid.uuid4().hex
    with runner.client() as client:
        client.request("POST", f"{API}/sessions", {"id": session_id, "notebook": "jobs"})
        channel = client.open_channel(session_id)
    channel.sock.settimeout(60)
    try:
        yield channel
    finally:
        channel.close()
        with runner.client() as client:
            client.request("DELETE", f"{API}/sessions/{session_id}")


def promote(
    channel: Channel,
    code: str,
    values: dict[str, Any],
    job: dict[str, Any],
    outputs: list[str],
    tamper: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Promote ``code`` reading ``values`` as the client does: inputs by hash, their bytes only
    when the runner asks. The runner's ``done``, and every frame it sent (``need`` first)."""
    packed = pack(list(values), values, set())
    items = [{**item, "nbuf": 0} for item in packed.items]
    request_id = uuid.uuid4().hex
    cell = {
        "op": "exec",
        "id": request_id,
        "code": code,
        "inputs": items,
        "outputs": outputs,
        "spec": {},
    }
    channel.send({"op": "promote", "id": request_id, "cell": cell, "job": job})
    frames = []
    while True:
        header, _ = channel.recv()
        frames.append(header)
        if header["op"] == "need":
            blobs, buffers = packed.blobs(header["hashes"])
            if tamper is not None:
                buffers = tamper(buffers)
            channel.send({**blobs, "id": request_id}, buffers)
        elif header["op"] == "done":
            return header, frames


def period(seconds: float) -> dict[str, Any]:
    return {"kind": "period", "days": 0, "hours": 0, "minutes": 0, "seconds": seconds}


def cron(expression: str, zone: str = "UTC") -> dict[str, Any]:
    return {"kind": "cron", "cron_string": expression, "timezone": zone}


def api(runner: RunningRunner, method: str, path: str, body: Any = None) -> Any:
    with runner.client() as client:
        return client.request(method, f"{API}{path}", body)


def raw(runner: RunningRunner, path: str) -> bytes:
    with runner.client() as client:
        return client._exchange("GET", f"{API}{path}", None)


def error_of(runner: RunningRunner, method: str, path: str, body: Any = None) -> str:
    """The message of the error the runner answers (fails if it answers without one)."""
    client = RunnerClient(runner.url, runner.token)
    try:
        client.request(method, f"{API}{path}", body)
    except Exception as exc:
        return str(exc)
    finally:
        client.close()
    raise AssertionError(f"{method} {path} did not fail")


def wait_for(what: Callable[[], Any], timeout: float = 60, every: float = 0.2) -> Any:
    """``what()`` once it is truthy (a generous deadline: never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)


def runs(runner: RunningRunner, name: str, limit: int = 50) -> list[dict[str, Any]]:
    return list(api(runner, "GET", f"/jobs/{name}/runs?limit={limit}")["runs"])


def finished(runner: RunningRunner, name: str, count: int = 1) -> list[dict[str, Any]]:
    """The job's runs once ``count`` of them have ended (newest first)."""
    ended = ("succeeded", "failed", "interrupted")

    def done() -> list[dict[str, Any]]:
        found = [run for run in runs(runner, name) if run["status"] in ended]
        return found if len(found) >= count else []

    result: list[dict[str, Any]] = wait_for(done)
    return result


def outputs(runner: RunningRunner, name: str, run: int | str) -> dict[str, Any]:
    """A run's outputs, unpacked as the client unpacks a cell's done."""
    data = raw(runner, f"/jobs/{name}/runs/{run}/outputs")
    header_len, count = PREFIX.unpack_from(data)
    position = PREFIX.size
    header = decode_header(data[position : position + header_len])
    position += header_len
    sizes = [LENGTH.unpack_from(data, position + i * LENGTH.size)[0] for i in range(count)]
    position += count * LENGTH.size
    buffers = []
    for size in sizes:
        buffers.append(bytearray(data[position : position + size]))
        position += size
    assert header["op"] == "done" and header["ok"] is True, json.dumps(header)
    values, unreturnable = unpack(header["outputs"], buffers, {})
    assert not unreturnable
    return values
