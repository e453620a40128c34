"""Live state for the Remote panel and the status bar: server-sent events of what changed.

The runner has no event stream of its own, so one `Monitor` per Jupyter server polls it (at most
once a second, and only while a browser listens) and pushes a topic only when its document
changed. A browser that connects gets every topic at once, then changes. One poll serves every
open tab, however many there are.

Events: ``status`` (connected or not, and why), ``jobs``, ``endpoints``, ``gpus``, ``sessions``,
each the JSON of the matching ``/nbremote/api/...`` answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado import web
from tornado.iostream import StreamClosedError

from nbremote.errors import NbremoteError
from nbremote.wire.endpoints import ListEndpointsResponse
from nbremote.wire.http import DescribeRunner, ListGpusResponse, ListSessionsResponse
from nbremote.wire.jobs import ListJobsResponse

from .link import RunnerLink

POLL_INTERVAL = 1.0  # seconds between two looks at the runner, at most one a second
KEEPALIVE = 15.0  # seconds of silence after which a comment line goes out (finds closed tabs)
TOPICS: dict[str, tuple[str, type[BaseModel]]] = {
    "jobs": ("/api/v1/jobs", ListJobsResponse),
    "endpoints": ("/api/v1/endpoints", ListEndpointsResponse),
    "gpus": ("/api/v1/gpus", ListGpusResponse),
    "sessions": ("/api/v1/sessions", ListSessionsResponse),
}
# What changes on every look without anything happening (a worker's uptime grows each second):
# left out, so an idle runner sends nothing; the panel counts uptime from ``started_at``.
STEADY: dict[str, Any] = {
    "sessions": {"sessions": {"__all__": {"workers": {"__all__": {"uptime_s"}}}}},
}
Event = tuple[str, str]  # (topic, JSON document)


class Monitor:
    """Polls the runner while someone listens; fans each change out to every listener."""

    def __init__(self, link: RunnerLink, interval: float = POLL_INTERVAL) -> None:
        self.link = link
        self.interval = interval
        self.last: dict[str, str] = {}
        self.listeners: set[asyncio.Queue[Event | None]] = set()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Event | None]:
        """A queue of events: what is known now, then each change."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for topic, document in self.last.items():
            queue.put_nowait((topic, document))
        self.listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self.listeners.discard(queue)

    async def stop(self) -> None:
        """End the poll and every listener's stream (the server is shutting down)."""
        for queue in self.listeners:
            queue.put_nowait(None)
        self.listeners.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self.listeners:
            await self.poll()
            await asyncio.sleep(self.interval)
        # Nobody listens: what was seen grows stale, so the next listener waits for a fresh poll.
        self.last.clear()

    async def snapshot(self) -> dict[str, Any]:
        """Every topic's document now; without a runner, only ``status`` (the rest stay as
        they were last seen)."""
        try:
            runner = await self.link.call("GET", "/api/v1/runner", response=DescribeRunner)
            found: dict[str, Any] = {}
            for topic, (path, model) in TOPICS.items():
                document = await self.link.call("GET", path, response=model)
                assert document is not None
                found[topic] = document.model_dump(mode="json", exclude=STEADY.get(topic))
        except NbremoteError as exc:
            return {"status": {"connected": False, "url": None, "runner": None, "error": str(exc)}}
        assert runner is not None
        # The start time is left out: the status event carries only what a user would see
        # change (connected, version, backend, counts).
        described = runner.model_dump(exclude={"started_at"})
        status = {"connected": True, "url": self.link.url, "runner": described, "error": None}
        return {"status": status, **found}

    async def poll(self) -> None:
        """Look once; push the topics whose document changed."""
        for topic, document in (await self.snapshot()).items():
            text = json.dumps(document, sort_keys=True)
            if self.last.get(topic) == text:
                continue
            self.last[topic] = text
            for queue in self.listeners:
                queue.put_nowait((topic, text))


class EventsHandler(APIHandler):
    """``GET /nbremote/api/events``: the monitor's events as ``text/event-stream``."""

    auth_resource = "nbremote"
    _track_activity = False  # an open panel is not a user at work: the server may still cull

    @property
    def monitor(self) -> Monitor:
        monitor: Monitor = self.settings["nbremote_monitor"]
        return monitor

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # a proxy in front must not hold events back
        self._queue = queue = self.monitor.subscribe()
        try:
            self.write(f"retry: {int(POLL_INTERVAL * 2000)}\n\n")
            await self.flush()
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    self.write(": keepalive\n\n")
                else:
                    if event is None:
                        break
                    topic, document = event
                    self.write(f"event: {topic}\ndata: {document}\n\n")
                await self.flush()
        except StreamClosedError:
            return
        finally:
            self.monitor.unsubscribe(queue)
        self.finish(set_content_type="text/event-stream")

    def on_connection_close(self) -> None:
        queue = getattr(self, "_queue", None)
        if queue is not None:
            self.monitor.unsubscribe(queue)
            queue.put_nowait(None)
