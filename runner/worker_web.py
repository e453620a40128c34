"""How a worker serves HTTP requests of a web endpoint: as ASGI, on an event loop of its own.

The runner sends a ``web`` frame per request (the deployed function's payload, the ASGI scope,
the body as a buffer). The app is built once per deployed object (by its content hash): a
FastAPI app with one route at "/" for a ``fastapi_endpoint``, the app the function returns for
an ``asgi_app`` (called once, like an ``@enter``; its lifespan's startup run before its first
request, its shutdown when the worker stops: `worker_lifespan`), ``a2wsgi``'s adapter over the
WSGI app for a ``wsgi_app``. A class's method (``bind`` in the web settings) is first bound to
the class's instance in this worker, made and entered once (`nbremote.wire.classes.instance`),
and served as a function would be. Requests run as tasks of one asyncio loop, which from the
first web request on runs on the worker's main thread and reads the runner's socket itself
(`WebApps.run`): a request is read and run by one thread, with no wake-up of another; several
run at once (as many as the runner sends: its pool's ``max_inputs``); a sync FastAPI route or a
WSGI app runs in their threadpool (on the loop itself for a worker that takes one request at a
time).

The answer streams as the app sends it: ``web_start`` (status, headers), ``web_body`` (a chunk,
``more``), then ``done``. An app that raises answers 500 ``{"error": {"type", "message"}}``,
its traceback printed to stderr (the app's log, never the caller). A ``cancel`` frame (the
caller hung up, or the request ran past its function's timeout) cancels the request's task (a
sync function running on the loop's thread stops at its return, not before).

Standard library only at import: fastapi, starlette and a2wsgi are imported when a web app is
first built, so a worker that serves no endpoint never pays for them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import traceback
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from nbremote.wire.codec import Header
from nbremote.wire.ops import Op

from .worker_io import Outbox
from .worker_lifespan import WithLifespan

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_JSON = [["content-type", "application/json"]]


def error_body(kind: str, message: str) -> bytes:
    """The JSON error document every endpoint answers with."""
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


def _json_errors(app: Any) -> None:
    """Make a Starlette (FastAPI) app answer an exception it does not handle with the JSON error
    (its own handler for it, if it has one, wins); its middleware re-raises it for the log."""
    handlers = getattr(app, "exception_handlers", None)
    if not isinstance(handlers, dict) or Exception in handlers or 500 in handlers:
        return
    from starlette.responses import Response

    async def as_json(request: Any, exc: Exception) -> Any:
        body = error_body(type(exc).__name__, str(exc))
        return Response(body, 500, media_type="application/json")

    handlers[Exception] = as_json


def _fastapi(fn: Any, web: Header, inline: bool) -> Asgi:
    try:
        from fastapi import FastAPI
    except ImportError as exc:
        raise ImportError(
            "a fastapi_endpoint needs fastapi in the worker's image: add .pip_install('fastapi')"
        ) from exc
    docs = bool(web.get("docs"))
    app = FastAPI(
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    method = str(web.get("method") or "GET").upper()
    if method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        fn.__signature__ = _from_the_body(fn)
    if inline and not inspect.iscoroutinefunction(fn):
        fn = _inline(fn)
    app.add_api_route("/", fn, methods=[method])
    _json_errors(app)
    return app


def _inline(fn: Any) -> Any:
    """``fn`` as a coroutine function that calls it on the loop's own thread: no hop to a pool
    thread and back, the biggest cost of a small request. Only for a worker that takes one
    request at a time (its loop has nothing else to do meanwhile). To ``fn``, as in a pool
    thread, no loop is running: ``asyncio.run`` inside it works. ``fn`` as it is if its
    annotations cannot be resolved here (FastAPI then reads them from its globals)."""
    try:
        signature = _resolved(fn, strict=True)
    except Exception:
        return fn

    async def call(*args: Any, **kwargs: Any) -> Any:
        running = asyncio._get_running_loop()
        asyncio._set_running_loop(None)
        try:
            return fn(*args, **kwargs)
        finally:
            asyncio._set_running_loop(running)

    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(call, name, getattr(fn, name, None) or getattr(call, name))
    call.__signature__ = signature  # type: ignore[attr-defined]
    return call


def _resolved(fn: Any, strict: bool = False) -> inspect.Signature:
    """``fn``'s signature, its annotations resolved from its own globals (as far as they can be,
    unless ``strict``)."""
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # a name the by-value pickle did not bring: FastAPI reads what it can
        if strict:
            raise
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]
    returns = hints.get("return", signature.return_annotation)
    return signature.replace(parameters=params, return_annotation=returns)


def _from_the_body(fn: Any) -> inspect.Signature:
    """``fn``'s signature with each parameter read from the JSON body (DESIGN: a POST takes JSON
    in): a lone pydantic model is the whole body, other parameters are its fields by name.
    FastAPI's own markers (Query, Header, Depends...) and ``Request`` parameters stay as they
    are. Annotations are resolved here, from the function's own globals."""
    from fastapi import Body, Request
    from fastapi.params import Depends, Param
    from pydantic import BaseModel

    signature = _resolved(fn)
    params = list(signature.parameters.values())
    plain = [
        p
        for p in params
        if not isinstance(p.default, Param | Depends)
        and typing.get_origin(p.annotation) is not typing.Annotated
        and p.annotation is not Request
    ]
    lone_model = (
        len(plain) == 1
        and isinstance(plain[0].annotation, type)
        and issubclass(plain[0].annotation, BaseModel)
    )
    if not lone_model:
        params = [
            p.replace(default=Body(... if p.default is p.empty else p.default, embed=True))
            if p in plain
            else p
            for p in params
        ]
    return signature.replace(parameters=params)


def _wsgi(fn: Any) -> Asgi:
    from a2wsgi import WSGIMiddleware

    wsgi = fn()
    config = getattr(wsgi, "config", None)  # Flask: let an error reach us, to answer it as JSON
    if isinstance(config, dict) and config.get("PROPAGATE_EXCEPTIONS") is None:
        config["PROPAGATE_EXCEPTIONS"] = True
    adapted: Asgi = WSGIMiddleware(wsgi)  # type: ignore[assignment]
    return adapted


def _bound(cls: type, method: str) -> Any:
    """``method`` of the class's one instance in this worker (made, its ``@nr.enter()`` methods
    run, on first use; its parameters' defaults), as a plain function of the method's other
    parameters (FastAPI reads its signature: ``self`` is not one)."""
    from nbremote.wire.classes import instance

    obj = instance(f"web:{cls.__module__}.{cls.__qualname__}", cls, (), {})
    bound = getattr(obj, method)
    if inspect.iscoroutinefunction(bound):

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await bound(*args, **kwargs)

    else:

        def call(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return bound(*args, **kwargs)

    functools.update_wrapper(call, bound)  # its globals resolve its annotations
    call.__signature__ = _resolved(bound)  # type: ignore[attr-defined]
    return call


def build(fn: Any, web: Header, inline: bool = False) -> Asgi:
    """The ASGI app of a deployed function for its web settings; ``inline``: a sync
    ``fastapi_endpoint`` runs on the loop's thread (its worker takes one request at a time).
    With ``bind``, ``fn`` is a class and its method of that name is served.

    Raises:
        ValueError: a kind this worker cannot serve.
    """
    if web.get("bind"):
        fn = _bound(fn, str(web["bind"]))
    kind = web.get("kind")
    if kind == "fastapi_endpoint":
        return _fastapi(fn, web, inline)
    if kind == "wsgi_app":
        return _wsgi(fn)
    if kind == "asgi_app":  # its lifespan's startup runs before its first request
        app = fn()
        if asyncio.iscoroutine(app):  # an async factory: awaited where the app will run
            return WithLifespan(None, _Awaited(fn, app).made)
        _json_errors(app)
        return WithLifespan(app)
    if kind == "web_server":  # the server the function starts, behind a forwarding app
        from .worker_web_server import web_server_app

        return web_server_app(fn, int(web["port"]), float(web.get("startup_timeout") or 5.0))
    raise ValueError(f"web kind {kind!r} cannot be served by this worker (not built yet)")


class _Awaited:
    """The app of an async factory, awaited by the first request (on the loop, which is this
    thread's own and may be running already; `WithLifespan` asks for it before the app's
    startup); a factory that raised is called again by the next request, as a factory whose
    build failed is."""

    def __init__(self, factory: Callable[[], Any], first: Any) -> None:
        self._factory, self._coroutine = factory, first
        self._app: Asgi | None = None
        self._lock = asyncio.Lock()

    async def made(self) -> Asgi:
        """The factory's app (awaited once)."""
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    coroutine, self._coroutine = self._coroutine or self._factory(), None
                    app = await coroutine
                    _json_errors(app)
                    self._app = app
        return self._app


class _Answer:
    """One request's answer as frames, in as few writes as it can: the start waits for the
    body's first chunk (a one-chunk answer is one frame), and the last chunk waits for the app to
    return, or for the loop to turn if it does not at once (background tasks), so that it goes
    out with the ``done``: one write, one wake-up of the runner."""

    def __init__(self, outbox: Outbox, request_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self._outbox = outbox
        self._id = request_id
        self._loop = loop
        self._start: Header | None = None  # the app's start, until its first chunk
        self._held: list[tuple[Header, list[bytes]]] = []
        self.started = False
        self.finished = False

    async def send(self, message: dict[str, Any]) -> None:
        """The ASGI ``send`` of the request."""
        if message["type"] == "http.response.start" and not self.started:
            self.started = True
            headers = [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in message.get("headers", ())
            ]
            status = int(message["status"])
            self._start = {"op": Op.WEB_START, "id": self._id, "status": status, "headers": headers}
        elif message["type"] == "http.response.body" and self.started and not self.finished:
            more = bool(message.get("more_body", False))
            chunk = bytes(message.get("body", b""))
            if chunk or not more:
                self._hold(chunk, more)
            if more:  # a stream's chunk goes now
                self.write()
            else:
                self.finished = True
                self._loop.call_soon(self.write)  # unless the app returns first (`end`)

    def _hold(self, chunk: bytes, more: bool) -> None:
        if self._start is not None:
            header, self._start = {**self._start, "more": more}, None
        else:
            header = {"op": Op.WEB_BODY, "id": self._id, "more": more}
        self._held.append((header, [chunk]))

    def write(self, done: bool = False) -> None:
        """Send what is held (and the ``done``: an answer of one chunk is the ``done`` alone)."""
        frames, self._held = self._held, []
        if done:
            frames = _with_done(self._id, frames)
        if frames:
            self._outbox.send_joined(frames)

    def end(self) -> None:
        """The app has returned: the body ends (empty, if it sent none) and the ``done``."""
        if not self.finished:
            self._hold(b"", False)
            self.finished = True
        self.write(done=True)


def _with_done(request_id: str, frames: list[tuple[Header, list[bytes]]]) -> list[Any]:
    """``frames`` then the request's ``done``; a lone ``web_start`` of the whole body becomes
    the ``done``'s ``answer`` (one frame for the runner to read instead of two)."""
    done: Header = {"op": Op.DONE, "id": request_id, "ok": True}
    if len(frames) == 1 and frames[0][0]["op"] == Op.WEB_START and frames[0][0]["more"] is False:
        start, body = frames[0]
        done["answer"] = {"status": start["status"], "headers": start["headers"]}
        return [(done, body)]
    return [*frames, (done, [])]


class WebApps:
    """The web apps of one worker, and the requests they are serving."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._apps: dict[tuple[Any, ...], Asgi] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready: Callable[[], object] = lambda: None

    def run(self, fd: int, ready: Callable[[], bool], buffered: bool) -> None:
        """Run the loop on this (the worker's main) thread, reading the runner's socket ``fd``
        on it: ``ready`` serves the frames that have come, False when the worker must stop.
        One thread reads a request and runs it: no wake-up of another thread per request.
        ``buffered``: a frame was read already (no readiness of ``fd`` will say so). Once told
        to stop, the apps' lifespan shutdowns run before it returns."""
        loop = self._loop

        def on_readable() -> None:
            if not ready():
                loop.stop()

        self._ready = lambda: loop.call_soon(on_readable)
        loop.add_reader(fd, on_readable)
        if buffered:
            self._ready()
        try:
            loop.run_forever()
        finally:
            loop.remove_reader(fd)
        self._ready = lambda: None  # stopping: what is read now answers a shutdown's Dict calls
        loop.run_until_complete(self._shut_down())

    async def _shut_down(self) -> None:
        """The worker stops: the lifespans' shutdowns (`worker_lifespan`) run, one app at a time."""
        for app in list(self._apps.values()):
            if isinstance(app, WithLifespan):
                await app.shutdown()

    def wake(self) -> None:
        """Serve the frames read already (while a request waited for its answer)."""
        self._ready()

    def serve(self, header: Header, body: bytes, function: Callable[[], Any]) -> None:
        """Start serving a ``web`` request (on the loop's thread); its answer follows from its task.
        ``function`` gives the deployed function, when its app is not built yet."""
        request_id = header["id"]
        try:
            inline = int(header.get("concurrency") or 1) == 1
            app = self._app(header["function"], header["web"], inline, function)
        except Exception as exc:  # the app could not be built: every request says why
            traceback.print_exc()
            sys.stderr.flush()
            self._answer_error(request_id, 500, type(exc).__name__, str(exc))
            return
        kind = header["web"].get("kind")
        if kind == "fastapi_endpoint" and not self._is_json(header["scope"], body):
            message = "the request body is not JSON"
            self._answer_error(request_id, 400, "BadRequest", message)
            return
        scope = self._scope(header["scope"])
        if kind == "fastapi_endpoint" and body.strip():  # JSON it is (`curl -d` says form)
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope["headers"] = [*headers, (b"content-type", b"application/json")]
        self._start(request_id, app, scope, body)

    def cancel(self, request_id: str) -> None:
        """The caller has gone: stop its request (a stream that never ends, say)."""
        task = self._tasks.get(request_id)
        if task is not None:
            task.cancel()

    def _app(self, item: Header, web: Header, inline: bool, function: Callable[[], Any]) -> Asgi:
        key = (item.get("hash"), *sorted(web.items()), inline)  # the settings are scalars
        app = self._apps.get(key)
        if app is None:
            app = self._apps[key] = build(function(), web, inline)
        return app

    @staticmethod
    def _is_json(scope: Header, body: bytes) -> bool:
        if scope["method"].upper() not in BODY_METHODS or not body.strip():
            return True
        try:
            json.loads(body)
        except ValueError:
            return False
        return True

    @staticmethod
    def _scope(scope: Header) -> dict[str, Any]:
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": scope["method"].upper(),
            "scheme": "http",
            "path": scope["path"],
            "raw_path": scope["path"].encode("utf-8", "surrogateescape"),
            "root_path": scope["root_path"],
            "query_string": scope["query_string"].encode("latin-1"),
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in scope["headers"]
            ],
            "server": None,
            "client": None,
            "state": {},
        }

    def _answer_error(self, request_id: str, status: int, kind: str, message: str) -> None:
        start = {"op": Op.WEB_START, "id": request_id, "status": status, "headers": _JSON}
        self._outbox.send_joined(
            _with_done(request_id, [({**start, "more": False}, [error_body(kind, message)])])
        )

    def _start(self, request_id: str, app: Asgi, scope: dict[str, Any], body: bytes) -> None:
        task = self._loop.create_task(self._run(request_id, app, scope, body))
        self._tasks[request_id] = task
        task.add_done_callback(lambda _: self._finished(request_id))

    def _finished(self, request_id: str) -> None:
        self._tasks.pop(request_id, None)
        # Output printed from now on belongs to a request still in progress, if there is one.
        going = next(iter(self._tasks), None)
        self._outbox.serve(going)
        self._outbox.by_default(going)

    async def _run(self, request_id: str, app: Asgi, scope: dict[str, Any], body: bytes) -> None:
        # What the app prints goes to a request in progress (the runner puts it in the app's log),
        # from this loop's thread and from the threads the app runs code in.
        self._outbox.serve(request_id)
        self._outbox.by_default(request_id)
        answer, ended = _Answer(self._outbox, request_id, self._loop), asyncio.Event()
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await ended.wait()  # the response is over (or the caller gone): a disconnect
            return {"type": "http.disconnect"}

        try:
            await app(scope, receive, answer.send)
        except asyncio.CancelledError:
            pass  # the caller has gone: nobody reads the rest
        except Exception as exc:
            traceback.print_exc()
            sys.stderr.flush()  # before the done: the runner logs what the request printed
            if not answer.started:
                self._answer_error(request_id, 500, type(exc).__name__, str(exc))
                return
        finally:
            ended.set()
            sys.stdout.flush()
        if not answer.started:
            self._answer_error(request_id, 500, "NoResponse", "the app sent no response")
            return
        answer.end()
