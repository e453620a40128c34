"""``%%remote --endpoint [METHOD] [PATH] --name N``: a cell promoted to an HTTP endpoint.

As ``--schedule`` stores a cell as a job, ``--endpoint`` serves it: the cell's inputs are
snapshotted as a cell would send them (`nbremote._cell.exec_request`: the same analysis, ``--in``
and errors naming an input that cannot travel), and a one-function app ``N`` is deployed as
``f.serve`` deploys one (`nbremote._deploy.deploy_served`): an ``asgi_app`` whose app
(`nbremote._cell_app`) runs the cell per request with ``request`` and answers ``response`` or
its last expression. Nothing runs here and nothing is bound: the notebook's namespace stays as
it was, and changing an input afterwards changes the endpoint only when it is promoted again.
"""

from __future__ import annotations

import functools
import re
from argparse import Namespace
from collections.abc import Container, MutableMapping
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from ._cell import CellOptions, exec_request
from ._cell_app import CellEndpoint, make_app
from ._deploy import deploy_served
from ._ipython_syntax import python_of
from ._options import FunctionOptions
from ._session import RemoteSession
from .endpoint import Endpoint
from .errors import NbremoteError, RunnerError
from .web import HTTP_METHODS, NAME_RULE, web_settings
from .wire.endpoints import ENDPOINT_NAME

_PATH = re.compile(r"^(/[A-Za-z0-9_.~-]+)*/?$")
FUNCTION = "cell"  # the deployed app's one function


@dataclass(frozen=True)
class Route:
    """Where a promoted cell answers: its endpoint's name, METHOD and PATH, and who may call."""

    name: str
    method: str = "POST"
    path: str = "/"
    public: bool = False


def endpoint_route(args: Namespace) -> Route | None:
    """The endpoint of a ``%%remote`` line, checked; None: the line serves nothing.

    Raises:
        UsageError: ``--endpoint`` without ``--name``, a bad METHOD, PATH or name, ``--public``
            without ``--endpoint``, or a flag that has no meaning for an endpoint.
    """
    if args.endpoint is None:
        if args.public:
            raise UsageError("--public only goes with --endpoint [METHOD] [PATH] --name N")
        return None
    if args.name is None:
        raise UsageError(
            "--endpoint needs --name N: the endpoint's name (its URL ends in /endpoints/N; "
            "`nbremote endpoints show N` gives its token)"
        )
    useless = [flag for flag, given in (("--out", args.outputs), ("--fresh", args.fresh)) if given]
    if useless:
        raise UsageError(f"{', '.join(useless)} do not go with --endpoint (nothing comes back)")
    name = args.name.strip("'\"")
    if not ENDPOINT_NAME.match(name):
        raise UsageError(f"--name {name!r}: {NAME_RULE}")
    method, path = _method_and_path([word.strip("'\"") for word in args.endpoint])
    return Route(name, method, path, args.public)


def _method_and_path(words: list[str]) -> tuple[str, str]:
    if len(words) > 2:
        raise UsageError(f"--endpoint takes [METHOD] [PATH], got {' '.join(words)!r}")
    method, path = "POST", "/"
    if words and not words[0].startswith("/"):
        method = words.pop(0).upper()
        if method not in HTTP_METHODS:
            raise UsageError(
                f"--endpoint {method}: not an HTTP method; one of {', '.join(HTTP_METHODS)}"
            )
    if words:
        path = words.pop(0)
        if not path.startswith("/") or not _PATH.match(path) or "/../" in f"{path}/":
            raise UsageError(
                f"--endpoint {path!r}: a PATH starts with '/' and is made of letters, digits, "
                "'_', '.', '~' and '-' between slashes (e.g. /predict)"
            )
    if words:
        raise UsageError(f"--endpoint takes [METHOD] [PATH]: {words[0]!r} is a second PATH")
    return method, path.rstrip("/") or "/"


@dataclass(frozen=True)
class _Besides:
    """The names of ``hidden``, and one more."""

    hidden: Container[str]
    name: str

    def __contains__(self, item: object) -> bool:
        return item == self.name or item in self.hidden


def cell_endpoint(
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    route: Route,
    hidden: Container[str] = (),
) -> CellEndpoint:
    """The cell as its endpoint's app needs it: its code and a snapshot of its inputs.

    Raises:
        SerializationError: an input cannot be pickled (naming it; nothing was sent).
    """
    # `request` is each request's own: a notebook variable of that name is not an input.
    unsent = _Besides(hidden, "request")
    built = exec_request(code, namespace, options, lambda key: (), hidden=unsent)
    parts: dict[str, list[bytes]] = {}
    modules: dict[str, str] = {}
    position = 0
    for item in built.header["inputs"]:
        if "module" in item:
            modules[item["name"]] = item["module"]
        count = item.get("nbuf", 0)
        if count:
            buffers = built.packed.buffers[position : position + count]
            parts[item["name"]] = [bytes(buffer) for buffer in buffers]
            position += count
    return CellEndpoint(route.name, python_of(code), route.method, route.path, parts, modules)


def serve_cell(
    session: RemoteSession,
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    route: Route,
    *,
    hidden: Container[str] = (),
) -> Endpoint:
    """Deploy the cell as the app and endpoint ``route.name``; print its URL and where its
    token is.

    Raises:
        UsageError: the runner refused it (the message says why), or a setting cannot be
            deployed (a ``Secret.from_dict``).
        SerializationError: an input cannot be pickled (nothing was sent).
    """
    cell = cell_endpoint(code, namespace, options, route, hidden)
    web = web_settings("asgi_app", requires_auth=not route.public, label=route.name)
    function_options = FunctionOptions(
        env=options.env,
        volumes=options.volumes,
        secrets=tuple(options.secrets),
        timeout=options.timeout,
        gpu=options.gpu,
        image=options.image,
    )
    target = functools.partial(make_app, cell)
    try:
        deploy_served(session.client, (FUNCTION, target, function_options), web)
        endpoint = Endpoint(route.name, client=session.client)
        url = endpoint.url.rstrip("/") + (route.path if route.path != "/" else "")
    except (RunnerError, NbremoteError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise UsageError(f"endpoint {route.name!r} was not served: {message}") from None
    print(f"Serving the cell as endpoint {route.name!r}: {route.method} {url}")
    if route.public:
        print("  public: callers send no token")
    else:
        print(
            f"  callers send its token (Authorization: Bearer ...): `nbremote endpoints show "
            f"{route.name}` or nr.Endpoint({route.name!r}).token"
        )
    return endpoint
