"""The ASGI app a ``%%remote --endpoint`` cell becomes, built in the worker that serves it.

The magic deploys ``functools.partial(make_app, CellEndpoint(...))`` as an ``asgi_app``
function: the worker calls it once and serves what it returns. The cell's inputs travel as the
notebook packed them at promotion (`nbremote.wire.aliases` sets), loaded here once; each request
runs the cell's code in a fresh namespace made of them (a shallow copy: a big input is shared by
the requests, not copied) plus ``request``. The answer is ``response`` if the cell set it, else
the value of its last expression, as JSON.

Imported only in a worker that serves a cell endpoint: the standard library and nbremote's wire
at most, no web framework (a custom image needs none for a cell endpoint).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import linecache
import sys
import traceback
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .wire.asgi import Receive, Send, read_body

ANSWER = "response"


@dataclass(frozen=True)
class CellEndpoint:
    """A cell promoted to an endpoint: what the worker needs to answer its requests."""

    name: str
    code: str  # plain Python: IPython syntax already turned into its calls
    method: str
    path: str
    parts: dict[str, list[bytes]]  # each pickled input's stream and buffers, by name
    modules: dict[str, str]  # inputs that are modules: name -> module imported again


def make_app(cell: CellEndpoint) -> CellApp:
    """The app of ``cell`` (the deployed function, bound to its cell by a partial)."""
    return CellApp(cell)


def _inputs(cell: CellEndpoint) -> dict[str, Any]:
    from .errors import SerializationError
    from .wire.aliases import SetLoader

    def not_sent(name: str) -> object:
        raise KeyError(name)

    loaded, failed = SetLoader(cell.parts, not_sent).load_all()
    for name, reason in failed.items():
        raise SerializationError(name, reason)
    modules = {name: importlib.import_module(module) for name, module in cell.modules.items()}
    return modules | loaded


def _compile(code: str, filename: str) -> tuple[Any, Any]:
    """The cell's statements, and its last expression apart (None if it ends otherwise)."""
    tree = ast.parse(code, filename)
    last = None
    end = tree.body[-1] if tree.body else None
    if isinstance(end, ast.Expr):
        tree.body.pop()
        last = compile(ast.Expression(end.value), filename, "eval")
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    return compile(tree, filename, "exec"), last


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


class CellApp:
    """Answers the cell's METHOD at its PATH by running the cell (other paths: 404)."""

    def __init__(self, cell: CellEndpoint) -> None:
        self.cell = cell
        self.inputs = _inputs(cell)
        self.body, self.last = _compile(cell.code, f"<endpoint {cell.name}>")

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, answer = await self._answer(scope, receive)
        try:
            body = json.dumps(answer).encode()
        except (TypeError, ValueError) as exc:
            status = 500
            detail = f"the cell's answer is a {type(answer).__name__}, not JSON ({exc})"
            body = json.dumps(_error("NotJSON", detail)).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: dict[str, Any], receive: Receive) -> tuple[int, Any]:
        path, method = scope.get("path") or "/", scope["method"].upper()
        if path != self.cell.path:
            return 404, _error("NotFound", f"{path}: this endpoint answers {self.cell.path}")
        if method != self.cell.method:
            allowed = f"{method}: this endpoint takes {self.cell.method}"
            return 405, _error("MethodNotAllowed", allowed)
        body = await read_body(receive)
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            return 400, _error("BadRequest", "the request body is not JSON")
        request = {
            "method": method,
            "path": path,
            "args": _args(scope.get("query_string", b"")),
            "headers": _headers(scope.get("headers", ())),
            "json": data,
        }
        status, answer, failure = await asyncio.to_thread(self.run, request)
        if failure:  # to the app's log (written from the request's own task); not to the caller
            print(failure, file=sys.stderr, end="", flush=True)
        return status, answer

    def run(self, request: dict[str, Any]) -> tuple[int, Any, str]:
        """Run the cell for one request: 200 and its answer, or 500, its error and traceback."""
        namespace = {**self.inputs, "__name__": "__main__", "request": request}
        try:
            exec(self.body, namespace)
            value = eval(self.last, namespace) if self.last is not None else None
        except Exception as exc:
            return 500, _error(type(exc).__name__, str(exc)), traceback.format_exc()
        answer = namespace.get(ANSWER)
        if ANSWER in namespace and answer is not self.inputs.get(ANSWER, self):
            return 200, answer, ""
        return 200, value, ""


def _args(query: bytes) -> dict[str, str]:
    """The query's parameters; a repeated one keeps its first value."""
    args: dict[str, str] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        args.setdefault(key, value)
    return args


def _headers(headers: Any) -> dict[str, str]:
    """The request's headers by lower-case name, without the endpoint's token."""
    return {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in headers
        if key.lower() != b"authorization"
    }
