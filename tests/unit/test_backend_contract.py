"""The backend contract (`nbremote_runner.backends.base`), kept by a fake backend with no process.

The fake's worker is a frame connection in the same event loop that answers each request with a
``done``; the runner's own code (`ContainerStarter`, `Worker`) drives it, so these tests show that
the runner reaches a worker only through its handle: its pid and memory through ``stats()``, a
Ctrl-C through ``interrupt()``, its end through ``exit_status()``, a lease only where the backend
offers ``direct`` access.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from nbremote_runner.backends import (
    Backend,
    WorkerHandle,
    WorkerRequest,
    WorkerStartError,
    WorkerStats,
)
from nbremote_runner.backends.process import LocalWorker, ProcessBackend
from nbremote_runner.containers import ContainerStarter
from nbremote_runner.frames import FrameConnection, connect
from nbremote_runner.gpus.discovery import DeclaredGpus, Reading
from nbremote_runner.gpus.usage import Usage
from nbremote_runner.secrets import Secrets
from nbremote_runner.volumes import Volumes
from nbremote_runner.workers import Worker

from nbremote.wire.codec import Header
from nbremote.wire.http import WorkerSpec

GIB = 2**30


class FakeHandle(WorkerHandle):
    """A worker that is a frame connection; what the runner asks of it is recorded."""

    def __init__(
        self, request: WorkerRequest, ours: FrameConnection, theirs: FrameConnection
    ) -> None:
        super().__init__("fake-1", request.spec, ours, {"op": "hello", "pid": 2})
        self.request = request
        self.peer = theirs  # the worker's end
        self.interrupts = 0
        self.status = "still running"

    def interrupt(self) -> None:
        self.interrupts += 1

    async def stop(self) -> None:
        self.connection.close()
        self.status = "exit code 0"

    async def exit_status(self) -> str:
        return self.status

    def stats(self) -> WorkerStats:
        return WorkerStats(pid=4242, rss_bytes=1000, gpu_pids=frozenset({4242, 4243}))


class FakeBackend(Backend):
    """Starts `FakeHandle` workers that answer every request with an ok ``done``."""

    name = "fake"

    def __init__(self, direct: bool = False) -> None:
        self.direct = direct
        self.started: list[FakeHandle] = []

    @property
    def python_version(self) -> str:
        return "3.12.0"

    async def prepare_image(self, ref: str) -> str:
        return ref

    async def start_worker(self, request: WorkerRequest) -> WorkerHandle:
        if request.image is not None:
            await self.prepare_image(request.image)
        a, b = socket.socketpair()
        ours, theirs = await connect(a), await connect(b)
        handle = FakeHandle(request, ours, theirs)
        handle.direct = self.direct

        def answer(header: Header, buffers: list[bytearray]) -> None:
            if header.get("op") != "hang":
                theirs.send({"op": "done", "id": header["id"], "ok": True})

        theirs.listen(answer)
        self.started.append(handle)
        return handle


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def _serve(header: Header, buffers: list[Any]) -> tuple[Header, list[Any]]:
    raise AssertionError("the fake worker sends no requests of its own")


def _starter(backend: Backend, tmp_path: Path) -> ContainerStarter:
    volumes = cast(Volumes, None)  # no spec here names a volume
    return ContainerStarter(backend, volumes, Secrets(tmp_path / "secrets.json"))


def test_the_runner_serves_a_request_through_the_handle_alone(tmp_path: Path) -> None:
    async def test() -> None:
        backend = FakeBackend()
        handle = await _starter(backend, tmp_path).start_worker(WorkerSpec())
        worker = Worker(handle, _serve)
        done, _ = await worker.run({"op": "exec", "id": "r1"}, [], lambda h, b: None, None)
        assert done["ok"] is True and done["worker"] == "fake-1"
        described = worker.describe()
        assert (described.pid, described.rss_bytes) == (4242, 1000)  # stats(), not the hello's
        worker.interrupt()
        assert backend.started[0].interrupts == 1
        await worker.stop()
        assert not worker.alive

    run(test)


def test_a_worker_that_dies_mid_request_is_told_by_its_exit_status(tmp_path: Path) -> None:
    async def test() -> None:
        backend = FakeBackend()
        worker = Worker(await _starter(backend, tmp_path).start_worker(WorkerSpec()), _serve)
        running = asyncio.create_task(
            worker.run({"op": "hang", "id": "r1"}, [], lambda h, b: None, None)
        )
        await asyncio.sleep(0)  # the request is sent
        handle = backend.started[0]
        handle.status = "killed by signal SIGKILL"
        handle.peer.close()
        done, _ = await asyncio.wait_for(running, 5)
        assert done["ok"] is False and done["error"]["ename"] == "WorkerDied"
        assert "(pid 4242)" in done["error"]["evalue"]
        assert done["error"]["evalue"].endswith("killed by signal SIGKILL")

    run(test)


def test_a_lease_is_refused_where_the_backend_offers_no_direct_address(tmp_path: Path) -> None:
    async def test() -> None:
        for direct, ok in ((False, False), (True, True)):
            starter = _starter(FakeBackend(direct=direct), tmp_path)
            worker = Worker(await starter.start_worker(WorkerSpec()), _serve)
            lease = {"op": "lease", "id": "l1"}
            done, _ = await worker.run(lease, [], lambda h, b: None, None)
            assert done["ok"] is ok
            if not ok:  # the client then sends its calls through the runner
                assert done["error"]["ename"] == "NotLeasable"
            await worker.stop()

    run(test)


def test_the_request_carries_secrets_devices_and_the_image(tmp_path: Path) -> None:
    async def test() -> None:
        backend = FakeBackend()
        spec = WorkerSpec(
            env={"CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb"},
            secrets=["inline:x"],
            inline_secrets={"inline:x": {"TOKEN": "s3cret"}},
            image="im-0",
        )
        handle = await _starter(backend, tmp_path).start_worker(spec)
        request = backend.started[0].request
        assert request.env == {"TOKEN": "s3cret"} and "s3cret" not in repr(request)
        assert request.devices == ("GPU-aaa", "GPU-bbb")
        assert request.image == "im-0" and request.mounts == {}
        await handle.stop()

    run(test)


def test_a_missing_secret_fails_before_the_backend_is_asked(tmp_path: Path) -> None:
    async def test() -> None:
        backend = FakeBackend()
        try:
            await _starter(backend, tmp_path).start_worker(WorkerSpec(secrets=["absent"]))
        except WorkerStartError as exc:
            assert "absent" in str(exc)
        else:
            raise AssertionError("a missing secret started a worker")
        assert backend.started == []

    run(test)


def test_gpu_memory_is_the_sum_of_the_workers_own_processes() -> None:
    gpus = DeclaredGpus("A100-80GB")
    usage = Usage(gpus.devices, pids=frozenset({4242, 4243}))  # what a handle's stats() name
    usage.add({0: Reading(50.0, 9 * GIB, {4242: GIB, 4243: 2 * GIB, 7: 6 * GIB})})
    assert usage.peak_bytes == 3 * GIB  # not the device's 9 GiB, nor another process's 6


def test_the_process_backend_keeps_the_whole_contract() -> None:
    assert not ProcessBackend.__abstractmethods__
    assert not LocalWorker.__abstractmethods__
    assert issubclass(LocalWorker, WorkerHandle) and LocalWorker.direct  # same host: leasable
    assert ContainerStarter.__mro__[1:] == (object,)  # the runner's step, not a backend
