"""HTTP resources of sandboxes (routes in ``SANDBOX_ROUTES``, added to the API's).

Thin: `sandboxes` decides. A sandbox is looked up by its id (made by the runner), a process by
its id within that sandbox; paths of files go to `sandbox_files`, which opens them beneath the
sandbox's own folders only. Output is read by offset with a long poll (``wait``), so a client
sees each line as it is written without a connection of its own per stream.
"""

from __future__ import annotations

import base64
from typing import Any

from nbremote.wire.sandboxes import (
    CreateSandbox,
    DescribeSandbox,
    DescribeSandboxProcess,
    ExecSandbox,
    Output,
    ReadOutput,
    SandboxFile,
    WaitProcess,
    WriteStdin,
)

from .errors import ApiError
from .handlers import API, BaseHandler, Operation
from .sandboxes import SandboxBox, Sandboxes, SandboxProcess

ID = r"(?P<sandbox_id>sb-[0-9a-f]{16})"
PROCESS = r"(?P<process_id>main|p[0-9]{1,9})"
TERMINATE_WAIT = 10.0  # seconds a terminate waits for the sandbox's end before it answers


def _bytes(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:  # binascii.Error, or characters that are not ASCII at all
        raise ApiError(422, "ValidationError", "data: not base64") from None


class SandboxHandler(BaseHandler):
    """Sandbox resources: the registry, a sandbox by id, a process by id within it."""

    @property
    def sandboxes(self) -> Sandboxes:
        return self.runner.sandboxes

    def box(self, sandbox_id: str) -> SandboxBox:
        return self.sandboxes.get(sandbox_id)

    def process(self, sandbox_id: str, process_id: str) -> SandboxProcess:
        box = self.box(sandbox_id)
        if process_id == "main":
            if box.main is None:
                raise ApiError(404, "NotFound", f"sandbox {sandbox_id} has no entrypoint")
            return box.main
        return box.process(process_id)


class SandboxesHandler(SandboxHandler):
    api = {"post": Operation("Create a sandbox", DescribeSandbox, CreateSandbox, 201)}

    async def post(self) -> None:
        request: CreateSandbox = self.parse(CreateSandbox)
        box = await self.sandboxes.create(request)
        self.set_header("Location", f"{API}/sandboxes/{box.id}")
        self.reply(box.describe(), 201)


class SandboxItemHandler(SandboxHandler):
    api = {
        "get": Operation("Describe a sandbox", DescribeSandbox),
        "delete": Operation("Terminate a sandbox", status=204),
    }

    def get(self, sandbox_id: str) -> None:
        self.reply(self.box(sandbox_id).describe())

    async def delete(self, sandbox_id: str) -> None:
        box = self.box(sandbox_id)
        box.end("terminated")
        await box.wait(TERMINATE_WAIT)  # its processes killed, its volumes committed
        self.set_status(204)


class SandboxWaitHandler(SandboxHandler):
    api = {"post": Operation("Wait for a sandbox to end", DescribeSandbox, WaitProcess)}

    async def post(self, sandbox_id: str) -> None:
        request: WaitProcess = self.parse(WaitProcess)
        box = self.box(sandbox_id)
        await box.wait(request.wait)
        self.reply(box.describe())


class SandboxExecHandler(SandboxHandler):
    api = {
        "post": Operation("Run a command in a sandbox", DescribeSandboxProcess, ExecSandbox, 201)
    }

    async def post(self, sandbox_id: str) -> None:
        request: ExecSandbox = self.parse(ExecSandbox)
        process = await self.box(sandbox_id).run(request.command, request.workdir, request.env)
        self.reply(process.describe(), 201)


class ProcessWaitHandler(SandboxHandler):
    api = {"post": Operation("Wait for a process to end", DescribeSandboxProcess, WaitProcess)}

    async def post(self, sandbox_id: str, process_id: str) -> None:
        request: WaitProcess = self.parse(WaitProcess)
        process = self.process(sandbox_id, process_id)
        await process.wait(request.wait)
        self.reply(process.describe())


class ProcessOutputHandler(SandboxHandler):
    api = {"post": Operation("Read a process's output from an offset", Output, ReadOutput)}

    async def post(self, sandbox_id: str, process_id: str) -> None:
        request: ReadOutput = self.parse(ReadOutput)
        buffer = self.process(sandbox_id, process_id).output[request.stream]
        self.reply(await buffer.read(request.offset, request.wait))


class ProcessStdinHandler(SandboxHandler):
    api = {"post": Operation("Write to a process's stdin", DescribeSandboxProcess, WriteStdin)}

    async def post(self, sandbox_id: str, process_id: str) -> None:
        request: WriteStdin = self.parse(WriteStdin)
        process = self.process(sandbox_id, process_id)
        await process.write(_bytes(request.data), request.eof)
        self.reply(process.describe())


class FileReadHandler(SandboxHandler):
    api = {"post": Operation("Read a file of a sandbox", SandboxFile, SandboxFile)}

    async def post(self, sandbox_id: str) -> None:
        request: SandboxFile = self.parse(SandboxFile)
        data = await self.sandboxes.read_file(self.box(sandbox_id), request.path)
        self.reply(SandboxFile(path=request.path, data=base64.b64encode(data).decode()))


class FileWriteHandler(SandboxHandler):
    api = {"post": Operation("Write a file of a sandbox", SandboxFile, SandboxFile)}

    async def post(self, sandbox_id: str) -> None:
        request: SandboxFile = self.parse(SandboxFile)
        data = _bytes(request.data or "")
        await self.sandboxes.write_file(self.box(sandbox_id), request.path, data, request.append)
        self.reply(SandboxFile(path=request.path))


SANDBOX_ROUTES: list[tuple[str, Any]] = [
    (f"{API}/sandboxes", SandboxesHandler),
    (f"{API}/sandboxes/{ID}", SandboxItemHandler),
    (f"{API}/sandboxes/{ID}/wait", SandboxWaitHandler),
    (f"{API}/sandboxes/{ID}/exec", SandboxExecHandler),
    (f"{API}/sandboxes/{ID}/files/read", FileReadHandler),
    (f"{API}/sandboxes/{ID}/files/write", FileWriteHandler),
    (f"{API}/sandboxes/{ID}/processes/{PROCESS}/wait", ProcessWaitHandler),
    (f"{API}/sandboxes/{ID}/processes/{PROCESS}/output", ProcessOutputHandler),
    (f"{API}/sandboxes/{ID}/processes/{PROCESS}/stdin", ProcessStdinHandler),
]
