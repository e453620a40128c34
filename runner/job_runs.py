"""One run of a scheduled job: the stored request served in a fresh worker, with no client.

A run is a request like a cell's (`Dispatcher.serve`), in a throwaway session of its own
(``job:{name}``, ended after the run, so each run starts from an empty namespace), whose frames
go to `RunForward` instead of a channel: what the code prints goes to the run's log (a file per
run, appended in order off the event loop), the worker's ``need`` for inputs is answered from the
job blob store, and ``input()`` is refused as nbclient refuses it (``StdinNotImplementedError``).

The outputs the ``done`` brings back are stored as blobs, by hash, as they came: the runner
never unpickles what a worker sends. They are described from what the worker's ``done`` says:
its namespace summary (each name's type and size) and, asked for with the request's ``reprs``,
each output's repr made by the worker (text, cut to `REPR_LIMIT` here too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.jobs import DescribeJobOutput
from nbremote.wire.ops import Op
from nbremote.wire.reprs import REPR_LIMIT
from nbremote.wire.serialize import content_hash

from .job_blobs import BlobRefused, BlobStore, checked
from .job_store import JobRecord, JobRun, JobStore, StoredOutput
from .sessions import Session

if TYPE_CHECKING:
    from .dispatch import Dispatcher
    from .gpus import GpuBroker

log = logging.getLogger(__name__)
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KWARGS = "_nbremote_job_kwargs"  # a function job's keyword arguments (see `job_apps`)
STDIN_REFUSED = "raw_input was called, but this frontend does not support input requests."


class RunLogs:
    """Each run's output, in a file per run (named by the run's id, which the runner made)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="nbremote-job-logs")

    def path(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id):
            raise ValueError(f"{run_id[:40]!r} is not a run id")
        return self.root / f"{run_id}.log"

    def write(self, run_id: str, text: str) -> None:
        """Append to a run's log, behind (in order)."""
        if text:
            self._writer.submit(self._append, self.path(run_id), text)

    def _append(self, path: Path, text: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", errors="replace") as file:
            file.write(text)

    async def read(self, run_id: str, offset: int = 0) -> tuple[str, int]:
        """A run's log from byte ``offset`` (after what was written so far), and its end."""
        path = self.path(run_id)

        def read() -> tuple[bytes, int]:
            try:
                with path.open("rb") as file:
                    file.seek(offset)
                    data = file.read()
            except FileNotFoundError:
                return b"", offset
            return data, offset + len(data)

        loop = asyncio.get_running_loop()
        data, end = await loop.run_in_executor(self._writer, read)  # after the writes before it
        return data.decode("utf-8", errors="replace"), end

    def remove(self, run_ids: Sequence[str]) -> None:
        """Delete runs' logs (behind)."""
        for run_id in run_ids:
            self._writer.submit(self.path(run_id).unlink, missing_ok=True)

    def close(self) -> None:
        self._writer.shutdown()


@dataclass
class RunContext:
    """What running a job needs from the runner."""

    dispatcher: Dispatcher
    gpus: GpuBroker
    blobs: BlobStore
    logs: RunLogs
    store: JobStore


class RunForward:
    """Where a run's frames go: its log, and answers to what its worker asks."""

    def __init__(
        self, ctx: RunContext, run_id: str, session: Session, request_id: str, allowed: set[str]
    ) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.session = session
        self.request_id = request_id
        self.allowed = allowed  # the hashes this run's worker may ask for: its inputs
        self.showed_error = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, header: Header, buffers: Sequence[Buffer]) -> None:
        op = header.get("op")
        if op == Op.STREAM:
            self.write(str(header.get("text", "")))
        elif op in (Op.RESULT, Op.DISPLAY):
            text = (header.get("data") or {}).get("text/plain")
            if isinstance(text, str):
                self.write(text + "\n")
        elif op == Op.ERROR:
            self.showed_error = True
            self.write(_traceback(header))
        elif op == Op.NOTICE:  # not status lines: a notebook's transient "starting a worker"
            self.write(f"[nbremote] {header.get('text', '')}\n")
        elif op == Op.NEED:
            task = asyncio.create_task(self._answer_need(header.get("hashes")))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif op == Op.INPUT:
            error = {"ename": "StdinNotImplementedError", "evalue": STDIN_REFUSED}
            self._send({"op": Op.INPUT_REPLY, "id": self.request_id, "error": error}, [])

    def write(self, text: str) -> None:
        self.ctx.logs.write(self.run_id, text)

    def _send(self, header: Header, buffers: Sequence[Buffer]) -> None:
        worker = self.session.serving(self.request_id)
        if worker is not None:
            worker.send(header, buffers)

    async def _answer_need(self, hashes: object) -> None:
        """The worker's inputs, from the blob store: only those the run's request names (the
        worker runs anyone's code, and asks for whatever it likes)."""
        items: list[Header] = []
        buffers: list[memoryview] = []
        for content in hashes if isinstance(hashes, list) else []:
            if content not in self.allowed:
                continue
            try:
                parts = await self.ctx.blobs.get(content)
            except (LookupError, BlobRefused):
                continue  # the worker says which input it lacks
            items.append({"name": "", "hash": content, "nbuf": len(parts)})
            buffers.extend(parts)
        self._send({"op": Op.BLOBS, "id": self.request_id, "items": items}, buffers)


def _traceback(error: Header) -> str:
    lines = error.get("traceback") or [f"{error.get('ename')}: {error.get('evalue')}"]
    return ANSI.sub("", "\n".join(str(line) for line in lines)) + "\n"


def with_params(request: Header, params: dict[str, Any]) -> tuple[Header, dict[str, list[bytes]]]:
    """The request with the inputs named in ``params`` replaced by their (JSON) values, pickled
    here (plain pickle of JSON values: nothing to fear), and those values' parts by hash; a
    function job's ``params`` are its keyword arguments."""
    blobs: dict[str, list[bytes]] = {}
    inputs = []
    if params and any(item["name"] == KWARGS for item in request["inputs"]):
        params = {KWARGS: params}  # a function job's: its keyword arguments
    for item in request["inputs"]:
        name = item["name"]
        if name in params:
            parts = [pickle.dumps(params[name], protocol=5)]
            content = content_hash(parts)
            blobs[content] = parts
            item = {"name": name, "hash": content, "nbuf": 0}
        inputs.append(item)
    return {**request, "inputs": inputs}, blobs


async def execute(ctx: RunContext, record: JobRecord, run: JobRun) -> None:
    """Run ``run`` of ``record`` to its end (retries included), keeping its record up to date."""
    run.status, run.started = "running", time.time()
    ctx.store.save_run(run)
    try:
        request, blobs = with_params(record.request, run.params)
        for content, parts in blobs.items():
            await ctx.blobs.put(content, parts, verify=False)
        for attempt in range(1, record.settings.retries + 2):
            run.attempt, run.status = attempt, "running"  # a retry is running, not failed
            if attempt > 1:
                ctx.logs.write(
                    run.id, f"[nbremote] attempt {attempt} of {record.settings.retries + 1}\n"
                )
                ctx.store.save_run(run)
            done, out, forward = await _attempt(ctx, record, run, request)
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
            if done.get("ok"):
                run.outputs = await stored_outputs(ctx.blobs, done, out)
                run.status, run.error = "succeeded", None
                break
            error = done.get("error") or {}
            run.status = "failed"
            run.error = f"{error.get('ename', 'Error')}: {error.get('evalue', '')}"
            if not forward.showed_error:
                forward.write(_traceback(error))
    except asyncio.CancelledError:
        run.status, run.error = "interrupted", "RunnerStopped: the run was stopped"
        raise
    except Exception as exc:  # a fault of the runner's: the run fails, the schedule goes on
        log.exception("job %s: run %d failed in the runner", record.name, run.number)
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        run.finished = time.time()
        ctx.store.save_run(run)


async def _attempt(
    ctx: RunContext, record: JobRecord, run: JobRun, request: Header
) -> tuple[Header, list[Any], RunForward]:
    """One attempt: a fresh session and worker, the request served, the session ended."""
    session = Session(f"job:{record.name}", f"job {record.name}", ctx.gpus)
    request_id = f"{run.id}-{run.attempt}"
    header: Header = {**request, "id": request_id, "reprs": True}
    if record.settings.timeout is not None:
        header["timeout"] = record.settings.timeout
    allowed = {item["hash"] for item in header["inputs"] if "hash" in item}
    forward = RunForward(ctx, run.id, session, request_id, allowed)
    try:
        done, out = await ctx.dispatcher.serve(header, [], forward, session)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(session.end())
    return done, out, forward


async def stored_outputs(blobs: BlobStore, done: Header, out: list[Any]) -> list[StoredOutput]:
    """A done's outputs, stored as blobs by hash and described without unpickling them.

    The worker runs anyone's code: a malformed item is left out, never trusted as a path."""
    described = {str(o.get("name")): o for o in done.get("namespace") or () if isinstance(o, dict)}
    reprs = done.get("reprs")
    reprs = reprs if isinstance(reprs, dict) else {}
    stored: list[StoredOutput] = []
    position = 0
    for item in done.get("outputs") or ():
        try:
            nbuf = int(item.get("nbuf") or 0)
            parts, position = out[position : position + nbuf], position + nbuf
            name = str(item["name"])
            if "hash" in item:
                kept: Header = {"name": name, "hash": checked(item["hash"])}
                if parts:  # hashed here: the store's names are the runner's promise
                    kept["hash"] = content_hash(parts)
                    await blobs.put(kept["hash"], parts, verify=False)
                elif await blobs.missing([kept["hash"]]):
                    continue
            else:
                kept = {k: item[k] for k in ("name", "module", "attr", "shell") if k in item}
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        info = described.get(name, {})
        kind = str(info.get("type") or ("module" if "module" in kept else "object"))
        size = sum(memoryview(part).nbytes for part in parts) or info.get("nbytes") or 0
        shown = reprs.get(name)
        if isinstance(shown, str):  # the worker's repr of its own value: text, cut short here
            text = shown[:REPR_LIMIT]
        elif "hash" in kept:
            text = f"<{kind}: {size} bytes>"
        else:
            text = f"<module {kept.get('module')}>"
        output = DescribeJobOutput(name=name, type=kind, repr=text, nbytes=int(size))
        stored.append(StoredOutput(output, kept))
    return stored


async def outputs_frame(blobs: BlobStore, run: JobRun) -> tuple[Header, list[memoryview]]:
    """The frame the outputs endpoint answers: a done as a cell's, the values' parts after it."""
    items: list[Header] = []
    buffers: list[memoryview] = []
    for output in run.outputs:
        item = dict(output.item)
        if "hash" in item:
            parts = await blobs.get(item["hash"])
            item["nbuf"] = len(parts)
            buffers.extend(parts)
        items.append(item)
    return {"op": Op.DONE, "id": run.id, "ok": True, "outputs": items}, buffers
