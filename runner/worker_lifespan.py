"""An ``asgi_app``'s lifespan in a worker, as uvicorn's ``lifespan="auto"`` runs it.

A FastAPI or Starlette app loads its model in its lifespan (``lifespan=`` or ``on_event``): its
``lifespan.startup`` must have completed before it serves a request, and its
``lifespan.shutdown`` runs when its worker stops (the runner's ``stop``: a scale-down, the app
stopped or redeployed, the runner stopping). The worker builds an app at its first request, so
that request runs the startup, and any that come meanwhile wait for it; the worker's web loop
runs the shutdowns once the runner has said stop (`worker_web.WebApps.run`), before the
``@nr.exit()`` methods, while the runner still answers the app's Dict and Queue calls.

An app that does not speak the protocol (it raises on the lifespan scope, or returns, before
saying how its startup went) is served without a lifespan, as uvicorn's "auto" does. A startup
that fails (``lifespan.startup.failed``, or the app raising after it) fails the requests that
waited for it with its error, and the next request tries again, as a build that failed is.

Standard library only: this runs in the worker.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
_ASGI = {"version": "3.0", "spec_version": "2.0"}


class StartupFailed(Exception):
    """An app said its startup failed (``lifespan.startup.failed``) without raising."""


class _Run:
    """One run of an app's lifespan: its startup, then (once asked) its shutdown."""

    def __init__(self, app: Asgi, state: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = loop.create_future()
        self.stopped: asyncio.Future[None] = loop.create_future()
        self._messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._messages.put_nowait({"type": "lifespan.startup"})
        self._failed: str | None = None  # the message of a startup the app said failed
        scope = {"type": "lifespan", "asgi": _ASGI, "state": state}
        self.task = loop.create_task(self._main(app, scope))

    async def _main(self, app: Asgi, scope: dict[str, Any]) -> None:
        error: Exception | None = None
        try:
            await app(scope, self._receive, self._send)
        except Exception as exc:  # its error, if its startup failed; else no lifespan at all
            error = exc
        if not self.started.done():
            if self._failed is None:  # it does not speak the protocol: served without
                self.started.set_result(None)
            else:
                self.started.set_exception(error or StartupFailed(self._failed))
        elif error is not None and not self.stopped.done():
            print(f"the app's lifespan failed: {error!r}", file=sys.stderr)
        if not self.stopped.done():
            self.stopped.set_result(None)

    async def _receive(self) -> dict[str, Any]:
        return await self._messages.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and not self.started.done():
            self.started.set_result(None)
        elif kind == "lifespan.startup.failed":
            self._failed = str(message.get("message") or "the app's startup failed")
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if kind == "lifespan.shutdown.failed":
                print(f"the app's shutdown failed: {message.get('message')}", file=sys.stderr)
            if not self.stopped.done():
                self.stopped.set_result(None)

    async def shutdown(self) -> None:
        """Ask for the shutdown and wait until the app has done it (or ended)."""
        if self.task.done():
            return
        self._messages.put_nowait({"type": "lifespan.shutdown"})
        await self.stopped
        sys.stdout.flush()
        sys.stderr.flush()


class WithLifespan:
    """``app`` served after its lifespan's startup (run by the first request, awaited by those
    that come meanwhile); its lifespan's state, if it keeps one, copied into each request's
    scope (``request.state``), as the ASGI spec says."""

    def __init__(self, app: Asgi | None, made: Callable[[], Awaitable[Asgi]] | None = None) -> None:
        self.app = app
        self._made = made  # an async factory's app, awaited before the startup (if no ``app``)
        self.state: dict[str, Any] = {}
        self._ready = False
        self._run: _Run | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if not self._ready:
            await self._start()
        if self.state:
            scope["state"] = self.state.copy()
        await self.app(scope, receive, send)  # type: ignore[misc]  # made by `_start`

    async def _start(self) -> None:
        if self.app is None:
            assert self._made is not None
            self.app = await self._made()  # a factory that raises fails the request, as a build
        if self._run is None:
            self.state = {}
            self._run = _Run(self.app, self.state)
        run = self._run
        try:
            await asyncio.shield(run.started)  # a request cancelled meanwhile leaves it going
        except Exception:
            if self._run is run:  # the next request tries again
                self._run = None
            raise
        self._ready = True

    async def shutdown(self) -> None:
        """Run the lifespan's shutdown, if its startup completed (the worker is stopping)."""
        if self._ready and self._run is not None:
            await self._run.shutdown()
