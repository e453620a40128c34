"""The binary frame protocol under attack: claims that would exhaust memory, shared-memory paths
that would make the kernel delete any file, malformed frames that hung callers or ended workers.

Each test reproduces what an attacker (a cell, a deployed function's code, a raw client of the
channel, a hostile runner) could do before, and checks what they would notice now.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbremote_runner.frames import connect

from nbremote._client import Channel
from nbremote.wire.codec import (
    LENGTH,
    PREFIX,
    FrameLimits,
    FrameReader,
    FrameRefused,
    FrameTooLarge,
    encode_prefix,
)
from nbremote.wire.shm import THRESHOLD, ShmRefused, externalize, internalize
from tests.conftest import TOKEN, RunningRunner, start_runner

MiB = 1 << 20
GiB = 1 << 30
ANSWER_TIMEOUT = 30.0  # a frame that is never answered fails the test instead of hanging it
HEX = "0123456789abcdef" * 2  # a name of the form `externalize` gives files


# -- helpers ---------------------------------------------------------------------------------


def _open(runner: RunningRunner) -> tuple[Channel, str]:
    """A raw channel to a new session of ``runner``."""
    session_id = uuid.uuid4().hex
    with runner.client() as client:
        client.request("POST", "/api/v1/sessions", {"id": session_id, "notebook": "frames"})
        channel = client.open_channel(session_id)
    channel.sock.settimeout(ANSWER_TIMEOUT)
    return channel, session_id


@pytest.fixture
def raw(runner: RunningRunner) -> Iterator[Channel]:
    """A raw frame channel to a session of its own on the shared runner."""
    channel, session_id = _open(runner)
    yield channel
    channel.close()
    with runner.client() as client:
        client.request("DELETE", f"/api/v1/sessions/{session_id}")


def _claim(header: dict[str, Any], sizes: list[int]) -> bytes:
    """A frame's prefix claiming buffers of ``sizes`` (whose bytes are not sent)."""
    body = encode_prefix(header, [])[PREFIX.size :]
    return PREFIX.pack(len(body), len(sizes)) + body + b"".join(LENGTH.pack(s) for s in sizes)


def _done(channel: Channel, request_id: str | None) -> dict[str, Any]:
    """The ``done`` answering ``request_id`` (other frames of the request are skipped)."""
    while True:
        header, _ = channel.recv()
        if header["op"] == "done" and header.get("id") == request_id:
            return header


def _rss(runner: RunningRunner) -> int:
    return int(psutil.Process(runner.proc.pid).memory_info().rss)


def _healthy(runner: RunningRunner) -> bool:
    with runner.client() as client:
        return bool(client.request("GET", "/api/v1/health")["status"] == "ok")


def _cell(request_id: str, code: str) -> dict[str, Any]:
    return {"op": "exec", "id": request_id, "code": code, "inputs": [], "outputs": [], "spec": {}}


# -- one frame must not exhaust the runner -----------------------------------------------------


def test_a_header_claiming_3_gib_costs_the_runner_nothing(fresh_runner: RunningRunner) -> None:
    channel, _ = _open(fresh_runner)
    before = _rss(fresh_runner)
    channel.sock.sendall(_claim({"op": "exec", "id": "greedy"}, [3 * GiB]) + b"x" * MiB)
    assert _healthy(fresh_runner)  # the loop has read the claim by the time it answers this
    assert _rss(fresh_runner) - before < 200 * MiB
    channel.close()


def test_an_abandoned_claim_holds_only_what_arrived_and_is_freed(
    fresh_runner: RunningRunner,
) -> None:
    channel, _ = _open(fresh_runner)
    before = _rss(fresh_runner)
    channel.sock.sendall(_claim({"op": "exec", "id": "abandoned"}, [2 * GiB]))
    channel.sock.sendall(os.urandom(MiB) * 96)  # then the sender goes quiet
    assert _healthy(fresh_runner)
    assert _rss(fresh_runner) - before < 400 * MiB  # not the 2 GiB claimed
    channel.close()
    # The runner frees the claim when it sees the connection go; wait for that, boundedly.
    freed = False
    for _ in range(100):
        if _rss(fresh_runner) - before < 150 * MiB:
            freed = True
            break
        _healthy(fresh_runner)
        threading.Event().wait(0.1)
    assert freed, f"the runner still holds {(_rss(fresh_runner) - before) >> 20} MiB"
    assert _healthy(fresh_runner)


def test_a_frame_over_the_limits_is_answered_then_closed(
    raw: Channel, runner: RunningRunner
) -> None:
    raw.sock.sendall(_claim({"op": "exec", "id": "huge"}, [1 << 40]))
    done = _done(raw, "huge")
    assert done["ok"] is False
    assert done["error"]["ename"] == "FrameTooLarge"
    assert "buffer 0" in done["error"]["evalue"]
    with pytest.raises(ConnectionError):
        raw.recv()
    assert _healthy(runner)


def test_the_runner_takes_its_frame_limit_from_the_command_line(tmp_path: Path) -> None:
    running = start_runner(tmp_path / "runner", TOKEN, "--max-frame-size", "1M")
    try:
        channel, _ = _open(running)
        channel.sock.sendall(_claim({"op": "exec", "id": "two-mib"}, [1 << 20, 1 << 20]))
        done = _done(channel, "two-mib")
        assert done["error"]["ename"] == "FrameTooLarge", done
        channel.close()
    finally:
        running.stop()


def test_a_header_over_the_limit_is_refused_before_it_is_read(raw: Channel) -> None:
    raw.sock.sendall(PREFIX.pack(1 << 31, 0) + b"{")
    done = _done(raw, None)
    assert done["error"]["ename"] == "FrameTooLarge"
    assert "header" in done["error"]["evalue"]


def test_a_header_that_is_not_a_json_object_is_answered_then_closed(raw: Channel) -> None:
    raw.sock.sendall(PREFIX.pack(6, 0) + b"[1, 2]")
    done = _done(raw, None)
    assert done["error"]["ename"] == "FrameRefused"
    assert "JSON object" in done["error"]["evalue"]
    with pytest.raises(ConnectionError):
        raw.recv()


def test_the_runner_honours_configured_limits() -> None:
    """`RunnerConfig.frame_limits` reaches the connection: a small limit refuses a small frame."""

    async def main() -> tuple[dict[str, Any], bytes]:
        ours, theirs = socket.socketpair()
        connection = await connect(ours, FrameLimits(max_buffer_bytes=MiB, max_frame_bytes=MiB))
        theirs.sendall(_claim({"op": "call", "id": "c1"}, [MiB + 1]))
        await connection.closed
        theirs.settimeout(ANSWER_TIMEOUT)
        reader = FrameReader(theirs)
        header, _ = await asyncio.to_thread(reader.read)
        rest = await asyncio.to_thread(theirs.recv, 1)
        theirs.close()
        return header, rest

    header, rest = asyncio.run(main())
    assert header["id"] == "c1"
    assert header["error"]["ename"] == "FrameTooLarge"
    assert rest == b""  # and then it closed


def test_the_runner_connection_takes_memory_as_bytes_arrive() -> None:
    async def main() -> int:
        ours, theirs = socket.socketpair()
        connection = await connect(ours)
        tracemalloc.start()
        try:
            data = _claim({"op": "exec", "id": "big"}, [3 * GiB]) + b"x" * (2 * MiB)
            sending = asyncio.to_thread(_send_and_close, theirs, data)
            await asyncio.gather(sending, connection.closed)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert asyncio.run(main()) < 64 * MiB


def test_the_blocking_reader_takes_memory_as_bytes_arrive() -> None:
    """The kernel's and the worker's reader: a hostile runner or worker claims 3 GiB."""
    ours, theirs = socket.socketpair()
    data = _claim({"op": "done", "id": "big"}, [3 * GiB]) + b"x" * (2 * MiB)
    sender = threading.Thread(target=_send_and_close, args=(theirs, data))
    tracemalloc.start()
    try:
        sender.start()
        with pytest.raises(ConnectionError):
            FrameReader(ours).read()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sender.join()
        ours.close()
    assert peak < 64 * MiB


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    with sock:
        sock.sendall(data)


def test_the_blocking_reader_refuses_claims_over_its_limits() -> None:
    ours, theirs = socket.socketpair()
    theirs.sendall(PREFIX.pack(1 << 31, 0))
    theirs.close()
    with pytest.raises(FrameTooLarge, match="header"):
        FrameReader(ours).read()
    ours.close()
    ours, theirs = socket.socketpair()
    theirs.sendall(_claim({"op": "done", "id": "x"}, [1 << 40]))
    theirs.close()
    with pytest.raises(FrameTooLarge, match="buffer 0"):
        FrameReader(ours).read()
    ours.close()


# -- shared-memory paths from the other side ------------------------------------------------------


@pytest.fixture
def shm(tmp_path: Path) -> Path:
    folder = tmp_path / "shm"
    folder.mkdir()
    return folder


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file an attacker wants mapped and deleted (named as shm files are, to get past names)."""
    path = tmp_path / HEX
    path.write_bytes(b"precious")
    return path


def _hostile_cases(shm: Path, target: Path) -> dict[str, tuple[list[Any], str | None, int]]:
    """name -> (shm entries, the receiver's folder, buffers in the frame)."""
    (shm / ("f" * 32)).symlink_to(target)  # a link in the folder, out of it
    inner = shm / ("e" * 32)
    inner.write_bytes(b"inner")
    (shm / ("d" * 32)).symlink_to(inner)  # a link in the folder, to a file of the folder
    (shm / "notes.txt").write_bytes(b"notes")
    return {
        "outside": ([[0, str(target)]], str(shm), 1),
        "dot-dot": ([[0, f"{shm}/../{HEX}"]], str(shm), 1),
        "symlink out": ([[0, str(shm / ("f" * 32))]], str(shm), 1),
        "symlink in": ([[0, str(shm / ("d" * 32))]], str(shm), 1),
        "odd name": ([[0, str(shm / "notes.txt")]], str(shm), 1),
        "bad index": ([[3, str(inner)]], str(shm), 1),
        "not a pair": ([str(inner)], str(shm), 1),
        "other host": ([[0, str(inner)]], None, 1),
    }


@pytest.mark.parametrize(
    "case",
    [
        "outside",
        "dot-dot",
        "symlink out",
        "symlink in",
        "odd name",
        "bad index",
        "not a pair",
        "other host",
    ],
)
def test_internalize_refuses_what_is_not_its_own(shm: Path, target: Path, case: str) -> None:
    entries, folder, count = _hostile_cases(shm, target)[case]
    before = {path.name: path.read_bytes() for path in shm.iterdir() if not path.is_symlink()}
    links = sorted(path.name for path in shm.iterdir() if path.is_symlink())
    with pytest.raises(ShmRefused):
        internalize({"op": "done", "shm": entries}, [b""] * count, folder)
    assert target.read_bytes() == b"precious"
    assert {p.name: p.read_bytes() for p in shm.iterdir() if not p.is_symlink()} == before
    assert sorted(path.name for path in shm.iterdir() if path.is_symlink()) == links


def test_internalize_takes_its_own_files(shm: Path) -> None:
    data = os.urandom(THRESHOLD)
    header, buffers = externalize({"op": "done"}, [b"small", data], str(shm))
    internalize(header, buffers, str(shm))
    assert bytes(buffers[1]) == data
    assert "shm" not in header
    assert list(shm.iterdir()) == []  # taken once, then gone


def test_the_reader_refuses_a_hostile_frame_and_reads_on(shm: Path, target: Path) -> None:
    ours, theirs = socket.socketpair()
    hostile = {"op": "done", "id": "r1", "shm": [[0, str(target)]]}
    theirs.sendall(encode_prefix(hostile, [b""]) + encode_prefix({"op": "done", "id": "r2"}, []))
    reader = FrameReader(ours, shm_dir=str(shm))
    with pytest.raises(FrameRefused) as refused:
        reader.read()
    assert refused.value.header["id"] == "r1"
    assert reader.read()[0]["id"] == "r2"  # the stream is still in step
    assert target.read_bytes() == b"precious"
    ours.close()
    theirs.close()


def test_a_cell_cannot_make_the_kernel_delete_a_file(shell: InteractiveShell, target: Path) -> None:
    """The worker's code sends frames naming a file of the kernel's machine as shared memory."""
    code = (
        "import nbremote.wire.codec as protocol\n"
        "def hostile(header, buffers, folder, *rest):\n"
        f"    return {{**header, 'shm': [[len(buffers), {str(target)!r}]]}}, [*buffers, b'']\n"
        "protocol.externalize = hostile\n"
        "print('hello')\n"
    )
    with pytest.raises(Exception, match="refused"):
        shell.run_cell_magic("remote", "--timeout 30", code)
    assert target.read_bytes() == b"precious"


# -- malformed frames are answered, and end nothing ----------------------------------------------


BAD_FRAMES = {
    "pool.key": {
        "op": "call",
        "pool": {"key": "no-colon-here", "spec": {}, "scaling": {}},
        "function": {"name": "f", "nbuf": 0, "hash": "h"},
        "count": 1,
    },
    "action": {"op": "dict", "name": "d"},
    "sizes": {"op": "queue", "name": "q", "action": "put"},
    "name": {"op": "dict", "action": "len"},
    "op": {"op": "teleport"},
    "code": {"op": "exec", "inputs": [], "outputs": [], "spec": {}},
    "call_id": {"op": "get"},
}


@pytest.mark.parametrize("field", list(BAD_FRAMES))
def test_a_malformed_frame_gets_an_error_naming_its_field(raw: Channel, field: str) -> None:
    request_id = uuid.uuid4().hex
    raw.send({**BAD_FRAMES[field], "id": request_id})
    done = _done(raw, request_id)
    assert done["ok"] is False
    assert done["error"]["ename"] == "ValidationError"
    assert done["error"]["evalue"].startswith(f"{field}: ")


def test_a_frame_without_an_id_is_answered_with_a_null_id(raw: Channel) -> None:
    raw.send({"op": "exec", "code": "1"})
    done = _done(raw, None)
    assert done["error"]["evalue"].startswith("id: ")


def test_a_bad_exec_leaves_the_worker_serving(raw: Channel) -> None:
    first = _done(raw, _send(raw, _cell("", "kept = 41")))
    assert first["ok"] is True, first
    bad = _send(raw, {"op": "exec", "id": "", "inputs": [], "outputs": [], "spec": {}})
    assert "code" in _done(raw, bad)["error"]["evalue"]
    after = _done(raw, _send(raw, _cell("", "assert kept == 41")))
    assert after["ok"] is True, after
    assert after["worker"] == first["worker"]  # the same worker, its namespace intact


def test_a_kernel_cannot_send_a_workers_volume_request(raw: Channel) -> None:
    """Volume requests name a worker's working copies: a kernel has none to name."""
    request_id = _send(raw, {"op": "volume", "name": "v", "action": "commit", "checkouts": ["x"]})
    assert _done(raw, request_id)["error"]["evalue"].startswith("op: unknown op 'volume'")


def test_a_worker_cannot_commit_another_workers_copy(shell: InteractiveShell) -> None:
    """A worker names its own checkout ids; another worker's id (stolen or guessed) is refused."""
    import nbremote as nr

    mine, theirs = (nr.Volume.ephemeral() for _ in range(2))
    with mine as own, theirs as other:
        shell.user_ns.update(own=own, other=other)
        copies = "import json, os\ncopies = json.loads(os.environ['NBREMOTE_VOLUMES'])\n"
        shell.run_cell_magic("remote", f"--volume {other.name}:/theirs --out copies", copies)
        stolen = shell.user_ns["copies"]["/theirs"]["checkout"]
        attack = (
            "from nbremote.wire.transport import worker_transport\n"
            f"header = {{'op': 'volume', 'name': {other.name!r}, 'action': 'commit',"
            f" 'checkouts': [{stolen!r}]}}\n"
            "answer, _ = worker_transport()(header, [])\n"
        )
        shell.run_cell_magic("remote", f"--volume {own.name}:/mine --out answer", attack)
        assert shell.user_ns["answer"]["ok"] is False
        assert shell.user_ns["answer"]["error"]["ename"] == "NotMounted"


def _send(channel: Channel, header: dict[str, Any]) -> str:
    request_id = uuid.uuid4().hex
    channel.send({**header, "id": request_id})
    return request_id


def test_a_workers_malformed_request_is_answered(shell: InteractiveShell) -> None:
    """A worker's own Dict request without an action: before, the worker waited forever."""
    code = (
        "from nbremote.wire.transport import worker_transport\n"
        "answer, _ = worker_transport()({'op': 'dict', 'name': 'frames'}, [])\n"
        "evalue = answer['error']['evalue']\n"
    )
    shell.run_cell_magic("remote", "--timeout 30", code)
    assert shell.user_ns["evalue"].startswith("action: ")
    shell.run_cell_magic("remote", "", "still = 'serving'")
    assert shell.user_ns["still"] == "serving"


@contextlib.contextmanager
def bare_worker() -> Iterator[tuple[socket.socket, FrameReader]]:
    """A real worker process past its hello, on a socket of the test's own (no runner)."""
    ours, theirs = socket.socketpair()
    ours.settimeout(ANSWER_TIMEOUT)
    command = [sys.executable, "-P", "-m", "nbremote_runner.worker", "--fd", str(theirs.fileno())]
    proc = subprocess.Popen(command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
    theirs.close()
    try:
        reader = FrameReader(ours)
        assert _next(reader, "hello")["op"] == "hello"
        yield ours, reader
    finally:
        ours.close()
        assert proc.wait(ANSWER_TIMEOUT) == 0


def test_a_worker_answers_a_request_it_cannot_serve() -> None:
    """A real worker process, sent what the runner's checks would stop (a leased kernel talks to
    its worker without them): each request gets an error ``done``, and the worker goes on."""
    with bare_worker() as (ours, reader):
        for header in (
            {"op": "exec", "id": "e1", "inputs": [], "outputs": []},
            {"op": "teleport", "id": "e2"},
            {"op": "call", "id": "e3", "function": {}},
            {"op": "done", "id": "nobody-asked"},
        ):
            ours.sendall(encode_prefix(header, []))
        for request_id in ("e1", "e2", "e3"):
            done = _next(reader, "done")
            assert (done["id"], done["ok"]) == (request_id, False)
        ours.sendall(encode_prefix({"op": "pull", "id": "e4", "names": []}, []))
        assert _next(reader, "done")["ok"] is True  # still serving


def _next(reader: FrameReader, op: str) -> dict[str, Any]:
    while True:
        header, _ = reader.read()
        if header["op"] == op:
            return header
