"""The worker's side of remote classes: one live instance per class and constructor arguments.

A method call carries the class, the constructor's arguments and the method's name; the worker
makes a `MethodCall` of them, which finds or creates the instance its key names, running the
class's ``@nr.enter()`` methods once, before the first call; `shutdown` runs the ``@nr.exit()``
methods when the worker stops. The client's `nbremote.cls` marks the methods and runs ``.local()``
calls through the same instances. Standard library only: it is imported inside every container
that serves a class.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

_instances: dict[str, Any] = {}


def marked(cls: type, kind: str) -> list[str]:
    """Names of the methods of ``cls`` marked ``@nr.<kind>()``, in definition order."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, f"__nbremote_{kind}__", False):
                names[name] = None
    return list(names)


def _construct(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if "__init__" in {name for klass in cls.__mro__[:-1] for name in vars(klass)}:
        return cls(*args, **kwargs)
    if args:
        raise TypeError(
            f"{cls.__qualname__} takes keyword parameters only, got {len(args)} positional"
        )
    obj = cls()
    for name, value in kwargs.items():  # Modal's `x: int = nr.parameter()` style
        setattr(obj, name, value)
    return obj


def instance(key: str, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The live instance for ``key``, created (and entered) on first use.

    An exception in an ``@nr.enter()`` method fails the call that triggered it and marks the
    worker for retirement, so that the next call starts from a fresh container.
    """
    obj = _instances.get(key)
    if obj is None:
        obj = _construct(cls, args, kwargs)
        for name in marked(cls, "enter"):
            try:
                getattr(obj, name)()
            except BaseException as exc:
                exc.__nbremote_retire__ = True  # type: ignore[attr-defined]
                raise
        _instances[key] = obj
    return obj


class MethodCall:
    """Calls one method of the instance for ``key`` (created and entered on first use)."""

    def __init__(
        self, key: str, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any], method: str
    ) -> None:
        self.key = key
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = instance(self.key, self.cls, self.args, self.kwargs)
        return getattr(obj, self.method)(*args, **kwargs)


def shutdown() -> None:
    """Run the ``@nr.exit()`` methods of every live instance (the worker is stopping)."""
    while _instances:
        _, obj = _instances.popitem()
        for name in marked(type(obj), "exit"):
            try:
                getattr(obj, name)()
            except Exception:
                traceback.print_exc(file=sys.__stderr__)
