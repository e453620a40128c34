"""The runner's errors: one root, drawn as it is; each answered over HTTP with its type and
status by the base handler, and as a ``done`` frame by `error_done`."""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from nbremote_runner import errors
from nbremote_runner.backends.base import WorkerStartError
from nbremote_runner.backends.sandbox import SandboxError
from nbremote_runner.errors import ApiError, Refusal, RunnerError, WorkerDied, error_done
from nbremote_runner.gpus.broker import GpuUnavailable
from nbremote_runner.handlers import BaseHandler
from nbremote_runner.image_build import StepFailed
from nbremote_runner.image_types import ImageBuildError, PythonUnavailable
from nbremote_runner.secrets import SecretError
from nbremote_runner.state import StateError, WriteFailed
from nbremote_runner.stores import StoreError
from nbremote_runner.volumes import VolumeError, disk_error
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

CLASSES: dict[str, type[RunnerError]] = {
    cls.__name__: cls
    for cls in (
        RunnerError,
        ApiError,
        Refusal,
        VolumeError,
        SecretError,
        StoreError,
        PythonUnavailable,
        SandboxError,
        StepFailed,
        WorkerDied,
        WriteFailed,
        StateError,
        WorkerStartError,
        ImageBuildError,
        GpuUnavailable,
    )
}


def drawn_tree() -> list[tuple[str, str | None, str]]:
    """(class, parent, status column) for each line of the tree in errors.py's docstring."""
    assert errors.__doc__ is not None
    drawn, parents = [], {}
    for line in errors.__doc__.splitlines():
        found = re.match(r"^    ([ │├└─]*)(\w+) +(\S+)", line)
        if found is None or not found[2][0].isupper():
            continue
        depth = len(found[1]) // 4
        parents[depth] = found[2]
        drawn.append((found[2], parents.get(depth - 1) if depth else None, found[3]))
    return drawn


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = drawn_tree()
    assert {name for name, _, _ in drawn} == set(CLASSES)
    for name, parent, status in drawn:
        cls = CLASSES[name]
        if parent is not None:
            assert cls.__bases__[0] is CLASSES[parent], name
        if status.isdigit():
            assert cls.status == int(status), name


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (ApiError(401, "Unauthorized", "m"), "Unauthorized", 401),
        (VolumeError("NotFound", "m"), "NotFound", 404),
        (VolumeError("NotMounted", "m"), "NotMounted", 400),
        (VolumeError("BadRequest", "m"), "BadRequest", 400),
        (SecretError("ValidationError", "m"), "ValidationError", 422),
        (StoreError("LimitExceeded", "m"), "LimitExceeded", 400),
        (disk_error(OSError(errno.ENOSPC, "No space left on device")), "DiskFull", 507),
        (disk_error(OSError(errno.EACCES, "Permission denied", "/x")), "OSError", 500),
        (PythonUnavailable("m"), "PythonUnavailable", 422),
        (ImageBuildError("m"), "ImageBuildError", 500),
        (GpuUnavailable("m"), "GpuUnavailable", 500),
        (WriteFailed("m"), "WriteFailed", 500),
    ],
)
def test_each_error_has_the_type_and_status_clients_were_given(
    error: RunnerError, kind: str, status: int
) -> None:
    assert (error.kind, error.status) == (kind, status)


def test_an_os_error_is_answered_in_words() -> None:
    assert str(disk_error(OSError(errno.EACCES, "Permission denied", "/x"))) == (
        "Permission denied (/x)"
    )
    assert "Free space" in str(disk_error(OSError(errno.ENOSPC, "No space left on device")))


def test_error_done_names_the_kind_of_a_runner_error_and_the_class_of_others() -> None:
    assert error_done("r1", VolumeError("NotFound", "no volume 'v'")) == {
        "op": "done",
        "id": "r1",
        "ok": False,
        "error": {"ename": "NotFound", "evalue": "no volume 'v'", "traceback": []},
    }
    died = error_done("r2", WorkerDied("it died"), worker="w", held=[])
    assert died["worker"] == "w" and died["held"] == []
    assert died["error"]["ename"] == "WorkerDied"
    assert error_done("r3", LookupError("no warm worker"))["error"]["ename"] == "LookupError"
    fault = error_done("r4", KeyError("x"), unforeseen=True)["error"]
    assert (fault["ename"], fault["evalue"]) == ("KeyError", "the runner failed: 'x'")


RAISED: dict[str, BaseException] = {
    "volume": VolumeError("NotFound", "no volume 'v' (there are: none)"),
    "python": PythonUnavailable("python_version='3.99' is not available on this runner"),
    "api": ApiError(409, "Conflict", "volume 'v' exists"),
    "start": WorkerStartError("the worker exited with code 1"),
    "bug": ValueError("a bug"),
}


class Raising(BaseHandler):
    def get(self, what: str) -> None:
        raise RAISED[what]


async def answers(what: str) -> tuple[int, dict[str, Any]]:
    runner = SimpleNamespace(config=SimpleNamespace(token=None, max_body_bytes=1 << 20))
    app = Application([(r"/(?P<what>\w+)", Raising)], runner=runner)
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    try:
        await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/{what}")
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    finally:
        server.stop()
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("what", "status", "kind"),
    [
        ("volume", 404, "NotFound"),
        ("python", 422, "PythonUnavailable"),
        ("api", 409, "Conflict"),
        ("start", 500, "WorkerStartError"),
        ("bug", 500, "Internal Server Error"),  # a fault of the runner's says nothing more
    ],
)
def test_a_handler_needs_no_try_to_answer_a_runner_error(what: str, status: int, kind: str) -> None:
    code, body = asyncio.run(answers(what))
    message = kind if what == "bug" else str(RAISED[what])
    assert (code, body) == (status, {"error": {"type": kind, "message": message}})
