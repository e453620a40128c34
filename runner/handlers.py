"""The runner's HTTP API: thin handlers, auth and errors done once in `BaseHandler`.

Every handler streams its request body (`stream_request_body`): tornado would otherwise read a
whole body before `prepare`, so anyone could make the runner take in 100 MiB before the 401. The
token and the body's declared size are checked as soon as the headers are in; a body over
``RunnerConfig.max_body_bytes`` is answered 413 unread, one under it is gathered for `parse`.

Each handler declares its operations in ``api`` (method -> `Operation`), from which the OpenAPI
document is generated (`nbremote_runner.openapi`). The route table is at the bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from tornado.iostream import SSLIOStream, StreamClosedError
from tornado.web import RequestHandler, stream_request_body

from nbremote import __version__
from nbremote.wire.http import (
    CreateSession,
    DeployApp,
    DescribeApp,
    DescribeRunner,
    DescribeSession,
    EndSession,
    ErrorDetail,
    ErrorResponse,
    Health,
    ListAppsResponse,
    ListGpusResponse,
    ListSessionsResponse,
)
from nbremote.wire.images import (
    CreateImage,
    DescribeImage,
    ListImagesResponse,
    PruneImages,
    PruneImagesResponse,
    image_id,
)

from .channel import keep_alive, serve_channel
from .errors import ApiError as ApiError  # re-exported: every handler module raises it
from .errors import RunnerError
from .frames import connect
from .image_types import ImageBuildError, PythonUnavailable
from .images import BUILD_LOG
from .tls import connect_stream

if TYPE_CHECKING:
    from .service import Runner

API = "/api/v1"


@dataclass(frozen=True)
class Operation:
    """One method of one route, for the OpenAPI document."""

    summary: str
    response: type[BaseModel] | None = None
    request: type[BaseModel] | None = None
    status: int = 200
    existing: bool = False  # a create that answers 200 when the resource was already there


@stream_request_body
class BaseHandler(RequestHandler):
    """Bearer-token auth and the body's size in `prepare` (before the body is read), JSON errors
    in `write_error`, pydantic in and out."""

    api: dict[str, Operation] = {}
    public = False
    _chunks: list[bytes]

    @property
    def runner(self) -> Runner:
        """The runner this handler serves."""
        runner: Runner = self.settings["runner"]
        return runner

    def body_limit(self) -> int:
        """The most bytes a request body may hold on this route."""
        return self.runner.config.max_body_bytes

    def prepare(self) -> None:
        self._chunks = []
        limit = self.body_limit()
        try:
            declared = int(self.request.headers.get("Content-Length", "0"))
        except ValueError:
            declared = 0  # tornado answers 400 for it
        # A refused request is answered before its body is read and its connection closed;
        # tornado must not meanwhile refuse the same body again with a bare 400.
        connection: Any = self.request.connection  # HTTP/1: it has set_max_body_size
        connection.set_max_body_size(max(limit, declared))
        self.authorize()
        if declared > limit:
            raise ApiError(
                413,
                "PayloadTooLarge",
                f"the request body is {declared} bytes; the runner takes at most "
                f"{_size(limit)} on {self.request.path} (RunnerConfig.max_body_bytes): "
                "put big data in a Volume",
            )

    def authorize(self) -> None:
        """Refuse a request without the runner's bearer token (401)."""
        token = self.runner.config.token
        if self.public or not token:
            return
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "Unauthorized", "missing or wrong bearer token")

    def data_received(self, chunk: bytes) -> Any:
        # A body declared within the limit, or a chunked one that tornado cuts at the limit.
        self._chunks.append(chunk)

    def translate(self, exc: BaseException | None) -> RunnerError | None:
        """The error to answer for ``exc``, if it is one a client is told (a subclass may
        translate more); None for a fault of the runner's (a bare 500)."""
        return exc if isinstance(exc, RunnerError) else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = self.translate(kwargs.get("exc_info", (None, None, None))[1])
        if error is not None:
            self.set_status(error.status)
            kind, message = error.kind, str(error)
        else:
            kind, message = self._reason, self._reason
        if status_code == 405:
            self.set_header("Allow", ", ".join(method.upper() for method in self.api))
        self.set_header("Content-Type", "application/json")
        self.finish(ErrorResponse(error=ErrorDetail(type=kind, message=message)).model_dump_json())

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if self.translate(value) is None:  # refusals are answers, not runner faults
            super().log_exception(typ, value, tb)

    def parse(self, model: type[BaseModel]) -> Any:
        """The request body as ``model``; 422 naming the bad field if it does not fit."""
        try:
            return model.model_validate_json(b"".join(self._chunks) or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            raise ApiError(422, "ValidationError", f"{field}: {first['msg']}") from exc

    def reply(self, model: BaseModel, status: int = 200) -> None:
        """Answer with a model as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(model.model_dump_json())

    def session_or_404(self, session_id: str) -> Any:
        """The session, or a 404 that says how to make one."""
        session = self.runner.sessions.get(session_id)
        if session is None:
            raise ApiError(
                404, "NotFound", f"no session {session_id!r}; create it with POST {API}/sessions"
            )
        return session

    async def write_log(self, path: Path, followers: set[asyncio.Queue[str]]) -> None:
        """Answer with a log file as text; with ``?follow=1``, then with each new line as it
        is written (``followers`` gets a queue for this request) until the client hangs up."""
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if path.exists():
            self.write(path.read_bytes())
        if not self.get_argument("follow", ""):
            return
        follower: asyncio.Queue[str] = asyncio.Queue()
        followers.add(follower)
        try:
            while True:  # until the client hangs up (flush then raises)
                await self.flush()
                with contextlib.suppress(TimeoutError):
                    self.write(await asyncio.wait_for(follower.get(), 1.0))
        except StreamClosedError:
            pass
        finally:
            followers.discard(follower)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"


class HealthHandler(BaseHandler):
    api = {"get": Operation("Whether the runner is up (no token needed)", Health)}
    public = True

    def get(self) -> None:
        self.reply(Health(version=__version__))


class OpenAPIHandler(BaseHandler):
    api = {"get": Operation("This document")}
    public = True

    def get(self) -> None:
        from .openapi import openapi_document

        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi_document(self.settings["routes"])))


class RunnerHandler(BaseHandler):
    api = {"get": Operation("Describe the runner", DescribeRunner)}

    async def get(self) -> None:
        self.reply(await self.runner.describe())


class SessionsHandler(BaseHandler):
    api = {
        "get": Operation("List notebook sessions", ListSessionsResponse),
        "post": Operation("Open a notebook session", DescribeSession, CreateSession, 201, True),
    }

    def get(self) -> None:
        sessions = [self.runner.describe_session(session) for session in self.runner.sessions]
        self.reply(ListSessionsResponse(sessions=sessions))

    def post(self) -> None:
        request: CreateSession = self.parse(CreateSession)
        opened = self.runner.sessions.open
        session, created = opened(request.id, request.notebook, request.client, request.attach)
        self.set_header("Location", f"{API}/sessions/{session.id}")
        self.reply(self.runner.describe_session(session), 201 if created else 200)


class SessionHandler(BaseHandler):
    api = {
        "get": Operation("Describe a session and its warm workers", DescribeSession),
        "delete": Operation("Close a session and stop its workers", status=204),
    }

    def get(self, session_id: str) -> None:
        session = self.session_or_404(session_id)
        self.reply(self.runner.describe_session(session))

    async def delete(self, session_id: str) -> None:
        self.session_or_404(session_id)
        await self.runner.sessions.drop(session_id)
        self.set_status(204)


class SessionEndHandler(BaseHandler):
    api = {
        "post": Operation(
            "A kernel's goodbye: end its session now (if still its own; workers stop after)",
            DescribeSession,
            EndSession,
        )
    }

    def post(self, session_id: str) -> None:
        request: EndSession = self.parse(EndSession)
        self.session_or_404(session_id)
        ended = self.runner.sessions.end(session_id, request.client)
        self.reply(self.runner.describe_session(ended))


class SessionWorkersHandler(BaseHandler):
    api = {
        "delete": Operation(
            "Stop a session's workers (its remote namespace); ?app=NAME: only those of that "
            "app's functions and classes (the end of its run)",
            status=204,
        )
    }

    async def delete(self, session_id: str) -> None:
        session = self.session_or_404(session_id)
        app = self.get_query_argument("app", None)
        await (session.pools.close_app(app) if app else session.reset())
        self.set_status(204)


class AppsHandler(BaseHandler):
    api = {"get": Operation("List deployed apps", ListAppsResponse)}

    def get(self) -> None:
        apps = [app.describe() for app in self.runner.apps.apps.values()]
        self.reply(ListAppsResponse(apps=apps))


class AppHandler(BaseHandler):
    api = {
        "get": Operation("Describe a deployed app", DescribeApp),
        "put": Operation("Deploy (or redeploy) an app", DescribeApp, DeployApp, 201, True),
        "delete": Operation("Stop an app: its workers stop, it is forgotten", status=204),
    }

    def _app_or_404(self, name: str) -> Any:
        app = self.runner.apps.apps.get(name)
        if app is None:
            raise ApiError(404, "NotFound", self.runner.apps.missing(name))
        return app

    def get(self, name: str) -> None:
        self.reply(self._app_or_404(name).describe())

    async def put(self, name: str) -> None:
        request: DeployApp = self.parse(DeployApp)
        app, created = await self.runner.apps.deploy(name, request)
        self.set_header("Location", f"{API}/apps/{name}")
        self.reply(app.describe(), 201 if created else 200)

    async def delete(self, name: str) -> None:
        self._app_or_404(name)
        await self.runner.apps.stop(name)
        self.set_status(204)


class AppLogsHandler(BaseHandler):
    api = {"get": Operation("What an app's code printed (text; ?follow=1 keeps streaming)")}

    async def get(self, name: str) -> None:
        app = self.runner.apps.apps.get(name)
        if app is None:
            raise ApiError(404, "NotFound", self.runner.apps.missing(name))
        await self.write_log(app.log_path, app.followers)


class GpusHandler(BaseHandler):
    api = {
        "get": Operation("List the runner's GPUs: readings, holders, the queue", ListGpusResponse)
    }

    async def get(self) -> None:
        self.reply(await self.runner.gpus.describe())


class ImagesHandler(BaseHandler):
    api = {
        "get": Operation("List images, most recently used first", ListImagesResponse),
        "post": Operation(
            "Make an image known (built when first used)", DescribeImage, CreateImage, 201, True
        ),
    }

    async def get(self) -> None:
        images = self.runner.images
        described = [await images.describe(d) for d in images.definitions]
        self.reply(ListImagesResponse(images=described))

    async def post(self) -> None:
        request: CreateImage = self.parse(CreateImage)
        images = self.runner.images
        known = image_id(request.steps) in {d.id for d in images.definitions}
        try:
            definition = await images.register(request)
        except PythonUnavailable:
            raise  # a RunnerError: answered as itself
        except ValueError as exc:
            raise ApiError(422, "ValidationError", str(exc)) from None
        self.set_header("Location", f"{API}/images/{definition.id}")
        self.reply(await images.describe(definition), 200 if known else 201)


class ImageHandler(BaseHandler):
    api = {
        "get": Operation("Describe an image (by id or name)", DescribeImage),
        "delete": Operation("Remove an image and the layers only it uses", status=204),
    }

    def _lookup(self, ref: str) -> Any:
        try:
            return self.runner.images.lookup(ref)
        except LookupError as exc:
            raise ApiError(404, "NotFound", str(exc)) from None

    async def get(self, ref: str) -> None:
        self.reply(await self.runner.images.describe(self._lookup(ref)))

    async def delete(self, ref: str) -> None:
        self._lookup(ref)
        try:
            await self.runner.images.remove(ref)
        except RuntimeError as exc:
            raise ApiError(409, "Conflict", str(exc)) from None
        self.set_status(204)


class ImageBuildHandler(BaseHandler):
    api = {"post": Operation("Build an image; its log as text, then a 'result:' line")}

    async def post(self, ref: str) -> None:
        try:
            self.runner.images.lookup(ref)
        except LookupError as exc:
            raise ApiError(404, "NotFound", str(exc)) from None
        self.set_header("Content-Type", "text/plain; charset=utf-8")

        async def line(text: str) -> None:
            self.write(f"{text}\n")
            await self.flush()

        BUILD_LOG.set(line)
        try:
            image = await self.runner.backend.prepare_image(ref)
            self.write(f"result: ok {image}\n")
        except ImageBuildError as exc:
            self.write(f"result: error {exc}\n")


class PruneImagesHandler(BaseHandler):
    api = {
        "post": Operation(
            "Free space: least recently used images first", PruneImagesResponse, PruneImages
        )
    }

    async def post(self) -> None:
        request: PruneImages = self.parse(PruneImages)
        self.reply(await self.runner.images.prune(request.keep_bytes, request.older_than_s))


class ChannelHandler(BaseHandler):
    api = {"get": Operation("Upgrade to the session's frame channel (Upgrade: nbremote-frames)")}

    async def get(self, session_id: str) -> None:
        session = self.session_or_404(session_id)
        if self.request.headers.get("Upgrade", "").lower() != "nbremote-frames":
            raise ApiError(400, "BadRequest", "this route needs 'Upgrade: nbremote-frames'")
        stream = self.detach()
        keep_alive(stream.socket)  # a kernel whose machine went silent is noticed in seconds
        await stream.write(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: nbremote-frames\r\nConnection: Upgrade\r\n\r\n"
        )
        if isinstance(stream, SSLIOStream):  # asyncio cannot adopt an established TLS session
            connection = connect_stream(stream, self.runner.config.frame_limits)
            await serve_channel(self.runner, session, connection)
            return
        # The client sends no frame before it has read the 101, so tornado holds no unread bytes:
        # the socket is handed over to a FrameConnection as it is.
        stream.io_loop.remove_handler(stream.socket)
        sock = socket.socket(fileno=stream.socket.detach())
        connection = await connect(sock, self.runner.config.frame_limits)
        await serve_channel(self.runner, session, connection)


# Path parameters are named groups: tornado passes them by name, the OpenAPI document names them.
SESSION = r"(?P<session_id>[A-Za-z0-9_-]+)"
APP = r"(?P<name>[A-Za-z0-9_.-]+)"
IMAGE = r"(?P<ref>[A-Za-z0-9_.-]+)"
RUNNER_ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (f"{API}/health", HealthHandler),
    (f"{API}/openapi.json", OpenAPIHandler),
    (f"{API}/runner", RunnerHandler),
    (f"{API}/gpus", GpusHandler),
    (f"{API}/sessions", SessionsHandler),
    (f"{API}/sessions/{SESSION}", SessionHandler),
    (f"{API}/sessions/{SESSION}/workers", SessionWorkersHandler),
    (f"{API}/sessions/{SESSION}/end", SessionEndHandler),
    (f"{API}/sessions/{SESSION}/channel", ChannelHandler),
    (f"{API}/apps", AppsHandler),
    (f"{API}/apps/{APP}", AppHandler),
    (f"{API}/apps/{APP}/logs", AppLogsHandler),
    (f"{API}/images", ImagesHandler),
    (f"{API}/images/prune", PruneImagesHandler),
    (f"{API}/images/{IMAGE}", ImageHandler),
    (f"{API}/images/{IMAGE}/build", ImageBuildHandler),
]
