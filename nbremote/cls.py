"""Remote classes (``@app.cls``): load once per container, serve many calls from it.

    @app.cls(max_containers=2)
    class Model:
        size: int = nr.parameter(default=1)

        @nr.enter()
        def load(self):
            self.weights = expensive_load(self.size)

        @nr.method()
        def predict(self, x):
            return self.weights @ x

    Model(size=3).predict.remote(x)

Each distinct set of constructor parameters gets containers of its own; ``@nr.enter()`` methods
run once per container before its first call, ``@nr.exit()`` methods when it stops. Only
``@nr.method()`` methods, and those under a web decorator, can be called remotely.

A method under ``@nr.fastapi_endpoint()`` (``asgi_app``, ``wsgi_app``, ``web_server``) is served
once the app is deployed, from the class's own warm workers, on an instance made with the
parameters' defaults (``Model().predict.get_web_url()`` gives its URL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from ._calls import Bind
from ._options import (
    AppLike,
    DeployedApp,
    FunctionOptions,
    lookup,
    options_from,
    with_overrides,
)
from .functions import Function
from .web import methods_web
from .wire.classes import instance, marked
from .wire.serialize import dumps

F = TypeVar("F", bound=Callable[..., Any])


def _marker(kind: str) -> Callable[[], Callable[[F], F]]:
    def decorator() -> Callable[[F], F]:
        def mark(fn: F) -> F:
            setattr(fn, f"__nbremote_{kind}__", True)
            return fn

        return mark

    decorator.__name__ = kind
    decorator.__doc__ = f"Mark a method of an ``@app.cls`` class as ``{kind}``."
    return decorator


enter = _marker("enter")
exit = _marker("exit")
method = _marker("method")


def concurrent(*, max_inputs: int) -> Callable[[F], F]:
    """Let one container take up to ``max_inputs`` inputs at once (threads; one event loop
    for ``async def`` methods). Goes under ``@app.function`` / ``@app.cls``."""
    if max_inputs < 1:
        raise ValueError(f"max_inputs={max_inputs!r}: must be at least 1")

    def mark(target: F) -> F:
        setattr(target, "__nbremote_max_inputs__", max_inputs)  # noqa: B010
        return target

    return mark


def batched(*, max_batch_size: int, wait_ms: int) -> Callable[[F], F]:
    """Dynamic batching: the function (or ``@app.cls`` method) takes lists and returns a list
    of the same length, while callers call it with single inputs (``f.remote(x)``,
    ``f.map(xs)``); the runner groups concurrent inputs into batches of up to
    ``max_batch_size``, waiting up to ``wait_ms`` milliseconds for a batch to fill. Goes under
    ``@app.function`` (a method needs no ``@nr.method()`` with it).

    Example:
        >>> @app.function()  # doctest: +SKIP
        ... @nr.batched(max_batch_size=8, wait_ms=100)
        ... def embed(texts: list[str]) -> list[list[float]]:
        ...     return model.encode(texts)
        >>> embed.remote("hello")  # doctest: +SKIP
    """
    if not 1 <= max_batch_size <= 1000:
        raise ValueError(f"max_batch_size={max_batch_size!r}: must be between 1 and 1000")
    if not 0 <= wait_ms < 600_000:
        raise ValueError(f"wait_ms={wait_ms!r}: must be at least 0 and under 10 minutes")

    def mark(target: F) -> F:
        settings = {"max_batch_size": max_batch_size, "wait_ms": wait_ms}
        setattr(target, "__nbremote_batched__", settings)  # noqa: B010
        setattr(target, "__nbremote_method__", True)  # noqa: B010  (remote on a class)
        return target

    return mark


def parameter(*, default: Any = None) -> Any:
    """A constructor parameter of an ``@app.cls`` class (``Model(size=3)``), with a default."""
    return default


class Cls:
    """A class whose ``@nr.method()`` methods run on the runner. Call it to pick parameters."""

    def __init__(
        self,
        user_cls: type | None,
        app: AppLike,
        options: FunctionOptions,
        *,
        name: str | None = None,
        methods: list[str] | None = None,
        web_methods: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.user_cls = user_cls  # None for a class looked up by name (it is on the runner)
        self.app = app
        self.options = options
        self.__name__ = self.__qualname__ = name or str(getattr(user_cls, "__qualname__", "Cls"))
        # method -> its web decorator's settings (a deployed class's, from its settings)
        self.web_methods: dict[str, dict[str, Any]] = (
            methods_web(user_cls, f"@{app.name}.cls on {self.__qualname__}")
            if user_cls
            else web_methods or {}
        )
        found = marked(user_cls, "method") if user_cls else methods or []
        self.methods: list[str] = found + [m for m in self.web_methods if m not in found]
        self.__doc__ = getattr(user_cls, "__doc__", None)

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Cls:
        """A class deployed on the runner (``nbremote deploy``), to call from anywhere.

        Raises:
            NbremoteError: it is not deployed (the message lists what is).
        """
        described = lookup(app_name, name, "class")
        options = options_from(described.settings)
        web = described.settings.get("web_methods") or {}
        app = DeployedApp(app_name)
        return Cls(None, app, options, name=name, methods=described.methods, web_methods=web)

    def __repr__(self) -> str:
        return f"<nbremote.Cls {self.__qualname__} of app {self.app.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Obj:
        """The remote instance with these constructor parameters."""
        return Obj(self, args, kwargs)

    def with_options(self, **overrides: Any) -> Cls:
        """The same class with some settings changed (this one stays as it is)."""
        options = with_overrides(self.options, overrides, self.__qualname__)
        return Cls(
            self.user_cls,
            self.app,
            options,
            name=self.__qualname__,
            methods=self.methods,
            web_methods=self.web_methods,
        )


class Obj:
    """A remote instance: its ``@nr.method()`` methods as `Function` handles."""

    def __init__(self, cls: Cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._cls = cls
        self._args = args
        self._kwargs = kwargs
        # One key per class and parameters: its containers, and its instance in each.
        self._params = dumps("the constructor parameters", (args, kwargs))
        where = getattr(cls.user_cls, "__module__", f"deployed:{cls.app.name}")
        self._key = f"{where}.{cls.__qualname__}:{self._params.hash}"
        self._handles: dict[str, Function[Any]] = {}

    def __getattr__(self, name: str) -> Function[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._handles:
            self._handles[name] = self._handle(name)
        return self._handles[name]

    def _handle(self, name: str) -> Function[Any]:
        cls = self._cls
        if name not in cls.methods:
            if cls.user_cls is not None and callable(getattr(cls.user_cls, name, None)):
                raise AttributeError(
                    f"{cls.__qualname__}.{name} is not marked @nr.method() (nor a web "
                    f"decorator), so it cannot be called remotely; remote methods: "
                    f"{', '.join(cls.methods) or 'none'}"
                )
            raise AttributeError(f"{cls.__qualname__} has no method {name!r}")
        bind = Bind(self._key, name, self._params)
        deployed = None if cls.user_cls else {"app": cls.app.name, "object": cls.__qualname__}
        local = self._local(name) if cls.user_cls else None
        return Function(
            cls.user_cls,
            cls.app,
            dataclasses.replace(cls.options, web=cls.web_methods.get(name)),  # get_web_url's
            name=f"{cls.__qualname__}.{name}",
            pool_name=self._key,
            local=local,
            bind=bind,
            deployed=deployed,
        )

    def _local(self, name: str) -> Callable[..., Any]:
        """The method run in this process, on an instance made (and entered) here once."""

        user_cls = self._cls.user_cls
        assert user_cls is not None

        def run_here(*args: Any, **kwargs: Any) -> Any:
            obj = instance(f"local:{self._key}", user_cls, self._args, self._kwargs)
            return getattr(obj, name)(*args, **kwargs)

        return run_here
