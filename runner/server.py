"""The runner's HTTP server: the route table in one place, and `serve`.

`serve` runs a runner in the foreground until SIGINT/SIGTERM (or, for the embedded runner, until
it has been idle for its ``idle_timeout``). Handlers reach the runner through their application's
settings; the runner gets its application from here, so neither imports the other's module.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from tornado.web import Application

from .endpoint_front import FrontApplication
from .endpoint_handlers import ENDPOINT_ROUTES
from .handlers import RUNNER_ROUTES, ApiError, BaseHandler
from .job_handlers import JOB_ROUTES
from .sandbox_handlers import SANDBOX_ROUTES
from .service import Runner, RunnerConfig
from .stats_handlers import STATS_ROUTES
from .storage_handlers import STORAGE_ROUTES

ROUTES: list[tuple[str, type[BaseHandler]]] = [
    *RUNNER_ROUTES,
    *STORAGE_ROUTES,
    *JOB_ROUTES,
    *ENDPOINT_ROUTES,
    *SANDBOX_ROUTES,
    *STATS_ROUTES,
]


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()  # the token first: without it, nothing is said about what exists
        raise ApiError(404, "NotFound", f"no route {self.request.path}")


def make_app(runner: Runner) -> Application:
    """The runner's HTTP application: its routes (which its OpenAPI document lists) over it,
    ``/endpoints/`` answered by `endpoint_front` without a route."""
    return FrontApplication(
        ROUTES, runner=runner, routes=ROUTES, default_handler_class=NotFoundHandler
    )


def serve(config: RunnerConfig, announce: Callable[[Runner], None]) -> None:
    """Run a runner in the foreground until it is told to stop (or idles out)."""

    async def main() -> None:
        runner = Runner(config)
        await runner.start(make_app(runner))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stopped.set)
        announce(runner)
        await runner.stopped.wait()
        await runner.stop()

    asyncio.run(main())
