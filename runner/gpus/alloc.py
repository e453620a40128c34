"""GPU allocation as a state machine without I/O: events in, actions out.

Events: `Allocator.request` (a worker is about to start and asks for GPUs), `Allocator.release`
(its worker is gone, or the request was withdrawn while waiting), `Allocator.idle` (a holder's
worker became idle or busy), `Allocator.update` (the inventory changed: a cluster's node left or
joined).
Actions: `Grant` (these devices are the lease's), `Queued` (it waits, at this position; sent
again when the position changes), `Reject` (it can never be served here, and why), `Evict`
(stop this idle holder: its devices are needed). The driver (`nbremote_runner.gpus.broker`) does
the I/O.

The policy, in full:

* A request is a list of choices in fallback order (``H100|A100-80GB:2``). Choices this runner
  can never satisfy (no such type, or fewer devices of it than the count) are dropped at once; a
  request left with none is rejected at once, saying what the runner has.
* Requests wait in one first-come-first-served queue. A request is granted the lowest-numbered
  free devices of its first choice that fits, unless an earlier waiting request could use them:
  **every device that matches a waiting request is reserved for it**, so later (smaller)
  requests never take, or evict, what an earlier (bigger) one waits for — no starvation. Later
  requests may still run on devices no earlier request wants (backfill).
* A waiting request evicts idle holders (those idle longest first) when that makes its first
  feasible choice fit — never a holder of its own group (the same function's pool: it would
  only restart the same worker), and never more than needed. A *private* holder (a cell
  worker: its namespace is the notebook's state) is evicted only for a request of its own
  session — the notebook would otherwise wait on itself — and only after the shared ones
  (function workers, which come back on the next call) that would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nbremote.wire.gpu import describe, matches
from nbremote.wire.http import GpuChoice, GpuRequest

from .discovery import Device


@dataclass(frozen=True)
class Grant:
    """The lease may start its worker on ``devices``."""

    lease: str
    devices: tuple[int, ...]


@dataclass(frozen=True)
class Queued:
    """The lease waits; ``position`` 1 is next."""

    lease: str
    position: int


@dataclass(frozen=True)
class Reject:
    """The lease can never be served by this runner."""

    lease: str
    reason: str


@dataclass(frozen=True)
class Evict:
    """Stop the (idle) worker of this lease to make room (for the request ``waiter``)."""

    lease: str
    waiter: str = field(default="", compare=False)


Action = Grant | Queued | Reject | Evict


@dataclass
class _Waiting:
    lease: str
    request: GpuRequest
    choices: list[GpuChoice]  # those this runner can ever satisfy, in order
    group: str
    session: str | None = None
    position: int = 0  # as last reported


class Allocator:
    """Who holds which GPU, and who waits for which.

    Args:
        devices: the runner's GPUs.
        unavailable: why there are none, when there are none.

    Example:
        >>> from nbremote.wire.gpu import parse_text as parse
        >>> alloc = Allocator([Device(0, "NVIDIA A100-SXM4-80GB")])
        >>> alloc.request("a", parse("A100"))
        [Grant(lease='a', devices=(0,))]
        >>> alloc.request("b", parse("any"))
        [Queued(lease='b', position=1)]
        >>> alloc.release("a")
        [Grant(lease='b', devices=(0,))]
    """

    def __init__(self, devices: Sequence[Device], unavailable: str | None = None) -> None:
        self.devices = {device.index: device for device in devices}
        self.unavailable = unavailable
        self.held: dict[int, str] = {}  # device index -> lease
        self.queue: list[_Waiting] = []
        self._groups: dict[str, str] = {}  # lease -> group, for leases holding devices
        self._sessions: dict[str, str | None] = {}  # lease -> its session, for the same
        self._private: set[str] = set()  # leases evicted only for their own session
        self._idle: dict[str, None] = {}  # leases whose holder is idle, idle longest first
        self._evicting: set[str] = set()

    # -- queries -------------------------------------------------------------------------------

    def devices_of(self, lease: str) -> tuple[int, ...]:
        """The devices a lease holds."""
        return tuple(sorted(index for index, holder in self.held.items() if holder == lease))

    def matching(self, choice: GpuChoice) -> list[int]:
        """The devices that satisfy ``choice``, whoever holds them."""
        return [
            index
            for index, device in sorted(self.devices.items())
            if matches(choice, device.name, device.memory_bytes)
        ]

    def capacity(self, request: GpuRequest) -> int:
        """How many workers with this request the runner could run at once, if it were empty."""
        return max((len(self.matching(c)) // c.count for c in request.choices), default=0)

    def inventory(self) -> str:
        """The runner's GPUs for people, by name with their counts."""
        counts: dict[str, int] = {}
        for device in self.devices.values():
            counts[device.name] = counts.get(device.name, 0) + 1
        return ", ".join(f"{count}\N{MULTIPLICATION SIGN} {name}" for name, count in counts.items())

    # -- events --------------------------------------------------------------------------------

    def request(
        self,
        lease: str,
        request: GpuRequest,
        group: str = "",
        session: str | None = None,
        private: bool = False,
    ) -> list[Action]:
        """A worker for ``lease`` wants the GPUs of ``request``; ``group`` names its pool,
        ``session`` its notebook session; ``private``: once idle, only a request of the same
        session may evict it."""
        choices = self._feasible(request)
        if not choices:
            return [Reject(lease, self._why_not(request))]
        self._sessions[lease] = session
        if private and session is not None:
            self._private.add(lease)
        self.queue.append(_Waiting(lease, request, choices, group, session))
        return self._schedule()

    def release(self, lease: str) -> list[Action]:
        """The lease's worker is gone (or its request was withdrawn): free what it holds."""
        self._forget(lease)
        return self._schedule()

    def update(self, devices: Sequence[Device], unavailable: str | None = None) -> list[Action]:
        """The runner's GPUs changed (a cluster's node left or joined). A device no longer
        listed is never granted again; a lease holding one keeps it until its release (its
        worker ends). Waiting requests are weighed again: one that can now never be served is
        rejected, as a new one would be."""
        self.devices = {device.index: device for device in devices}
        self.unavailable = unavailable if not devices else None
        actions: list[Action] = []
        for waiting in list(self.queue):
            waiting.choices = self._feasible(waiting.request)
            if not waiting.choices:
                self._forget(waiting.lease)
                actions.append(Reject(waiting.lease, self._why_not(waiting.request)))
        return actions + self._schedule()

    def idle(self, lease: str, idle: bool) -> list[Action]:
        """The lease's worker became idle (may be evicted) or busy (may not)."""
        if idle and lease in self._groups:
            self._idle[lease] = None
        else:
            self._idle.pop(lease, None)
            self._evicting.discard(lease)  # it turned busy before it could be stopped
        return self._schedule()

    def evicting(self, lease: str) -> bool:
        """Whether the lease's worker is being stopped to make room."""
        return lease in self._evicting

    # -- the policy ----------------------------------------------------------------------------

    def _forget(self, lease: str) -> None:
        """Drop the lease: its place in the queue, its devices, what is known of its holder."""
        self.queue = [waiting for waiting in self.queue if waiting.lease != lease]
        for index in self.devices_of(lease):
            del self.held[index]
        self._groups.pop(lease, None)
        self._sessions.pop(lease, None)
        self._private.discard(lease)
        self._idle.pop(lease, None)
        self._evicting.discard(lease)

    def _feasible(self, request: GpuRequest) -> list[GpuChoice]:
        """The choices of ``request`` this runner's GPUs can ever satisfy, in order."""
        return [c for c in request.choices if len(self.matching(c)) >= c.count]

    def _why_not(self, request: GpuRequest) -> str:
        if not self.devices:
            why = self.unavailable or "none were found"
            return (
                f"this runner has no GPUs ({why}); drop the GPU request, or use a runner "
                "on a GPU machine (`nbremote runner --gpus A100:2` declares them)"
            )
        has = self.inventory()
        if not any(self.matching(c) for c in request.choices):
            return f"no GPU on this runner matches {request}; it has: {has}"
        counts = "; ".join(f"{c} (it has {len(self.matching(c))})" for c in request.choices)
        return f"{request} asks for more GPUs than this runner has: {counts}; it has: {has}"

    def _fit(self, waiting: _Waiting, available: set[int]) -> tuple[int, ...] | None:
        for choice in waiting.choices:
            usable = [index for index in self.matching(choice) if index in available]
            if len(usable) >= choice.count:
                return tuple(usable[: choice.count])
        return None

    def _make_room(self, waiting: _Waiting, available: set[int], reserved: set[int]) -> list[str]:
        """Leases to evict so that the first feasible choice of ``waiting`` fits (none if room
        is already on its way, or if evicting every idle holder would not be enough)."""
        coming = {
            index
            for lease in self._evicting
            for index in self.devices_of(lease)
            if index not in reserved
        }
        for choice in waiting.choices:
            if len([i for i in self.matching(choice) if i in available | coming]) >= choice.count:
                return []
        for choice in waiting.choices:
            wanted = set(self.matching(choice))
            have = len(wanted & (available | coming))
            picks = []
            for lease in self._evictable(waiting):
                held = set(self.devices_of(lease))
                if held & reserved or not held & wanted:
                    continue
                picks.append(lease)
                have += len(held & wanted)
                if have >= choice.count:
                    self._evicting.update(picks)
                    return picks
        return []

    def _evictable(self, waiting: _Waiting) -> list[str]:
        """The idle holders ``waiting`` may evict: shared ones first, then its own session's
        private ones; each idle longest first."""
        shared, own = [], []
        for lease in self._idle:
            if lease in self._evicting or self._groups.get(lease) == waiting.group:
                continue
            if lease not in self._private:
                shared.append(lease)
            elif waiting.session is not None and self._sessions.get(lease) == waiting.session:
                own.append(lease)
        return shared + own

    def _schedule(self) -> list[Action]:
        actions: list[Action] = []
        free = {index for index in self.devices if index not in self.held}
        reserved: set[int] = set()  # devices an earlier waiting request could use
        position = 0
        for waiting in list(self.queue):
            devices = self._fit(waiting, free - reserved)
            if devices is not None:
                self.queue.remove(waiting)
                for index in devices:
                    self.held[index] = waiting.lease
                self._groups[waiting.lease] = waiting.group
                free -= set(devices)
                actions.append(Grant(waiting.lease, devices))
                continue
            position += 1
            actions.extend(
                Evict(lease, waiting.lease)
                for lease in self._make_room(waiting, free - reserved, reserved)
            )
            reserved |= {index for choice in waiting.choices for index in self.matching(choice)}
            if waiting.position != position:
                waiting.position = position
                actions.append(Queued(waiting.lease, position))
        return actions


def wanted(request: GpuRequest) -> str:
    """A request for people: its choices with their counts, joined by "or"."""
    return " or ".join(describe(choice) for choice in request.choices)
