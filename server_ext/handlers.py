"""The REST side of the extension: ``/nbremote/api/...``, the runner's API behind Jupyter's auth.

Thin: each handler is one typed call of the runner (`RunnerLink.call`) and answers the document
the runner answered, re-serialized from its wire model, so nothing the runner adds slips through
untyped. A failure answers ``{"error": {"type", "message"}}`` as the runner's API does (`link.
error_answer`). A name from the URL goes to the runner percent-quoted as one path segment: it is
looked up there, never a path here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from nbremote._promote import parse_schedule
from nbremote.errors import NbremoteError
from nbremote.wire.endpoints import DescribeEndpoint, ListEndpointsResponse
from nbremote.wire.http import DescribeRunner, ListGpusResponse, ListSessionsResponse
from nbremote.wire.jobs import DescribeJob, DescribeJobRun, ListJobRunsResponse, ListJobsResponse

from .link import RunnerLink, error_answer

API = "/api/v1"
NAME = r"(?P<name>[^/]{1,200})"
# The two segments of an endpoint named "app/function" (one segment also takes "app%2Ffunction").
TWO = r"(?P<name>[^/]{1,200}/[^/]{1,200})"
RUN = r"(?P<run>[0-9]{1,9}|last)"
SESSION = r"(?P<session_id>[A-Za-z0-9_-]{1,64})"


def segment(name: str) -> str:
    """A name from our URL as one path segment of the runner's."""
    return quote(name, safe="")


class RunnerHandler(APIHandler):
    """A handler that reaches the runner; runner failures answer as the runner's API does."""

    auth_resource = "nbremote"

    @property
    def link(self) -> RunnerLink:
        link: RunnerLink = self.settings["nbremote_link"]
        return link

    def answer(self, document: BaseModel | dict[str, Any] | None, status: int = 200) -> None:
        self.set_status(status)
        if document is None:
            self.finish()
            return
        if isinstance(document, BaseModel):
            document = document.model_dump(mode="json")
        self.finish(json.dumps(document))

    def fail(self, exc: NbremoteError) -> None:
        status, document = error_answer(exc)
        self.answer(document, status)

    async def proxy(
        self,
        method: str,
        path: str,
        response: type[BaseModel] | None = None,
        body: BaseModel | None = None,
        status: int = 200,
    ) -> None:
        try:
            found = await self.link.call(method, API + path, body, response)
        except NbremoteError as exc:
            self.fail(exc)
            return
        self.answer(found, 204 if response is None else status)

    async def proxy_text(self, path: str) -> None:
        try:
            text = await self.link.text(API + path)
        except NbremoteError as exc:
            self.fail(exc)
            return
        self.finish(text, set_content_type="text/plain; charset=utf-8")


class StatusHandler(RunnerHandler):
    """Whether a runner is reachable, and what it says of itself: never an error answer, since
    "no runner" is a state the status bar shows."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            runner = await self.link.call("GET", f"{API}/runner", response=DescribeRunner)
        except NbremoteError as exc:
            self.answer({"connected": False, "url": None, "runner": None, "error": str(exc)})
            return
        assert runner is not None
        document = {"connected": True, "url": self.link.url, "runner": runner.model_dump()}
        self.answer(document | {"error": None})


class JobsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.proxy("GET", "/jobs", ListJobsResponse)


class JobHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.proxy("GET", f"/jobs/{segment(name)}", DescribeJob)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.proxy("DELETE", f"/jobs/{segment(name)}")


class JobActionHandler(RunnerHandler):
    """Pause or resume a job."""

    @web.authenticated
    @authorized
    async def post(self, name: str, action: str) -> None:
        await self.proxy("POST", f"/jobs/{segment(name)}/{action}", DescribeJob)


class JobRunsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        limit = self.get_query_argument("limit", "10")
        limit = limit if limit.isdigit() else "10"
        await self.proxy("GET", f"/jobs/{segment(name)}/runs?limit={limit}", ListJobRunsResponse)

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Run the job now (with its stored inputs)."""
        from nbremote.wire.jobs import RunJob

        await self.proxy("POST", f"/jobs/{segment(name)}/runs", DescribeJobRun, RunJob(), 202)


class JobRunLogsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str, run: str) -> None:
        await self.proxy_text(f"/jobs/{segment(name)}/runs/{run}/logs")


class EndpointsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.proxy("GET", "/endpoints", ListEndpointsResponse)


class EndpointHandler(RunnerHandler):
    """One endpoint: its description with its own token (never the runner's), or its removal."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.proxy("GET", f"/endpoints/{segment(name)}", DescribeEndpoint)

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.proxy("DELETE", f"/endpoints/{segment(name)}")


class EndpointLogsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.proxy_text(f"/endpoints/{segment(name)}/logs")


class GpusHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.proxy("GET", "/gpus", ListGpusResponse)


class SessionsHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.proxy("GET", "/sessions", ListSessionsResponse)


class SessionWorkersHandler(RunnerHandler):
    """Stop a notebook's warm workers (its remote namespace goes; the session stays)."""

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        await self.proxy("DELETE", f"/sessions/{session_id}/workers")


class SchedulePreviewHandler(APIHandler):
    """``?schedule=CRON&tz=ZONE``: the schedule read as ``%%remote --schedule`` reads it, and its
    next three fire times; a bad one answers 422 with the magic's own message."""

    auth_resource = "nbremote"

    @web.authenticated
    @authorized
    def get(self) -> None:
        spec = self.get_query_argument("schedule", "")
        tz = self.get_query_argument("tz", "") or None
        try:
            schedule = parse_schedule(spec, tz)
        except (ValueError, TypeError, ValidationError) as exc:
            self.set_status(422)
            self.finish(json.dumps({"error": {"type": "ValidationError", "message": str(exc)}}))
            return
        fires = schedule.next_fires(datetime.now(UTC), 3)
        self.finish(json.dumps({"next_fires": [when.isoformat() for when in fires]}))


def routes(base: str) -> list[tuple[str, type[APIHandler]]]:
    """The extension's routes under the server's base URL."""
    from .events import EventsHandler
    from .try_it import TryEndpointHandler

    api = f"{base.rstrip('/')}/nbremote/api"
    return [
        (f"{api}/status", StatusHandler),
        (f"{api}/events", EventsHandler),
        (f"{api}/schedule-preview", SchedulePreviewHandler),
        (f"{api}/jobs", JobsHandler),
        (f"{api}/jobs/{NAME}", JobHandler),
        (f"{api}/jobs/{NAME}/(?P<action>pause|resume)", JobActionHandler),
        (f"{api}/jobs/{NAME}/runs", JobRunsHandler),
        (f"{api}/jobs/{NAME}/runs/{RUN}/logs", JobRunLogsHandler),
        (f"{api}/endpoints", EndpointsHandler),
        (f"{api}/endpoints/{NAME}/logs", EndpointLogsHandler),
        # Before the two-segment names: "x/try" is reached as "x%2Ftry", as the runner's logs.
        (f"{api}/endpoints/{NAME}/try", TryEndpointHandler),
        (f"{api}/endpoints/{NAME}", EndpointHandler),
        (f"{api}/endpoints/{TWO}", EndpointHandler),
        (f"{api}/gpus", GpusHandler),
        (f"{api}/sessions", SessionsHandler),
        (f"{api}/sessions/{SESSION}/workers", SessionWorkersHandler),
    ]
