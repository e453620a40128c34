"""The warm workers of one pool as a state machine without I/O: events in, actions out.

Why: the scaling rules (bounds, reuse order, scale-down, what a failed start does) are the part
of a pool worth testing exhaustively, and they are easy to test only apart from processes,
sockets, locks and clocks. `PoolState` holds them; the driver (`nbremote_runner.pools`) starts
and stops workers, runs requests, reads the clock and feeds the events back.

Events: `open` (the pool is created), `acquire` (a request wants a worker), `release` (its run
ended; ``retire`` when the worker must not serve again), `withdraw` (the request gave up: a
cancel), `started` / `start_failed` (a worker start ended), `died` (a worker is gone, however it
went), `renew` (the holder wants a new worker: a cell's ``--fresh``), `evict` (the GPU broker
wants an idle worker's devices), `take` (another pool's start takes the spare), `tick` (the time
passed in: scale down), `close`. Actions: `Start` (start a worker, for a request or to keep
warm), `Abort` (stop that start: its request gave up), `Hand` (worker W serves request R),
`Stop` (stop worker W), `Fail` (request R fails, and why).

The policy, in full (the same as the pool's before it became a state machine):

* A pool has at most ``max_workers`` workers, live or starting. Each serves up to ``max_inputs``
  requests at once.
* Requests wait in one first-come-first-served queue for the first worker with room, warm or
  new: the first waiting request gets the most recently used worker with room (so that the
  others can go idle and scale down). A waiting request with no worker with room starts one
  (while the pool is below its bound), which it **owns**, but it does not wait for that start
  only: a warm worker that comes free first serves it, and a start never gets a request ahead
  of a live worker with room (scale-up never makes a request slower than the warm worker would).
  The start it owned then passes to the next waiting request without one, else it goes on for
  nobody: its worker joins the pool idle (and scales down later).
* A worker whose run asked to retire (a timeout, a dead worker) stops at once; a worker that
  died is forgotten. Either makes room: a waiting request then starts a worker of its own.
* A request that gives up while it owns a start passes it on as above; with nobody to pass it
  to, the start is aborted (it may be waiting in the GPU queue: its place there goes too).
* A failed start fails its owner, if still waiting, with the start's error; the next waiting
  request, if any, then tries a start of its own. Starts to keep warm (``min_containers``)
  are made when the pool opens, and are not retried when they fail.
* On a tick, idle workers beyond ``min_containers`` (counting those busy) that have been idle
  longer than ``scaledown_window`` stop, the least recently used first.
* An eviction stops the worker only if it is idle (serving no request, nor handed one): the pool
  answers whether it went. `idle` says which workers the broker may name.
* Renewing stops every live worker at once (requests running there end as their worker does);
  the next request starts a new one. Starts in progress are kept: their workers are new.
* Closing stops every worker and fails every waiting request; a start that ends after it stops
  its worker.

A notebook's cell worker is a pool with the policy `CELL`: one worker, any number of requests
at once (the worker runs one cell at a time itself; a ``pull`` or an interrupt may come beside
it), none kept warm, never scaled down while its session lives.

The runner's spare is a pool with the policy `SPARE`: one worker of the default spec kept
started, so that a new notebook's first cell does not wait for Python to boot. It serves no
request of its own: a `take` hands its worker, or the start in progress that will give one, to
another pool's start for good (it leaves the pool), and starts the next spare: at once for a
booted worker, but only once a taken boot has booted (two boots at once on a small machine slow
the one its taker waits for, by as much as the second costs). With neither, the take fails (its
taker starts a worker itself) and the next spare starts. A spare that dies or fails to start is
not replaced until the next take.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from nbremote.wire.http import FunctionScaling

CELL = FunctionScaling(max_containers=1, max_inputs=sys.maxsize, scaledown_window=math.inf)
SPARE = FunctionScaling(min_containers=1, max_containers=1, scaledown_window=math.inf)
NO_SPARE = "no spare worker is ready or starting"
CLOSED = "the pool was closed (its session was reset or its app stopped) before a worker was free"


@dataclass(frozen=True)
class Start:
    """Start a worker; ``request`` is the request it is for (None: to keep the pool warm)."""

    start: int
    request: str | None


@dataclass(frozen=True)
class Abort:
    """Abandon start ``start``: the request it was for gave up."""

    start: int


@dataclass(frozen=True)
class Hand:
    """Worker ``worker`` serves request ``request`` now."""

    worker: str
    request: str


@dataclass(frozen=True)
class Stop:
    """Stop worker ``worker``: it is no longer the pool's."""

    worker: str


@dataclass(frozen=True)
class Fail:
    """Request ``request`` gets no worker. ``error`` is the start's own, when a start failed."""

    request: str
    reason: str
    error: Exception | None = None


Action = Start | Abort | Hand | Stop | Fail


def max_workers(scaling: FunctionScaling, limit: int | None, cpus: int | None) -> int:
    """The bound on a pool's workers: as asked, else one per core (at least two); never more
    than the runner's own ``limit`` (a pool that queued for GPUs held by its own idle workers
    would wait for itself)."""
    asked = scaling.max_containers or max(2, cpus or 1)
    return min(asked, limit) if limit is not None else asked


@dataclass
class _Worker:
    requests: set[str] = field(default_factory=set)
    last_used: float = 0.0


class PoolState:
    """The workers, starts and waiting requests of one pool.

    Args:
        scaling: the function's policy (``min_containers``, ``scaledown_window``, ``max_inputs``).
        bound: the most workers at once, live or starting (see `max_workers`).

    Example:
        >>> state = PoolState(FunctionScaling(), bound=1)
        >>> state.acquire("r1")
        [Start(start=1, request='r1')]
        >>> state.started(1, "w1", now=0.0)
        [Hand(worker='w1', request='r1')]
    """

    def __init__(self, scaling: FunctionScaling, bound: int) -> None:
        self.scaling = scaling
        self.bound = bound
        self.workers: dict[str, _Worker] = {}  # least recently used first
        self.starts: dict[int, str | None] = {}  # start -> the waiting request that owns it
        self.waiting: list[str] = []  # requests with no worker yet (owning a start or not)
        self.taken: dict[int, str] = {}  # start -> the request that took it: no longer the pool's
        self.closed = False
        self._next_start = 0

    @property
    def size(self) -> int:
        """Workers live plus those starting: what the bound counts."""
        return len(self.workers) + len(self.starts)

    def idle(self, worker: str) -> bool:
        """Whether ``worker`` is the pool's and serves nothing: the GPU broker may evict it."""
        state = self.workers.get(worker)
        return state is not None and not state.requests

    def serving(self, request: str) -> str | None:
        """The worker serving ``request``, if any."""
        return next((w for w, state in self.workers.items() if request in state.requests), None)

    # -- events --------------------------------------------------------------------------------

    def open(self) -> list[Action]:
        """The pool is created: start the workers it keeps warm."""
        return self._keep_warm()

    def acquire(self, request: str) -> list[Action]:
        """``request`` wants a worker."""
        if self.closed:
            return [Fail(request, CLOSED)]
        self.waiting.append(request)
        return self._serve()

    def release(self, worker: str, request: str, retire: bool, now: float) -> list[Action]:
        """``request``'s run on ``worker`` ended; ``retire``: the worker must not serve again."""
        state = self.workers.get(worker)
        if state is None:  # it died, or was stopped, while it ran
            return self._serve()
        state.requests.discard(request)
        state.last_used = now
        del self.workers[worker]  # back in as the most recently used
        if retire:
            return [Stop(worker), *self._serve()]
        self.workers[worker] = state
        return self._serve()

    def take(self, request: str) -> list[Action]:
        """Another pool's ``request`` takes the most recently used idle worker, else a start in
        progress (its worker goes to ``request`` when it comes), for good; a start replaces it
        (once that boot has booted)."""
        if self.closed:
            return [Fail(request, CLOSED)]
        idle = [w for w, state in self.workers.items() if not state.requests]
        if idle:
            del self.workers[idle[-1]]
            return [Hand(idle[-1], request), *self._keep_warm()]
        start = next((start for start, owner in self.starts.items() if owner is None), None)
        if start is None:
            return [Fail(request, NO_SPARE), *self._keep_warm()]
        del self.starts[start]
        self.taken[start] = request
        return []  # the next spare starts when this boot has booted (see `started`)

    def withdraw(self, request: str) -> list[Action]:
        """``request`` gave up (cancelled), wherever it was: waiting, starting, or served."""
        if request in self.waiting:
            self.waiting.remove(request)
            start = self._owned(request)
            if start is None or self._pass_on(start):
                return []
            del self.starts[start]
            return [Abort(start), *self._serve()]
        for start, taker in self.taken.items():
            if taker == request:
                del self.taken[start]
                return [Abort(start), *self._keep_warm()]
        for state in self.workers.values():
            state.requests.discard(request)
        return self._serve()

    def started(self, start: int, worker: str, now: float) -> list[Action]:
        """Start ``start`` gave ``worker``: it serves the request it was started for."""
        if start in self.taken:  # taken: the worker is its taker's, not the pool's
            return [Hand(worker, self.taken.pop(start)), *self._keep_warm()]
        self.starts.pop(start, None)
        if self.closed:
            return [Stop(worker)]
        self.workers[worker] = _Worker(last_used=now)
        return self._serve()  # to the oldest waiting request: its owner, or one older

    def start_failed(self, start: int, error: Exception) -> list[Action]:
        """Start ``start`` failed: its request fails with ``error``; others may try again."""
        request = self.starts.pop(start, None) or self.taken.pop(start, None)
        if request in self.waiting:
            self.waiting.remove(request)
        failed: list[Action] = [Fail(request, str(error), error)] if request is not None else []
        return [*failed, *self._serve()]

    def died(self, worker: str) -> list[Action]:
        """``worker`` is gone (it died, or was stopped by someone else): forget it."""
        if self.workers.pop(worker, None) is None:
            return []
        return self._serve()

    def evict(self, worker: str) -> list[Action]:
        """The GPU broker wants ``worker``'s devices: it stops if idle, else it stays (no
        Stop: the broker learns it was not free)."""
        if not self.idle(worker):
            return []
        del self.workers[worker]
        return [Stop(worker), *self._serve()]

    def renew(self) -> list[Action]:
        """The holder wants a new worker (``%%remote --fresh``): stop every live one."""
        stops: list[Action] = [Stop(worker) for worker in self.workers]
        self.workers = {}
        return [*stops, *self._serve()]

    def tick(self, now: float) -> list[Stop]:
        """Scale down: stop workers idle past the window, beyond ``min_containers``."""
        idle = [w for w, state in self.workers.items() if not state.requests]
        busy = len(self.workers) - len(idle)
        keep = max(0, self.scaling.min_containers - busy)
        window = self.scaling.scaledown_window
        expired = [
            w for w in idle[: max(0, len(idle) - keep)] if now - self.workers[w].last_used > window
        ]
        for worker in expired:
            del self.workers[worker]
        return [Stop(worker) for worker in expired]

    def close(self) -> list[Action]:
        """Stop every worker; fail every request still waiting or starting."""
        self.closed = True
        failed = [Fail(request, CLOSED) for request in [*self.waiting, *self.taken.values()]]
        stops = [Stop(worker) for worker in self.workers]
        self.waiting, self.workers = [], {}
        # Their workers stop when they come.
        self.starts = dict.fromkeys([*self.starts, *self.taken])
        self.taken = {}
        return [*failed, *stops]

    # -- the rule ------------------------------------------------------------------------------

    def _start(self, request: str | None) -> Start:
        self._next_start += 1
        self.starts[self._next_start] = request
        return Start(self._next_start, request)

    def _keep_warm(self) -> list[Action]:
        """Start workers to keep ``min_containers`` (within the bound), counting those starting."""
        count = min(self.scaling.min_containers, self.bound) - self.size
        return [self._start(None) for _ in range(count)]

    def _free(self) -> str | None:
        capacity = self.scaling.max_inputs
        free = [w for w, state in self.workers.items() if len(state.requests) < capacity]
        return free[-1] if free else None  # the most recently used

    def _owned(self, request: str) -> int | None:
        return next((start for start, owner in self.starts.items() if owner == request), None)

    def _pass_on(self, start: int) -> bool:
        """Give ``start`` to the oldest waiting request that owns none; whether one did."""
        owners = set(self.starts.values())
        heir = next((request for request in self.waiting if request not in owners), None)
        self.starts[start] = heir
        return heir is not None

    def _serve(self) -> list[Action]:
        """Hand workers with room to waiting requests in order; then start workers for those
        waiting without a start of their own, while there is room to start."""
        actions: list[Action] = []
        while self.waiting and not self.closed:
            worker = self._free()
            if worker is None:
                break
            request = self.waiting.pop(0)
            self.workers[worker].requests.add(request)
            actions.append(Hand(worker, request))
            start = self._owned(request)
            if start is not None:
                self._pass_on(start)  # or it goes on for nobody: its worker joins idle
        owners = set(self.starts.values())
        for request in [r for r in self.waiting if r not in owners]:
            if self.closed or self.size >= self.bound:
                break
            actions.append(self._start(request))
        return actions
