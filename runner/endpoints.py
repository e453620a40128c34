"""Web endpoints: deployed functions served over HTTP at ``/endpoints/{name}``, each with a
bearer token of its own.

An endpoint is registered when an app is deployed with a function whose settings carry ``web``
(`nbremote.wire.endpoints.WebSettings`), or a class whose settings carry ``web_methods``
(method -> settings: each method is an endpoint, served from the class's pool on an instance
made once per worker, ``{app}/{Class}.{method}`` unless labelled), and removed when a redeploy
drops it or the app is stopped (`endpoint_apps`). Its token is made here
(``secrets.token_urlsafe(32)``), kept across redeploys and restarts (SQLite, migration 3; the data
dir is the runner's own, mode 0700), compared in constant time and never logged. What an endpoint
runs and how is read from its app's deployed settings each time, so a redeploy changes it at once.

Each endpoint keeps a request log (time, method, path, status, latency; never a body, a query
string or a token) in ``endpoint-logs/`` of the data dir, written by one thread off the loop.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from nbremote.wire.endpoints import ENDPOINT_NAME, DescribeEndpoint, WebSettings
from nbremote.wire.http import DeployApp, DeployObject, DescribeAppObject

from .apps import DeployedApp
from .errors import ApiError
from .state import State

QUEUE_PER_WORKER = 64  # requests that may wait, per worker the endpoint's pool may have
LOG_DELAY = 0.2  # seconds a request's log line may wait to be written with others


@dataclass
class Endpoint:
    """One served endpoint: what the store keeps, and what serving counts."""

    name: str
    app: str
    function: str
    token: str
    created_at: float
    settings: WebSettings
    log_path: Path
    in_flight: int = 0  # requests waiting for a worker or being served
    followers: set[asyncio.Queue[str]] = field(default_factory=set)
    method: str | None = None  # a class's method: ``function`` is the class
    _frame: tuple[WebSettings, dict[str, object]] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """What it serves: ``function``, or ``Class.method``."""
        return f"{self.function}.{self.method}" if self.method else self.function

    def web_frame(self) -> dict[str, object]:
        """Its settings as a ``web`` frame carries them: a method's name as ``bind`` (the worker
        binds it to the class's instance); made once per settings (a request's hot path)."""
        if self._frame is None or self._frame[0] is not self.settings:
            web = self.settings.model_dump()
            self._frame = (self.settings, web | {"bind": self.method} if self.method else web)
        return self._frame[1]

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header value carries this endpoint's token (always, for
        a public endpoint)."""
        if not self.settings.requires_auth:
            return True
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def describe(self, base_url: str, with_token: bool = False) -> DescribeEndpoint:
        """The endpoint as the API shows it (its token only when asked for)."""
        settings = self.settings
        return DescribeEndpoint(
            name=self.name,
            app=self.app,
            function=self.label,
            kind=settings.kind,
            method=settings.method.upper() if settings.kind == "fastapi_endpoint" else None,
            url=f"{base_url}/endpoints/{self.name}",
            requires_auth=settings.requires_auth,
            docs=settings.docs,
            created_at=self.created_at,
            token=self.token if with_token else None,
        )


AppObject = DeployObject | DescribeAppObject  # as deployed, or as the runner keeps it


Served = dict[str, tuple[str | None, WebSettings]]  # endpoint name -> method, settings


def served(app: str, obj: AppObject) -> Served:
    """What a deployed object serves over HTTP, checked: endpoint name -> (its method, for a
    class; None for a function) and settings. Empty if nothing.

    Raises:
        ApiError: settings that are not valid (422), a web decorator on a class rather than its
            methods (400), a name that is not one (422), or one name given twice (409).
    """
    if obj.kind == "class" and obj.settings.get("web") is not None:
        raise ApiError(
            400, "BadRequest", f"{obj.name}: a web decorator goes on a method of a class, not on it"
        )
    if obj.kind != "class":
        settings = _checked(obj.name, obj.settings.get("web"))
        return {} if settings is None else {_name(app, obj.name, settings): (None, settings)}
    methods = obj.settings.get("web_methods") or {}
    if not isinstance(methods, dict):
        raise ApiError(422, "ValidationError", f"{obj.name}: web_methods: not a mapping")
    found: Served = {}
    for method, web in methods.items():
        if not isinstance(method, str) or not method.isidentifier():
            raise ApiError(422, "ValidationError", f"{obj.name}: {method!r} is not a method name")
        settings = _checked(f"{obj.name}.{method}", web)
        name = _name(app, f"{obj.name}.{method}", settings) if settings else ""
        if name in found:
            raise ApiError(409, "Conflict", f"two methods of {obj.name} are served as {name!r}")
        if settings is not None:
            found[name] = (method, settings)
    return found


def _checked(what: str, web: object) -> WebSettings | None:
    if web is None:
        return None
    try:
        settings = WebSettings.model_validate(web)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, "ValidationError", f"{what}: web.{where}: {first['msg']}") from None
    if settings.kind == "web_server" and settings.port is None:
        raise ApiError(422, "ValidationError", f"{what}: web.port: a web_server needs its port")
    return settings


def _name(app: str, what: str, settings: WebSettings) -> str:
    """The endpoint's name: its label, else ``{app}/{function}`` (or ``{app}/{Class}.{method}``)."""
    name = settings.label or f"{app}/{what}"
    if not ENDPOINT_NAME.match(name):
        raise ApiError(
            422,
            "ValidationError",
            f"{what}: {name!r} is not an endpoint name (letters, digits, '_', '.', '-'; "
            "one '/' at most): give the decorator a label=",
        )
    return name


Wanted = tuple[str, str | None, WebSettings]  # function or class, its method, settings


def _label(wanted: Wanted) -> str:
    return f"{wanted[0]}.{wanted[1]}" if wanted[1] else wanted[0]


def _serving(app: str, objects: list[DeployObject] | list[DescribeAppObject]) -> dict[str, Wanted]:
    """Every endpoint of an app's objects (name -> what it serves), checked.

    Raises:
        ApiError: as `served` does; one name given twice (409).
    """
    wanted: dict[str, Wanted] = {}
    for obj in objects:
        for name, (method, settings) in served(app, obj).items():
            if name in wanted:
                raise ApiError(
                    409, "Conflict", f"two functions of app {app!r} are served as {name!r}"
                )
            wanted[name] = (obj.name, method, settings)
    return wanted


def log_file(log_dir: Path, name: str) -> Path:
    """Where an endpoint's request log is ('/' is not in a file name; '@' is in no name)."""
    return log_dir / f"{name.replace('/', '@')}.log"


class Endpoints:
    """Every endpoint of a runner, by name.

    Args:
        state: where endpoints (and their tokens) are kept.
        log_dir: where request logs are written.
        base_url: the runner's own URL (known once it listens).
    """

    def __init__(self, state: State, log_dir: Path, base_url: Callable[[], str]) -> None:
        self._state = state
        self._log_dir = log_dir
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="nbremote-endpoint-logs")
        self._lines: dict[Path, list[str]] = {}  # request lines not yet given to the writer
        self._flush_at: asyncio.TimerHandle | None = None
        self.base_url = base_url
        self.endpoints: dict[str, Endpoint] = {}
        self.settings: dict[str, WebSettings] = {}  # name -> as deployed (from the app)

    async def load(self, deployed: dict[str, DeployedApp]) -> None:
        """Read the endpoints back, their settings from the apps as deployed."""
        for name, app, label, token, created_at in await self._state.query(
            "SELECT name, app, function, token, created_at FROM endpoints"
        ):
            objects = deployed[app].objects if app in deployed else {}
            wanted = _serving(app, [obj for obj, _ in objects.values()])
            found = wanted.get(name)
            if found is None or _label(found) != label:  # its app went without telling
                self._state.write_later("DELETE FROM endpoints WHERE name = ?", (name,))
                continue
            self._add(name, app, found, token, created_at)

    def _add(self, name: str, app: str, wanted: Wanted, token: str, created: float) -> Endpoint:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        function, method, settings = wanted
        log_path = log_file(self._log_dir, name)
        endpoint = Endpoint(name, app, function, token, created, settings, log_path, method=method)
        self.endpoints[name] = endpoint
        return endpoint

    def wanted(self, app: str, request: DeployApp | None) -> dict[str, Wanted]:
        """The endpoints an app deploy asks for (name -> function or class, its method, the
        settings), checked.

        Raises:
            ApiError: a setting is not valid, or a name is another app's endpoint's (409) or
                given twice (409): nothing has changed.
        """
        wanted = _serving(app, request.objects if request is not None else [])
        for name, found in wanted.items():
            holder = self.endpoints.get(name)
            if holder is not None and holder.app != app:
                raise ApiError(
                    409,
                    "Conflict",
                    f"the endpoint name {name!r} is held by app {holder.app!r} "
                    f"(function {holder.label!r}): give {_label(found)} another label=, "
                    f"or stop that app (nbremote apps stop {holder.app})",
                )
        return wanted

    def sync(self, app: str, wanted: dict[str, Wanted]) -> None:
        """Make ``app``'s endpoints those it wants: new ones get a token, kept ones keep theirs."""
        for name, found in wanted.items():
            old = self.endpoints.get(name)
            if old is not None and old.label == _label(found):
                old.settings = found[2]
                continue
            token = old.token if old is not None else secrets.token_urlsafe(32)
            created = old.created_at if old is not None else time.time()
            self._add(name, app, found, token, created)
            self._state.write_later(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?, ?)",
                (name, app, _label(found), token, created),
            )
        for name in [n for n, e in self.endpoints.items() if e.app == app and n not in wanted]:
            self.remove(name)

    def remove(self, name: str) -> None:
        """Stop serving an endpoint (its app stays deployed)."""
        self.endpoints.pop(name)
        self._state.write_later("DELETE FROM endpoints WHERE name = ?", (name,))

    def find(self, path: str) -> tuple[Endpoint, str] | None:
        """The endpoint a ``/endpoints/`` path names (the longest name that matches) and the
        rest of the path ("/" if none)."""
        parts = path.split("/", 2)
        for count in (2, 1):
            name = "/".join(parts[:count])
            endpoint = self.endpoints.get(name) if len(parts) >= count else None
            if endpoint is not None:
                rest = "/".join(parts[count:])
                return endpoint, f"/{rest}"
        return None

    def record(self, endpoint: Endpoint, method: str, path: str, status: int, ms: float) -> None:
        """Append a request's line to its endpoint's log (and to those following it). Lines go
        to the file in batches, at most `LOG_DELAY` late: one wake-up of the writer's thread for
        many requests, none in the way of the next one."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{stamp} {method} {path} {status} {ms:.1f} ms\n"
        for follower in endpoint.followers:
            follower.put_nowait(line)
        self._lines.setdefault(endpoint.log_path, []).append(line)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(LOG_DELAY, self._flush)

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        lines, self._lines = self._lines, {}
        if lines:
            self._writer.submit(_append, lines)

    async def written(self) -> None:
        """Once every request line recorded so far is in its file."""
        self._flush()
        await asyncio.wrap_future(self._writer.submit(lambda: None))

    def close(self) -> None:
        """Let the log writer finish."""
        self._flush()
        self._writer.shutdown()


def _append(lines: dict[Path, list[str]]) -> None:
    for path, added in lines.items():
        with path.open("a") as log:
            log.write("".join(added))
