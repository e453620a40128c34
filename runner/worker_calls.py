"""How a worker calls a function on a batch of inputs: timeouts, retries, per-input errors.

Each input is called on its own; a failing input does not stop the others. An input that raises
is retried as its retry policy says; one that runs past its timeout is stopped by SIGALRM (and
the worker is retired afterwards, since the code it interrupted may have left a mess; so is one
whose class instance failed in ``@nr.enter``).

Without a timeout, a batch first runs in a bare loop (`_run_plain`), which costs a trivial
input ~0.1 µs where the careful one costs ~2 µs (a map of 10,000 ``x + 1`` spent more here
than in the function, issue 23 W2); an input that raises leaves that loop for the careful
path (its failed attempt counts), and the loop resumes after it.
Standard library and `nbremote.wire.ops` only: this runs inside every container.
"""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from types import AsyncGeneratorType, CoroutineType, FrameType, GeneratorType
from typing import TYPE_CHECKING, Any

from nbremote.wire.ops import ARGS, VALUES

if TYPE_CHECKING:
    import asyncio

Input = tuple[tuple[Any, ...], dict[str, Any]]
_NOT_PLAIN = frozenset({GeneratorType, AsyncGeneratorType, CoroutineType})  # results to look at
MEMORY_VARIABLE = "NBREMOTE_MEMORY_MIB"  # the worker's memory= limit, set by the runner


def out_of_memory(memory_mib: int | str) -> str:
    """What a call that went over its memory limit says (here, for a ``MemoryError``; on the
    runner, for a container the kernel killed)."""
    return (
        f"the worker ran out of its {memory_mib} MiB memory limit (memory={memory_mib}); raise "
        "memory= (--memory for a cell) or use less memory at a time"
    )


def explain_memory_error(etype: object, evalue: str) -> str:
    """An error's message, naming the worker's memory limit when it is a ``MemoryError`` of a
    worker that has one (an allocation over ``RLIMIT_DATA`` raises it)."""
    limit = os.environ.get(MEMORY_VARIABLE)
    if limit is None or not (isinstance(etype, type) and issubclass(etype, MemoryError)):
        return evalue
    return out_of_memory(limit) + (f" ({evalue})" if evalue else "")


class InputTimeout(TimeoutError):
    """An input ran longer than its function's timeout."""


@dataclass
class BatchResult:
    """What came of a batch: a result per input (None where it failed) and the failures."""

    results: list[Any] = field(default_factory=list)
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)  # offset -> error
    retire: bool = False  # the worker should not serve again (a timeout, a failed @enter)


def deadline(
    timeout: float | None, what: str, index: int | None = None
) -> AbstractContextManager[None]:
    """Raise `InputTimeout` in the code running here once ``timeout`` seconds have passed,
    naming ``what`` ran over (and its input's ``index``: the text is made only if it does)."""
    # SIGALRM reaches the main thread only: concurrent inputs rely on the runner's own deadline.
    if not timeout or threading.current_thread() is not threading.main_thread():
        return _NO_DEADLINE  # no generator to make and step: most calls have no timeout
    return _alarm(timeout, what, index)


_NO_DEADLINE = nullcontext()


@contextmanager
def _alarm(timeout: float, what: str, index: int | None) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        where = what if index is None else f"{what}: input #{index}"
        raise InputTimeout(f"{where} ran longer than its timeout of {timeout:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _on_event_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on the worker's event loop (started on first use) and wait for it, so
    that concurrent inputs of an ``async def`` method interleave on one loop."""
    global _loop
    import asyncio  # only for `async def` functions: ~15 ms of every worker's boot otherwise

    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="nbremote-loop", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _loop).result()


def builtin_base(etype: type) -> str | None:
    """The nearest built-in exception class of ``etype`` (the client re-creates that relation)."""
    return next((cls.__name__ for cls in etype.__mro__ if cls.__module__ == "builtins"), None)


def describe_error(exc: BaseException, attempts: int) -> dict[str, Any]:
    """An exception as JSON: its name, message and traceback (without the worker's own frames)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__package__") == __package__:
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    evalue = explain_memory_error(type(exc), str(exc))
    if evalue != str(exc):
        lines[-1] = f"{type(exc).__name__}: {evalue}\n"
    return {
        "ename": type(exc).__name__,
        "evalue": evalue,
        "builtin": builtin_base(type(exc)),
        "traceback": ["".join(lines)],
        "attempts": attempts,
    }


def retry_delay(retries: dict[str, float], attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), with exponential backoff."""
    delay = retries["initial_delay"] * retries["backoff_coefficient"] ** attempt
    return float(min(delay, retries["max_delay"]))


def _name(request: dict[str, Any] | None) -> str:
    return str(request["function"]["name"]) if request else "the function"


def _caller(fn: Callable[..., Any], form: str | None) -> Callable[[Any], Any]:
    """A function of one input, in ``form``, that calls ``fn`` on it."""
    if form == VALUES:
        return fn
    if form == ARGS:
        return lambda args: fn(*args)
    return lambda pair: fn(*pair[0], **pair[1])


def _run_plain(
    call: Callable[[Any], Any], inputs: list[Any], results: list[Any]
) -> Exception | None:
    """Call on inputs from ``len(results)`` on, appending each result, until one raises (its
    exception is returned: its input's first attempt) or all are done (None)."""
    append = results.append
    try:
        for item in inputs[len(results) :] if results else inputs:
            append(call(item))
    except Exception as exc:
        return exc
    return None


def _attempt(
    call: Callable[[Any], Any], item: Any, index: int, timeout: float | None, what: str, name: str
) -> Any:
    """One attempt of one input, under its deadline."""
    with deadline(timeout, what, index):
        result = call(item)
        if inspect.isgenerator(result) or inspect.isasyncgen(result):  # as Modal
            raise TypeError(
                f"{name} is a generator function: call it with .remote_gen() (which streams "
                "what it yields), not .remote()"
            )
        if inspect.iscoroutine(result):  # an async def: on the worker's event loop
            result = _on_event_loop(result)
    return result


def call_batch(
    fn: Callable[..., Any],
    inputs: list[Any],
    first_index: int,
    timeout: float | None,
    retries: dict[str, float] | None,
    request: dict[str, Any] | None = None,
    form: str | None = None,
) -> BatchResult:
    """Call ``fn`` on each input (in ``form``); KeyboardInterrupt (a cancel) stops the whole
    batch. ``request`` (the call's frame) names the function in errors."""
    batch = BatchResult()
    call = _caller(fn, form)
    if timeout:
        for offset, item in enumerate(inputs):
            _careful(call, item, first_index + offset, timeout, retries, request, batch)
        return batch
    while len(batch.results) < len(inputs):
        failed = _run_plain(call, inputs, batch.results)
        if failed is not None:
            item = inputs[len(batch.results)]
            _careful(
                call, item, first_index + len(batch.results), None, retries, request, batch, failed
            )
    if not _NOT_PLAIN.isdisjoint(map(type, batch.results)):  # an async def's coroutines, say
        _redo_not_plain(call, inputs, first_index, retries, request, batch)
    return batch


def _redo_not_plain(
    call: Callable[[Any], Any],
    inputs: list[Any],
    first_index: int,
    retries: dict[str, float] | None,
    request: dict[str, Any] | None,
    batch: BatchResult,
) -> None:
    """Redo, carefully, the inputs whose call returned a coroutine or a generator: none of
    their code has run yet (those are closed unstarted), so nothing runs twice."""
    for offset, result in enumerate(batch.results):
        if type(result) in _NOT_PLAIN:
            result.close()
            again = BatchResult()
            _careful(call, inputs[offset], first_index + offset, None, retries, request, again)
            batch.results[offset] = again.results[0]
            if again.errors:
                batch.errors[offset] = again.errors[0]
            batch.retire |= again.retire


def _careful(
    call: Callable[[Any], Any],
    item: Any,
    index: int,
    timeout: float | None,
    retries: dict[str, float] | None,
    request: dict[str, Any] | None,
    batch: BatchResult,
    failed: Exception | None = None,
) -> None:
    """Run one input, retrying it as ``retries`` say, and append its result (None and an error
    if it failed every attempt); ``failed``: its first attempt raised that already."""
    max_retries = int(retries["max_retries"]) if retries else 0
    what = f"function {_name(request)}" if timeout else ""  # made only if it may be said
    attempt = 0
    while True:
        try:
            if failed is not None:
                exc, failed = failed, None
                raise exc
            result = _attempt(call, item, index, timeout, what, _name(request))
            batch.results.append(result)
            return
        except Exception as exc:
            batch.retire |= isinstance(exc, InputTimeout) or hasattr(exc, "__nbremote_retire__")
            if attempt < max_retries and retries is not None:
                time.sleep(retry_delay(retries, attempt))
                attempt += 1
                continue
            batch.results.append(None)
            batch.errors[len(batch.results) - 1] = describe_error(exc, attempt + 1)
            return
