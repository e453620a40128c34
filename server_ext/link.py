"""Where the Jupyter server finds the runner: as the kernels do, without starting one.

``NBREMOTE_URL``/``NBREMOTE_TOKEN`` when set, else the embedded runner of ``NBREMOTE_HOME`` (its
runtime file). A kernel starts the embedded runner on its first ``%%remote`` cell; the panel only
looks, so opening JupyterLab never starts a runner, and "no runner" is a state the status bar
shows. The runner's token stays in this process: handlers answer with documents, never headers
or URLs that carry it.

`RunnerClient` is blocking (plain sockets, the kernels' fast path), so every call runs in a thread
of the server's executor; the event loop never waits on the runner.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from nbremote._client import RunnerClient
from nbremote._config import nbremote_home
from nbremote._embedded import find
from nbremote.errors import AuthenticationError, NbremoteError, RunnerError, RunnerUnavailable

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

# The HTTP status a proxied runner error answers with, by the runner's error type.
STATUS_OF_KIND = {
    "NotFound": 404,
    "ValidationError": 422,
    "BadRequest": 400,
    "Conflict": 409,
}


def locate() -> tuple[str, str | None]:
    """The runner's URL and token: the configured one, else the embedded one if it is up.

    Raises:
        RunnerUnavailable: no runner is configured and the embedded one is not running.
    """
    url = os.environ.get("NBREMOTE_URL")
    if url:
        return url, os.environ.get("NBREMOTE_TOKEN")
    home = nbremote_home()
    found = find(home)
    if found is None:
        raise RunnerUnavailable(
            f"no runner: the embedded runner of {home} is not running. Run a %%remote cell "
            "(its kernel starts it), start one with `nbremote runner`, or set NBREMOTE_URL "
            "for the Jupyter server"
        )
    return found


class RunnerLink:
    """One client of the runner for the whole server, re-pointed when the runner moves or
    comes up (the embedded one restarts on a new port)."""

    def __init__(self, locator: Callable[[], tuple[str, str | None]] = locate) -> None:
        self._locate = locator
        self._client: RunnerClient | None = None

    def _connected(self) -> RunnerClient:
        if self._client is None:
            self._client = RunnerClient(*self._locate())
            self._client.find_runner = self._locate
            self._client.timeout = 10.0  # the panel waits less than a kernel
        return self._client

    @property
    def url(self) -> str | None:
        """The runner's URL once known (never its token)."""
        return None if self._client is None else self._client.url

    def _run(self, work: Callable[[RunnerClient], T]) -> T:
        try:
            return work(self._connected())
        except RunnerUnavailable:
            self.close()  # found again on the next call: it may come back elsewhere
            raise

    async def call(
        self, method: str, path: str, body: BaseModel | None = None, response: type[M] | None = None
    ) -> M | None:
        """A typed call of the runner's API, in a thread (see `RunnerClient.call`)."""

        def work(client: RunnerClient) -> M | None:
            if response is None:
                client.call(method, path, body)
                return None
            return client.call(method, path, body, response=response)

        return await asyncio.get_running_loop().run_in_executor(None, self._run, work)

    async def text(self, path: str) -> str:
        """A text resource of the API (a log), whole."""

        def work(client: RunnerClient) -> str:
            return b"".join(client.stream(path)).decode(errors="replace")

        return await asyncio.get_running_loop().run_in_executor(None, self._run, work)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def error_answer(exc: NbremoteError) -> tuple[int, dict[str, Any]]:
    """The status and ``{"error": {"type", "message"}}`` document a runner failure answers with.

    A refused runner token is the server's misconfiguration, not the browser's: 502, never 401
    (which JupyterLab would read as its own login having expired).
    """
    if isinstance(exc, RunnerUnavailable):
        return 503, {"error": {"type": "RunnerUnavailable", "message": str(exc)}}
    if isinstance(exc, AuthenticationError):
        return 502, {"error": {"type": "RunnerAuthentication", "message": str(exc)}}
    if isinstance(exc, RunnerError):
        status = STATUS_OF_KIND.get(exc.kind, 502)
        return status, {"error": {"type": exc.kind, "message": exc.message}}
    return 502, {"error": {"type": type(exc).__name__, "message": str(exc)}}
