"""``nbremote run FILE.py[::NAME]``: run a script's local entrypoint, or one of its functions.

The file runs as ``__main__`` (its functions travel by value, as a notebook's do). Without
``::NAME`` the app's single ``@app.local_entrypoint()`` is called (or, as in Modal, its single
function when it has no entrypoint); with it, that entrypoint, or that remote function with
``.remote()``. The CLI turns the target's parameters into options (`nbremote.cli._params`).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from .app import App
from .functions import Function


class ScriptError(Exception):
    """The script has no such entrypoint or function; the message lists what it has."""


def load_apps(path: Path) -> list[App]:
    """Run the script (as ``__main__``) and return the apps it defines."""
    namespace = runpy.run_path(str(path), run_name="__main__")
    return [value for value in namespace.values() if isinstance(value, App)]


def find_target(path: Path, apps: list[App], name: str | None = None) -> tuple[App, str, Any]:
    """The app, name and entrypoint (or `Function`) that ``nbremote run path[::name]`` calls:
    ``name``, else the single local entrypoint, else (no entrypoint) the single function.

    Raises:
        ScriptError: there is no such target, or more than one to choose from.
    """
    entrypoints = {key: fn for app in apps for key, fn in app.local_entrypoints.items()}
    functions = {key: fn for app in apps for key, fn in app.registered_functions.items()}
    choices = ", ".join(sorted({*entrypoints, *functions})) or "none"
    if name is None:
        # As in Modal: a script without an entrypoint but with one function runs that function.
        candidates = entrypoints or functions
        if len(candidates) != 1:
            raise ScriptError(
                f"{path} has {len(entrypoints)} local entrypoints; name one with {path}::NAME "
                f"(entrypoints and functions: {choices})"
            )
        name = next(iter(candidates))
    target = entrypoints.get(name) or functions.get(name)
    if target is None:
        raise ScriptError(f"{path} has no entrypoint or function {name!r} (it has: {choices})")
    app = next(
        app for app in apps if name in app.local_entrypoints or name in app.registered_functions
    )
    return app, name, target


def call_target(app: App, target: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an entrypoint here, or a function on the runner, while the app runs."""
    with app.run():
        return (
            target.remote(*args, **kwargs)
            if isinstance(target, Function)
            else target(*args, **kwargs)
        )
