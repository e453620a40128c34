"""Remote functions (``@app.function``) and the calls they spawn (``nr.FunctionCall``).

A `Function` wraps a plain function. Calling it, or ``.local()``, runs it here; ``.remote()``
runs it on one of the function's warm workers on the runner; ``.map``/``.starmap`` stream results
back as they finish, spread over up to ``max_containers`` workers (``.for_each`` runs one for
its effects); ``.spawn`` starts a call and returns a `FunctionCall` to collect it later, from
any cell or process (``.spawn_map`` spawns one per input). A generator function is called with
``.remote_gen()``, which yields its values as they come; an ``@nr.batched`` one is called with
single inputs, grouped into batches by the runner (`nbremote._call_patterns`).

The function is pickled at call time (by value if it lives in the notebook or a script, with
the globals it uses; by reference if it lives in an installed module).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _call_patterns, _session
from ._by_value import dumps_function, frozen_captures, same_objects
from ._calls import (
    Batcher,
    Bind,
    CallTarget,
    Input,
    decode,
    decode_chunk,
    raise_first,
)
from ._function_call import FunctionCall as FunctionCall  # its home before; still here
from ._options import (
    AppLike,
    DeployedApp,
    FunctionOptions,
    lookup,
    options_from,
    with_overrides,
)
from ._output import show
from ._session import Request
from .errors import NbremoteError, RunnerError, remote_error
from .wire.ops import ARGS, VALUES, Op, expand
from .wire.serialize import Payload

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .job import Job
    from .wire.http import FunctionStats
    from .wire.schedule import Cron, Period

R = TypeVar("R")
WINDOW_PER_CONTAINER = 4  # requests a map keeps in flight per worker it may use


@dataclasses.dataclass
class _LastTarget:
    """A function's last `CallTarget`, and what it was made of."""

    payload: Payload | None
    options: FunctionOptions
    target: CallTarget


class Function(Generic[R]):
    """A function that can run on the runner. Created by `App.function` or `nbremote.remote`."""

    def __init__(
        self,
        fn: Callable[..., R] | None,
        app: AppLike,
        options: FunctionOptions,
        *,
        name: str | None = None,
        pool_name: str | None = None,
        local: Callable[..., R] | None = None,
        bind: Bind | None = None,
        deployed: dict[str, str] | None = None,
    ) -> None:
        self.raw_f = fn  # what is pickled: the function, or the class of a method (None: deployed)
        self._local_f = local or fn
        self.app = app
        self.options = options
        self.__name__ = getattr(fn, "__name__", "function")
        self.__qualname__ = name or str(getattr(fn, "__qualname__", self.__name__))
        self.__doc__ = getattr(fn, "__doc__", None)
        self._bind = bind
        self._deployed = deployed
        self._pool_name = pool_name or f"{getattr(fn, '__module__', '')}.{self.__qualname__}"
        self._pool = options.pool(app.name, self._pool_name)
        self._retries = options.retries.to_wire() if options.retries else None
        self._pickled: tuple[tuple[object, ...], Payload] | None = None
        self._last_target: _LastTarget | None = None
        self._generator = _call_patterns.is_generator(fn, bind)
        self._batch = _call_patterns.batch_settings(fn, bind)
        self._batch_size = 1  # the batch size its last map settled on: the next starts there

    @property
    def is_generator(self) -> bool:
        """Whether it is a generator function (call it with ``remote_gen``)."""
        return bool(self._generator)

    def __repr__(self) -> str:
        return f"<nbremote.Function {self.__qualname__} of app {self.app.name!r}>"

    @classmethod
    def from_name(cls, app_name: str, name: str) -> Function[Any]:
        """A function deployed on the runner (``nbremote deploy``), to call from anywhere.

        Raises:
            NbremoteError: it is not deployed (the message lists what is).
        """
        described = lookup(app_name, name, "function")
        deployed = {"app": app_name, "object": name}
        options = options_from(described.settings)
        return Function(
            None,
            DeployedApp(app_name),
            options,
            name=name,
            pool_name=f"deployed:{name}",
            deployed=deployed,
        )

    def take_web(self, web: dict[str, Any]) -> None:
        """Take a web decorator's settings (one put above ``@app.function``, not Modal's order,
        is applied to this handle rather than to the plain function)."""
        self.options = dataclasses.replace(self.options, web=web)

    def _run_here(self, *args: Any, **kwargs: Any) -> R:
        if self._local_f is None:
            raise NbremoteError(f"{self.__qualname__} is deployed on the runner: call .remote()")
        return self._local_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        """Run it here, in this process (like ``.local``)."""
        return self._run_here(*args, **kwargs)

    def local(self, *args: Any, **kwargs: Any) -> R:
        """Run it here, in this process."""
        return self._run_here(*args, **kwargs)

    def with_options(self, **overrides: Any) -> Function[R]:
        """The same function with some settings changed (this one stays as it is)."""
        options = with_overrides(self.options, overrides, self.__qualname__)
        return Function(
            self.raw_f,
            self.app,
            options,
            name=self.__qualname__,
            pool_name=self._pool_name,
            local=self._local_f,
            bind=self._bind,
            deployed=self._deployed,
        )

    def schedule(self, schedule: Cron | Period, *, name: str | None = None) -> Job:
        """Fire it on ``schedule`` on the runner, with no arguments, whether or not this
        notebook is open: it is deployed as an app of its own, ``name``, whose job is ``name``
        (its return value is each run's output ``result``). Again with the same name replaces
        the function and the schedule; ``nr.Job(name).delete()`` or ``nbremote apps stop NAME``
        ends it.

        Args:
            schedule: ``nr.Cron("0 2 * * *", timezone="Europe/Berlin")`` or ``nr.Period(hours=1)``.
            name: the job's (and the app's) name; default: the function's name.

        Example:
            >>> job = report.schedule(nr.Cron("0 7 * * mon"), name="weekly")  # doctest: +SKIP
            >>> job.run().wait().outputs["result"]  # doctest: +SKIP
        """
        from ._deploy import deploy_scheduled
        from .job import Job
        from .wire.schedule import Cron, Period

        if not isinstance(schedule, Cron | Period):
            raise TypeError(
                f"{self.__qualname__}.schedule() takes nr.Cron('0 2 * * *') or "
                f"nr.Period(hours=1), got {type(schedule).__name__}"
            )
        function = self._alone("scheduled", "schedule=")
        name = _alone_name(name or self.__name__, "job")
        deploy_scheduled(_session.current_session().client, function, schedule, name)
        return Job(name)

    def serve(
        self, name: str | None = None, *, method: str = "POST", requires_auth: bool = True
    ) -> Endpoint:
        """Serve it over HTTP from the runner, as a FastAPI endpoint (a JSON body checked
        against its type hints for POST, query parameters for GET), whether or not this
        notebook is open: it is deployed as an app of its own, ``name``, whose endpoint is
        ``name``. Again with the same name replaces the function (the token stays);
        ``nbremote apps stop NAME`` ends it (``ep.delete()`` ends the endpoint alone).

        Args:
            name: the endpoint's (and the app's) name; default: the function's name.
            method: the HTTP method it answers.
            requires_auth: callers send the endpoint's token (``ep.token``); False: public.

        Example:
            >>> ep = predict.serve(name="predict")  # doctest: +SKIP
            >>> ep.url, ep.token  # doctest: +SKIP
        """
        from ._deploy import deploy_served
        from .endpoint import Endpoint
        from .web import web_settings

        where = f"{self.__qualname__}.serve()"
        web = web_settings(
            "fastapi_endpoint", method=method, requires_auth=requires_auth, where=where
        )
        function = self._alone("served", "a web decorator")
        web["label"] = _alone_name(name or self.__name__, "endpoint")
        deploy_served(_session.current_session().client, function, web)
        return Endpoint(web["label"])

    def get_web_url(self) -> str:
        """The URL the runner serves this web function at (it must be deployed).

        Raises:
            NbremoteError: it has no web decorator, or is not deployed (yet, or any more).
        """
        from .endpoint import Endpoint
        from .web import endpoint_name

        if not self.options.web:
            raise NbremoteError(
                f"{self.__qualname__} is not a web function: put @nr.fastapi_endpoint() (or "
                "asgi_app, wsgi_app) under its @app.function and deploy the app, or serve it "
                "from a notebook with ep = f.serve(name=...) and use ep.url"
            )
        name = endpoint_name(self.app.name, self.__qualname__, self.options.web)
        try:
            return Endpoint(name).url
        except RunnerError as exc:
            if exc.kind != "NotFound":
                raise
            raise NbremoteError(
                f"{self.__qualname__} is not served: the runner has no endpoint {name!r}; "
                f"deploy its app {self.app.name!r} first (nbremote deploy FILE.py)"
            ) from None

    def _alone(self, done: str, instead: str) -> tuple[str, Callable[..., Any], FunctionOptions]:
        """What a deploy of this function alone sends (``schedule``, ``serve``).

        Raises:
            NbremoteError: it is not a function of this notebook or script.
        """
        if self.raw_f is None or self._bind is not None:
            raise NbremoteError(
                f"{self.__qualname__}: only a function of this notebook or script can be "
                f"{done}; a deployed one gets {instead} in its app (then `nbremote deploy`)"
            )
        return (self.__qualname__, self.raw_f, self.options)

    def _payload(self) -> Payload | None:
        """The function pickled now, not at definition, so that globals redefined since are
        seen; the last pickle is reused while everything it captured is the same immutable
        objects (the common case, and ~50 µs saved per call). A class is pickled once per
        handle; a deployed object not at all (the runner has it)."""
        if self.raw_f is None:
            return None
        captured = () if self._bind is not None else frozen_captures(self.raw_f)
        if (
            captured is not None
            and self._pickled is not None
            and same_objects(self._pickled[0], captured)
        ):
            return self._pickled[1]
        payload = dumps_function(f"function {self.__qualname__}", self.raw_f)
        self._pickled = (captured, payload) if captured is not None else None
        return payload

    def _target(self) -> CallTarget:
        payload, options = self._payload(), self.options
        last = self._last_target  # the same while the pickle and the options are (each call)
        if last is not None and last.payload is payload and last.options is options:
            return last.target
        target = CallTarget(
            options.max_inputs,
            self.__qualname__,
            None if self._bind else self.raw_f,
            payload,
            self._pool,
            options.timeout,
            self._retries,
            self._bind,
            self._deployed,
            options.image,
            self._batch,
        )
        self._last_target = _LastTarget(payload, options, target)
        return target

    def remote(self, *args: Any, **kwargs: Any) -> R:
        """Run it on the runner and return its result (or raise its remote error).

        Raises:
            SerializationError: an argument cannot be pickled (named; nothing was sent).
            RemoteError: the function raised remotely (with the remote traceback).
        """
        if self._generator:
            _call_patterns.refuse(self.__qualname__, True, ".remote()")
        session = _session.current_session()
        target = self._target()
        sent = session.sent_functions
        request = target.request([(args, kwargs)], 0, target.payload_hash not in sent)
        frame = session.call(request, show)
        sent.add(target.payload_hash)
        outcome: R = next(raise_first(decode(frame, 0, numbered=False)))
        return outcome

    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Run a generator function on the runner; yield each value as soon as it is yielded
        there. Closing the iterator early stops the remote generator.

        Raises:
            InvalidError: it is not a generator function (call ``.remote()``).
            RemoteError: the generator raised, after the values it yielded before.

        Example:
            >>> for line in tail.remote_gen("log.txt"):  # doctest: +SKIP
            ...     print(line)
        """
        _call_patterns.refuse(self.__qualname__, self._generator, ".remote_gen()")
        return _call_patterns.values(_session.current_session(), self._target(), (args, kwargs))

    def get_current_stats(self) -> FunctionStats:
        """Its load now: ``backlog`` (inputs waiting for a worker or a batch) and
        ``num_total_runners`` (workers live or starting), as Modal's ``FunctionStats``."""
        session = _session.current_session()
        return _call_patterns.stats(session, self._pool["key"], self._deployed)

    def spawn_map(self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None) -> None:
        """Spawn a call per element (zipped across ``iterables``) and return once the runner
        has them all, without waiting for any to run (Modal's; their results are not kept for
        collection: use it for effects, or ``spawn`` for calls to collect)."""
        _call_patterns.refuse(self.__qualname__, self._generator, ".spawn_map()")
        inputs = ((args, dict(kwargs or {})) for args in zip(*iterables, strict=False))
        _call_patterns.spawn_each(_session.current_session(), self._target(), inputs)

    def for_each(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        ignore_exceptions: bool = False,
    ) -> None:
        """Call it on each element (zipped across ``iterables``) for its effects, as `map`
        does, and return None once every call has finished.

        Raises:
            RemoteError: the first call that failed, unless ``ignore_exceptions``.
        """
        inputs, form = _lean(iterables) if not kwargs else (_pairs(iterables, kwargs), None)
        total = _length(*iterables)
        for _ in self._map(inputs, total, ignore_exceptions, order_outputs=False, form=form):
            pass

    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall[R]:
        """Start a call and return at once; collect it with ``.get()``."""
        if self._generator:
            _call_patterns.refuse(self.__qualname__, True, ".spawn()")
        call_id = uuid.uuid4().hex
        request = self._target().request([(args, kwargs)], 0, True, op=Op.SPAWN)
        request.header["call_id"] = call_id
        done, _ = _session.current_session().call(request, show)
        if not done["ok"]:
            error = done["error"]
            raise remote_error(error["ename"], error["evalue"], [error["evalue"]])
        return FunctionCall(call_id)

    def map(
        self, *iterables: Iterable[Any], return_exceptions: bool = False, order_outputs: bool = True
    ) -> Iterator[Any]:
        """Call it on each element (zipped across ``iterables``); yield results as they come.

        Inputs are read lazily and batched on the wire; a progress bar shows for long maps.
        Without ``return_exceptions`` the first failure raises and the rest are cancelled;
        with it, failures are yielded in place as exceptions.
        """
        inputs, form = _lean(iterables)
        return self._map(inputs, _length(*iterables), return_exceptions, order_outputs, form)

    def starmap(
        self,
        iterable: Iterable[Iterable[Any]],
        return_exceptions: bool = False,
        order_outputs: bool = True,
    ) -> Iterator[Any]:
        """Like `map`, each element being the tuple of arguments of one call."""
        inputs = map(tuple, iterable)
        return self._map(inputs, _length(iterable), return_exceptions, order_outputs, ARGS)

    def _map(
        self,
        inputs: Iterator[Any],
        total: int | None,
        return_exceptions: bool,
        order_outputs: bool,
        form: str | None = None,
    ) -> Iterator[Any]:
        if self._generator:
            _call_patterns.refuse(self.__qualname__, True, ".map()")
        session = _session.current_session()
        target = self._target()
        # One input a request, as an (args, kwargs) pair: a batched function's (the runner
        # groups pairs into batches), or a single-use one's (a fresh container each).
        one_each = bool(self._batch) or self.options.single_use_containers
        given, form = form, None if one_each else form
        workers = self.options.max_containers or 2
        # Of unknown length: fewer requests in flight, so each may be bigger (see Batcher.spread)
        per_worker = WINDOW_PER_CONTAINER if total or one_each else 2
        window = per_worker * workers * self.options.max_inputs
        batcher = Batcher(inputs, 1 if one_each else None, self._batch_size)
        batcher.spread(total, workers, window)
        sent = {target.payload_hash} & session.sent_functions

        def requests() -> Iterator[Request]:
            for first, batch in batcher.batches():
                batch = expand(batch, given) if one_each else batch
                yield target.request(batch, first, target.payload_hash not in sent, form=form)
                sent.add(target.payload_hash)

        if self._batch:  # enough in flight to fill every worker's batches
            window *= self._batch["max_batch_size"]
        waiting: dict[int, list[Any]] = {}  # first index -> outcomes, held back for ordering
        expected = 0
        with _progress(total, self.__qualname__) as progress:
            for request, frame in session.stream(requests(), window, show):
                first, count = request.tag
                self._batch_size = batcher.observe(count, frame[0].get("elapsed", 0.0))
                outcomes = decode_chunk(frame, first, count, return_exceptions)
                progress.update(count)
                if not return_exceptions and frame[0].get("errors"):
                    outcomes = list(raise_first(outcomes))
                if not order_outputs:
                    yield from outcomes
                    continue
                waiting[first] = outcomes
                while expected in waiting:
                    ready = waiting.pop(expected)
                    expected += len(ready)
                    yield from ready
        session.sent_functions.add(target.payload_hash)


def _alone_name(name: str, what: str) -> str:
    """The name of a function deployed alone: its app's, and its job's or endpoint's.

    Raises:
        ValueError: it is not a name the runner takes for an app (one part: no '/').
    """
    from .wire.jobs import JOB_NAME

    if not JOB_NAME.match(name):
        raise ValueError(
            f"name={name!r}: a {what}'s name is letters, digits, '_', '.' and '-', starting "
            "with a letter or digit, 64 characters at most"
        )
    return name


def _lean(iterables: tuple[Iterable[Any], ...]) -> tuple[Iterator[Any], str]:
    """A map's inputs in their leanest form on the wire (see `nbremote._calls`): the values
    themselves for one iterable, tuples of arguments (zipped) for more."""
    if len(iterables) == 1:
        return iter(iterables[0]), VALUES
    return zip(*iterables, strict=False), ARGS


def _pairs(iterables: tuple[Iterable[Any], ...], kwargs: dict[str, Any]) -> Iterator[Input]:
    return ((args, dict(kwargs)) for args in zip(*iterables, strict=False))


def _length(*iterables: Iterable[Any]) -> int | None:
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _progress(total: int | None, name: str) -> Any:
    """A text progress bar that appears only if the map takes more than a second."""
    from tqdm.std import tqdm

    return tqdm(total=total, desc=f"{name}.map", unit="input", delay=1.0)
