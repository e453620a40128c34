"""Modal's older parameter (and function) names, accepted with a warning that names the new one."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

C = TypeVar("C", bound=Callable[..., Any])

RENAMED = {
    "concurrency_limit": "max_containers",
    "keep_warm": "min_containers",
    "container_idle_timeout": "scaledown_window",
    "allow_concurrent_inputs": "max_inputs",  # the newer spelling is @nr.concurrent(max_inputs=)
}


def warn_renamed(old: str, new: str, where: str, stacklevel: int) -> None:
    """Warn that ``old`` is deprecated, naming ``new`` (``stacklevel``: warnings.warn's, as
    if the caller called it)."""
    shown = new if new.startswith("@") else f"`{new}`"
    warnings.warn(
        f"{where}: `{old}` is deprecated, use {shown} instead",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def renamed(new: C, old: str, where: str) -> C:
    """``new`` under its old name ``old``: it warns (at the caller's line), then does the same
    (``inspect.signature`` shows ``new``'s parameters)."""

    @functools.wraps(new)
    def old_name(*args: Any, **kwargs: Any) -> Any:
        warn_renamed(old, new.__name__, where, stacklevel=2)
        return new(*args, **kwargs)

    old_name.__name__ = old_name.__qualname__ = old
    old_name.__doc__ = (
        f"Modal's old name of `{new.__name__}` (deprecated: it warns, then does the same)."
    )
    return cast(C, old_name)


def rename_deprecated(options: dict[str, Any], where: str, stacklevel: int = 3) -> dict[str, Any]:
    """``options`` with old names mapped to new ones, warning once per old name used.

    Raises:
        TypeError: an old name given together with its new name.
    """
    renamed = dict(options)
    for old, new in RENAMED.items():
        if old not in renamed:
            continue
        instead = "@nr.concurrent(max_inputs=...)" if new == "max_inputs" else new
        warn_renamed(old, instead, where, stacklevel)
        if new in renamed:
            raise TypeError(f"{where}: give `{new}` or `{old}`, not both")
        renamed[new] = renamed.pop(old)
    return renamed
