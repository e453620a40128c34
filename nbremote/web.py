"""Modal's web decorators: ``@nr.fastapi_endpoint``, ``@nr.asgi_app``, ``@nr.wsgi_app``,
``@nr.web_server`` (and the old ``@nr.web_endpoint``).

A decorator only marks the function: ``@app.function`` reads the mark into its options, and a
deploy sends it as the function's ``settings["web"]`` (the runner's `WebSettings`), after which
the runner serves it at ``{runner}/endpoints/{name}``. A web function is still a function:
``.remote()`` and ``.local()`` call it as they would without the decorator.

Both of Modal's orders work: ``@app.function()`` above the web decorator (Modal's, the mark on
the plain function) or below it (``Function.take_web`` replaces its options: this module imports
none of the modules that import it).

On a method of an ``@app.cls`` class the mark stays on the method: `methods_web` collects them
into the class's ``settings["web_methods"]`` (method -> settings), and the runner serves each
method bound to an instance made once per worker (its ``@nr.enter()`` run once).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ._deprecation import renamed
from .errors import NbremoteError
from .wire.endpoints import ENDPOINT_NAME

F = TypeVar("F")

MARK = "__nbremote_web__"  # the settings a web decorator leaves on a function
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
KINDS = ("fastapi_endpoint", "asgi_app", "wsgi_app", "web_server")
NAME_RULE = (
    "an endpoint's name is one or two parts joined by '/', each letters, digits, '_', '.' and "
    "'-', starting with a letter or digit, 64 characters at most"
)


def _flag(value: object, argument: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {argument}= takes True or False, got {value!r}")
    return value


def _method(method: object, where: str) -> str:
    if not isinstance(method, str):
        raise TypeError(f"{where}: method= takes an HTTP method name, got {method!r}")
    if method.upper() not in HTTP_METHODS:
        raise ValueError(
            f"{where}: method={method!r} is not an HTTP method; one of {', '.join(HTTP_METHODS)}"
        )
    return method.upper()


def _label(label: object, where: str) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str):
        raise TypeError(f"{where}: label= takes a name, got {label!r}")
    if not ENDPOINT_NAME.match(label):
        raise ValueError(f"{where}: label={label!r}: {NAME_RULE}")
    return label


def _port(port: object, where: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"{where}: port= takes a port number, got {port!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"{where}: port={port!r} is out of 1\N{EN DASH}65535")
    return port


def web_settings(
    kind: str,
    *,
    method: str = "GET",
    docs: bool = False,
    requires_auth: bool = True,
    label: str | None = None,
    port: int | None = None,
    startup_timeout: float | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """A function's ``settings["web"]``, checked: every field of the runner's `WebSettings`.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of its range, named.
    """
    where = where or f"@nr.{kind}"
    if kind not in KINDS:
        raise ValueError(f"{where}: web kind {kind!r} is not one of {', '.join(KINDS)}")
    return {
        "kind": kind,
        "method": _method(method, where),
        "docs": _flag(docs, "docs", where),
        "requires_auth": _flag(requires_auth, "requires_auth", where),
        "label": _label(label, where),
        "port": _port(port, where) if kind == "web_server" else None,
        "startup_timeout": _startup_timeout(startup_timeout, where)
        if kind == "web_server"
        else None,
    }


def _startup_timeout(seconds: object, where: str) -> float:
    if seconds is None:
        return 5.0
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{where}: startup_timeout= takes seconds, got {seconds!r}")
    if seconds <= 0:
        raise ValueError(f"{where}: startup_timeout={seconds!r}: must be positive")
    return float(seconds)


def checked(web: object, where: str) -> dict[str, Any]:
    """``web`` (a ``settings["web"]`` given back, by ``with_options`` or a lookup) checked again.

    Raises:
        TypeError, ValueError: it is not a web settings document (named).
    """
    if not isinstance(web, dict):
        raise TypeError(f"{where}: web= takes the settings of a web decorator, got {web!r}")
    known = {"kind", "method", "docs", "requires_auth", "label", "port", "startup_timeout"}
    unknown = sorted(set(web) - known)
    if unknown:
        raise TypeError(f"{where}: unexpected web settings {', '.join(unknown)}")
    return web_settings(**web, where=where)


def endpoint_name(app: str, function: str, web: dict[str, Any]) -> str:
    """The endpoint's name: its ``label``, else ``{app}/{function}``.

    Raises:
        NbremoteError: ``{app}/{function}`` breaks the name rule (a nested function's
            ``<locals>``, say): give ``label=``.
    """
    name: str = web.get("label") or f"{app}/{function}"
    if not ENDPOINT_NAME.match(name):
        raise NbremoteError(
            f"the endpoint of {function!r} (app {app!r}) would be named {name!r}, but {NAME_RULE}: "
            f"give it one with label='...' in its web decorator"
        )
    return name


def methods_web(cls: type, where: str) -> dict[str, dict[str, Any]]:
    """The web settings of the methods of ``cls`` under a web decorator (method -> settings),
    in definition order.

    Raises:
        NbremoteError: a web decorator on an ``@nr.enter()`` or ``@nr.exit()`` method (they run
            when a worker starts or stops, not per request).
    """
    found: dict[str, dict[str, Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            web = getattr(value, MARK, None)
            if not isinstance(web, dict):
                continue
            hooks = [
                hook for hook in ("enter", "exit") if getattr(value, f"__nbremote_{hook}__", 0)
            ]
            if hooks:
                raise NbremoteError(
                    f"{where}: {name} is an @nr.{hooks[0]}() method and under @nr.{web['kind']}: "
                    f"@nr.{hooks[0]}() methods run when a worker starts or stops, not per request; "
                    "put the web decorator on another method"
                )
            found[name] = web
    return found


def _mark(web: dict[str, Any]) -> Callable[[F], F]:
    def mark(target: F) -> F:
        take = getattr(target, "take_web", None)
        if isinstance(target, type) or hasattr(target, "user_cls"):  # a class, or an @app.cls
            raise TypeError(
                f"@nr.{web['kind']} goes over a method of the class (under @app.cls), not over "
                f"the class {getattr(target, '__qualname__', target)!r} itself"
            )
        if take is not None:  # a `Function`: the decorator is above @app.function
            take(web)
        elif inspect.isfunction(target):
            setattr(target, MARK, web)
        else:
            raise TypeError(
                f"@nr.{web['kind']} goes over a function (with @app.function above it), "
                f"not {target!r}"
            )
        return target

    return mark


def _no_custom_domains(custom_domains: object, where: str) -> None:
    if custom_domains:
        raise NbremoteError(
            f"{where}: custom_domains= is not supported by nbremote: an endpoint is served at "
            "{runner}/endpoints/{name}; remove it (label= names the endpoint)"
        )


def fastapi_endpoint(
    _fn: Any = None,
    *,
    method: str = "GET",
    docs: bool = False,
    requires_auth: bool = True,
    label: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Any:
    """Serve a function as an HTTP endpoint once its app is deployed, Modal's way: GET reads
    its query parameters, POST (and the others) a JSON body checked against its type hints
    (pydantic models too); its return value is the JSON answer.

    Args:
        method: the HTTP method it answers.
        docs: also serve ``/docs`` and ``/openapi.json`` under it.
        requires_auth: callers send the endpoint's own token (``Authorization: Bearer T``);
            False makes it public.
        label: the endpoint's name (default ``{app}/{function}``).
        custom_domains: refused (an endpoint lives on its runner).
        requires_proxy_auth: Modal's token flag; True is nbremote's default.

    Example:
        >>> app = nr.App("hello")  # doctest: +SKIP
        >>> @app.function()  # doctest: +SKIP
        ... @nr.fastapi_endpoint(method="POST")
        ... def greet(name: str) -> dict:
        ...     return {"hello": name}
    """
    return _decorator(
        "fastapi_endpoint",
        _fn,
        custom_domains,
        requires_proxy_auth,
        method=method,
        docs=docs,
        requires_auth=requires_auth,
        label=label,
    )


web_endpoint = renamed(fastapi_endpoint, "web_endpoint", "@nr.web_endpoint")


def asgi_app(
    _fn: Any = None,
    *,
    requires_auth: bool = True,
    label: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Any:
    """Serve the ASGI app (FastAPI, Starlette) the function returns: all its routes under
    ``{runner}/endpoints/{name}``. The function runs once per worker. Arguments as for
    `fastapi_endpoint` (an app's own auth applies on top of the token)."""
    return _decorator(
        "asgi_app",
        _fn,
        custom_domains,
        requires_proxy_auth,
        requires_auth=requires_auth,
        label=label,
    )


def wsgi_app(
    _fn: Any = None,
    *,
    requires_auth: bool = True,
    label: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Any:
    """Serve the WSGI app (Flask, Django) the function returns, as `asgi_app` does."""
    return _decorator(
        "wsgi_app",
        _fn,
        custom_domains,
        requires_proxy_auth,
        requires_auth=requires_auth,
        label=label,
    )


def web_server(
    port: int,
    *,
    startup_timeout: float = 5.0,
    requires_auth: bool = True,
    label: str | None = None,
    custom_domains: Any = None,
    requires_proxy_auth: bool = False,
) -> Callable[[F], F]:
    """Serve what the function starts listening on ``port`` of 127.0.0.1 (any HTTP server,
    in a thread or a subprocess): the worker calls it once, waits for the port, then forwards
    each request to it (method, path and query, headers, body) and streams the answer back.

    Args:
        port: the port the server listens on, inside its worker.
        startup_timeout: seconds the server may take to start listening (then requests get a
            503 naming the port, and the app's log says why).
    """
    decorate: Callable[[F], F] = _decorator(
        "web_server",
        None,
        custom_domains,
        requires_proxy_auth,
        port=port,
        startup_timeout=startup_timeout,
        requires_auth=requires_auth,
        label=label,
    )
    return decorate


def _decorator(
    kind: str, fn: Any, custom_domains: Any, requires_proxy_auth: bool, **settings: Any
) -> Any:
    """A web decorator's mark (applied to ``fn`` when it was used bare, ``@nr.asgi_app``), after
    the arguments Modal takes but nbremote does not use are checked."""
    where = f"@nr.{kind}"
    _no_custom_domains(custom_domains, where)
    _flag(requires_proxy_auth, "requires_proxy_auth", where)
    mark = _mark(web_settings(kind, **settings))
    return mark(fn) if fn is not None else mark
