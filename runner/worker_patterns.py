"""How a worker calls a function that is not a plain one: a generator, a batched function.

A generator (``f.remote_gen()``) runs once; each value it yields is pickled and sent at once as
an ``item`` frame, so the caller has it while the generator goes on; the ``done`` comes when it
ends, with its error if it raised (after the values yielded before). Closing the caller's
iterator cancels the request: the runner interrupts the worker, and the generator's ``finally``
blocks run (an interrupt that comes while a value is being sent waits for the frame's end: a
frame cut in half would leave the runner reading garbage from this worker).

A batched function (``@nr.batched``) takes lists and returns a list of the same length. The
runner groups the inputs of many callers into one call (`nbremote_runner.batching` says why
there); its ``batched`` field says how many argument buffers and inputs each caller brought, so
the worker unpickles each caller's inputs, makes one call of them all, and pickles each caller's
results apart again: the runner hands each its own without unpickling anything. A batched
function called without the runner's grouping (a deployed one looked up by name, a leased
worker) gets each request's inputs as one batch.

Standard library only (and nbremote's wire helpers): this runs inside every container.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from nbremote.errors import SerializationError
from nbremote.wire.codec import Header
from nbremote.wire.ops import expand
from nbremote.wire.serialize import Payload, dumps, loads

from .worker_calls import (
    BatchResult,
    Input,
    InputTimeout,
    _on_event_loop,
    call_batch,
    deadline,
    describe_error,
)

SendItem = Callable[[int, Any], None]


def batch_settings(fn: Any) -> dict[str, int] | None:
    """``@nr.batched``'s settings of the function (or of the method a `MethodCall` names)."""
    method = getattr(fn, "method", None)
    if isinstance(method, str) and hasattr(fn, "cls"):
        fn = getattr(fn.cls, method, None)
    settings = getattr(fn, "__nbremote_batched__", None)
    return settings if isinstance(settings, dict) else None


def bound(fn: Any, item: Header, buffers: list[bytearray]) -> tuple[Any, int]:
    """What a call's ``function`` item names: ``fn``, or for a method (``bind``) that method of
    an instance of the class ``fn`` made with the parameters that follow its buffers; and where
    the inputs' buffers start."""
    position = item["nbuf"]
    bind = item.get("bind")
    if bind is None:
        return fn, position
    from nbremote.wire.classes import MethodCall

    params = buffers[position : position + bind["nparams"]]
    args, kwargs = loads("the constructor parameters", params)
    return MethodCall(bind["key"], fn, args, kwargs, bind["method"]), position + bind["nparams"]


def load_inputs(header: Header, buffers: list[bytearray]) -> list[Any]:
    """The call's inputs: one payload (in the request's ``form``), or one per caller of a
    batch the runner made.

    Raises:
        SerializationError: they cannot be unpickled, or are not a list of ``count`` inputs.
    """
    members = header.get("batched")
    if not members:
        inputs: list[Any] = loads("the call's arguments", buffers)
        if not isinstance(inputs, list) or len(inputs) != header.get("count", 1):
            got = f"{len(inputs)} inputs" if isinstance(inputs, list) else type(inputs).__name__
            raise SerializationError(
                "the call's arguments", f"the request says {header.get('count', 1)}, not {got}"
            )
        return inputs
    inputs, position = [], 0
    for member in members:
        inputs += loads("the call's arguments", buffers[position : position + member["nbuf"]])
        position += member["nbuf"]
    return inputs


def run_inputs(fn: Any, inputs: list[Input], header: Header, send_item: SendItem) -> BatchResult:
    """Call ``fn`` on the inputs the way its request and its decorators say."""
    get = header.get
    if get("gen"):
        inputs = expand(inputs, get("form"))
        return stream(fn, inputs, str(header["function"]["name"]), get("timeout"), send_item)
    if get("batched") or batch_settings(fn) is not None:
        inputs = expand(inputs, get("form"))
        return call_batched(fn, inputs, str(header["function"]["name"]), get("timeout"))
    # The plain call, the hot path: nothing more than before these patterns.
    first, form = get("first", 0), get("form")
    return call_batch(fn, inputs, first, get("timeout"), get("retries"), header, form)


def stream(
    fn: Any, inputs: list[Input], name: str, timeout: float | None, send_item: SendItem
) -> BatchResult:
    """Run a generator function on one input, sending each value as it is yielded."""
    batch = BatchResult(results=[None])
    try:
        ((args, kwargs),) = inputs
        with deadline(timeout, f"function {name}"):
            generator = fn(*args, **kwargs)
            if inspect.isasyncgen(generator):  # an async one: stepped on the worker's loop
                generator = _stepped(generator)
            if not inspect.isgenerator(generator):
                raise TypeError(
                    f"{name} is not a generator function (it returned "
                    f"{type(generator).__name__}): call it with .remote(), not .remote_gen()"
                )
            try:
                for index, value in enumerate(generator):
                    send_item(index, value)
            finally:  # interrupted sending a value: the generator's `finally` runs now
                generator.close()
    except Exception as exc:
        batch.retire = isinstance(exc, InputTimeout)
        batch.errors[0] = describe_error(exc, 1)
    return batch


def _stepped(generator: AsyncGenerator[Any, Any]) -> Iterator[Any]:
    """An async generator's values, each awaited on the worker's event loop."""
    try:
        while True:
            try:
                yield _on_event_loop(generator.__anext__())
            except StopAsyncIteration:
                return
    finally:
        _on_event_loop(generator.aclose())


def columns(inputs: list[Input], name: str) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """The inputs as one call's arguments: a list per positional argument and per keyword.

    Raises:
        TypeError: the callers did not pass the same arguments the same way.
    """
    shapes = {(len(args), tuple(sorted(kwargs))) for args, kwargs in inputs}
    if len(shapes) != 1:
        raise TypeError(
            f"{name} is @nr.batched: every call of one batch must pass the same arguments the "
            "same way (positionally or by the same keywords); got calls shaped "
            + ", ".join(f"{n} positional + keywords {list(k)}" for n, k in sorted(shapes))
        )
    ((count, keys),) = shapes
    positional = [[args[i] for args, _ in inputs] for i in range(count)]
    return positional, {key: [kwargs[key] for _, kwargs in inputs] for key in keys}


def call_batched(fn: Any, inputs: list[Input], name: str, timeout: float | None) -> BatchResult:
    """One call of a batched function on every input; each input gets its own element back,
    or the call's error (every input of the batch gets it)."""
    batch = BatchResult(results=[None] * len(inputs))
    try:
        positional, keywords = columns(inputs, name)
        with deadline(timeout, f"function {name}: a batch of {len(inputs)} inputs"):
            results = fn(*positional, **keywords)
            if inspect.iscoroutine(results):  # an async def: on the worker's event loop
                results = _on_event_loop(results)
        if not isinstance(results, list | tuple) or len(results) != len(inputs):
            got = f"{len(results)} results" if isinstance(results, list | tuple) else "a "
            got += "" if isinstance(results, list | tuple) else type(results).__name__
            raise ValueError(
                f"{name} is @nr.batched: it must return a list with one result per input, in "
                f"order; for a batch of {len(inputs)} inputs it returned {got}"
            )
        batch.results = list(results)
    except Exception as exc:
        batch.retire = isinstance(exc, InputTimeout) or hasattr(exc, "__nbremote_retire__")
        error = describe_error(exc, 1)
        batch.errors = dict.fromkeys(range(len(inputs)), error)
    return batch


def _pack(results: list[Any], errors: dict[int, Any], first: int) -> tuple[Payload, dict[int, Any]]:
    """The results pickled as one payload, and their errors; a result that cannot be pickled
    becomes its input's error."""
    try:
        return dumps("results", results), errors
    except SerializationError:
        pass
    for offset, result in enumerate(results):  # find the results that cannot travel
        try:
            dumps("", result)
        except SerializationError as exc:
            results[offset] = None
            errors[offset] = {
                "ename": "SerializationError",
                "evalue": f"the result of input #{first + offset} cannot be pickled: {exc.reason}",
                "traceback": [],
            }
    return dumps("results", results), errors


def pack(batch: BatchResult, header: Header) -> tuple[list[Any], dict[str, Any]]:
    """The ``done``'s buffers and fields for a batch's results: one payload, or one per caller
    of a batch the runner made (``batched``: each caller's ``nbuf`` and ``errors``)."""
    members = header.get("batched")
    if not members:
        payload, errors = _pack(batch.results, batch.errors, header.get("first", 0))
        return payload.parts, {"errors": errors}
    parts: list[Any] = []
    answers, start = [], 0
    for member in members:
        offsets = range(start, start + member["count"])
        own = {i - start: batch.errors[i] for i in offsets if i in batch.errors}
        payload, errors = _pack(batch.results[start : offsets.stop], own, 0)
        start = offsets.stop
        parts += payload.parts
        answers.append({"nbuf": len(payload.parts), "errors": errors})
    return parts, {"errors": {}, "batched": answers}
