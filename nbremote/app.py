"""Apps: named groups of remote functions, as in Modal (``app = nr.App("name")``).

``@app.function(...)`` turns a function into a `Function`; ``@nr.remote(...)`` does the same on
the notebook's own app. ``@app.local_entrypoint()`` marks what ``nbremote run file.py`` calls.

App-wide defaults (``nr.App(name, image=, secrets=, volumes=)``) combine with a function's or
class's own settings as Modal's do: its ``image=`` replaces the app's; its secrets come after
the app's (a key both set takes the function's value, later secrets winning); its volumes are
added to the app's (a mount path both name takes the function's volume).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

from ._options import function_options
from .cls import Cls
from .errors import NotFoundError
from .functions import Function
from .image import Image
from .secret import Secret

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


class App:
    """A named group of remote functions.

    Args:
        name: the app's name (functions of different apps never share workers).
        image: the `Image` of every function and class that names none.
        secrets: `Secret` objects every function and class gets, before its own.
        volumes: ``{"/path": nr.Volume}`` mounted in every function's and class's workers
            (a function's own volume at the same path wins).
        include_source: accepted for Modal's code; functions always travel with their source.

    Example:
        >>> app = App("demo")
        >>> @app.function(max_containers=4)
        ... def square(x):
        ...     return x * x
        >>> square(3)  # a plain call runs here; square.remote(3) runs on the runner
        9
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        image: Image | None = None,
        secrets: Sequence[Secret] = (),
        volumes: Mapping[str, Any] | None = None,
        include_source: bool | None = None,
    ) -> None:
        self.name = name or "app"
        self.image = image
        self.secrets = list(secrets)
        self.volumes = dict(volumes or {})
        # Accepted for Modal's code: nbremote always sends a function by value with its source
        # lines and the local modules it uses, so there is no source mount to leave out.
        self.include_source = include_source
        self.registered_functions: dict[str, Function[Any]] = {}
        self.registered_classes: dict[str, Any] = {}
        self.local_entrypoints: dict[str, Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<nbremote.App {self.name!r}>"

    @classmethod
    def lookup(cls, name: str, *, create_if_missing: bool = False) -> App:
        """The app called ``name``: deployed on the runner, or a new one if ``create_if_missing``.

        Raises:
            NotFoundError: it is not deployed (the message lists the apps that are).
        """
        from . import _session
        from .errors import RunnerError
        from .wire.http import DescribeApp

        try:
            _session.current_session().client.call(
                "GET", f"/api/v1/apps/{name}", response=DescribeApp
            )
        except RunnerError as exc:
            if not create_if_missing:
                raise RunnerError(exc.kind, exc.message) from None  # no HTTP frames shown
        return cls(name)

    @overload
    def function(self, fn: Callable[..., R], /) -> Function[R]: ...

    @overload
    def function(
        self, fn: None = None, /, **settings: Any
    ) -> Callable[[Callable[..., R]], Function[R]]: ...

    def function(self, fn: Callable[..., Any] | None = None, /, **settings: Any) -> Any:
        """Make a function remote-callable, with settings.

        Args:
            env: environment variables of its workers.
            gpu: the GPUs of each worker: ``"A100"``, ``"H100:2"``, ``"H100|A100-80GB"``, a list
                (fallback order) or ``nr.gpu.A100(memory=80)``.
            volumes: ``{"/path": nr.Volume}``: volumes mounted in its workers (with the app's).
            secrets: ``[nr.Secret]``: their variables set in its workers' environment (after
                the app's).
            image: the `Image` its workers run in (default: the app's, else the runner's
                environment).
            timeout: seconds an input may run before it is stopped.
            retries: an int, or `Retries`, for inputs that raise.
            max_containers: workers that may run it at once (default: one per runner core).
            min_containers: workers kept warm even when idle.
            scaledown_window: seconds an idle worker lives.
        """

        def wrap(raw: Callable[..., Any]) -> Function[Any]:
            where = f"@{self.name}.function on {raw.__qualname__}"
            function = Function(raw, self, function_options(self._defaults(settings), where, raw))
            self.registered_functions[raw.__qualname__] = function
            return function

        return wrap(fn) if fn is not None else wrap

    def cls(self, user_cls: type | None = None, /, **settings: Any) -> Any:
        """Make a class's ``@nr.method()`` methods remote-callable (settings as for `function`)."""

        def wrap(raw: type) -> Cls:
            where = f"@{self.name}.cls on {raw.__qualname__}"
            if settings.get("schedule") is not None:
                raise TypeError(
                    f"{where}: schedule= is for functions (a class has no one call to fire); "
                    "schedule a function that uses the class, e.g. "
                    "@app.function(schedule=nr.Period(hours=1)) calling Model().run.remote()"
                )
            handle = Cls(raw, self, function_options(self._defaults(settings), where, raw))
            self.registered_classes[raw.__qualname__] = handle
            return handle

        return wrap(user_cls) if user_cls is not None else wrap

    def _defaults(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A function's settings with the app's defaults under them (see the module's doc)."""
        settings = dict(settings)
        settings.pop("include_source", None)  # see __init__
        if settings.get("image") is None and self.image is not None:
            settings["image"] = self.image
        if self.secrets:
            # The same secret named twice is sent once.
            settings["secrets"] = list(
                dict.fromkeys([*self.secrets, *(settings.get("secrets") or ())])
            )
        own = settings.get("volumes") or {}
        if self.volumes and isinstance(own, Mapping):  # else mounts_of says what is wrong
            paths = {str(path): volume for path, volume in [*self.volumes.items(), *own.items()]}
            settings["volumes"] = paths
        return settings

    def local_entrypoint(self, fn: F | None = None, /) -> Any:
        """Mark the function ``nbremote run file.py`` calls (in this process)."""

        def mark(raw: F) -> F:
            self.local_entrypoints[raw.__name__] = raw
            return raw

        return mark(fn) if fn is not None else mark

    @contextlib.contextmanager
    def run(self) -> Iterator[App]:
        """Run the app's functions for the duration of the block (they also work without it).

        When the block ends, so do the app's containers, as in Modal: their ``@nr.exit()``
        methods have run (and may have used Dicts, Queues and volumes) before this returns.
        """
        from . import _session

        session = _session.current_session()  # connect (or start the embedded runner) up front
        try:
            yield self
        except BaseException:
            with contextlib.suppress(Exception):  # the block's own error is the one to see
                session.stop_app(self.name)
            raise
        # No session on the runner: the block called nothing remote, so nothing is to stop.
        with contextlib.suppress(NotFoundError):
            session.stop_app(self.name)


_notebook_app = App("notebook")


def remote(fn: Callable[..., R] | None = None, /, **settings: Any) -> Any:
    """``@app.function`` on the notebook's own app: the shorthand for notebooks.

    Example:
        >>> @remote(timeout=60)
        ... def double(x):
        ...     return 2 * x
        >>> double(4)  # here; double.remote(4) runs on the runner
        8
    """
    return (
        _notebook_app.function(fn, **settings)
        if fn is not None
        else _notebook_app.function(**settings)
    )
