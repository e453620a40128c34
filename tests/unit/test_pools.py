"""The pool driver: what the state machine decides reaches the right request, in its context."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from nbremote_runner.backends.base import POOL_HAS_OTHERS, START_GROUP
from nbremote_runner.gpus import Holder
from nbremote_runner.pool_state import CELL, SPARE
from nbremote_runner.pools import STARTING, FunctionPool, SparePool
from nbremote_runner.sessions import Session

from nbremote.wire.http import FunctionScaling, WorkerSpec

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
_ids = itertools.count()


class FakeWorker:
    """What a pool uses of a worker; ``release`` lets the run in progress finish."""

    def __init__(self) -> None:
        self.id = f"w{next(_ids)}"
        self.alive = True
        self.group = ""  # the pool that took it, if it was the runner's spare
        self.release = asyncio.Event()
        self._gone: list[Callable[[], None]] = []

    async def run(self, header: dict[str, Any], *_: object) -> tuple[dict[str, Any], list[Any]]:
        await self.release.wait()
        self.release.clear()
        return {"op": "done", "id": header["id"], "ok": True, "worker": self.id}, []

    def on_gone(self, callback: Callable[[], None]) -> None:
        self._gone.append(callback)

    def joined(self, group: str) -> None:
        self.group = group

    async def stop(self) -> None:
        self.alive = False
        for callback in self._gone:
            callback()


class Starter:
    """Starts fake workers when told to; remembers whose context each start ran in."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.contexts: list[str] = []
        self.error: Exception | None = None
        self.started: list[FakeWorker] = []

    async def __call__(self, spec: WorkerSpec) -> FakeWorker:
        self.contexts.append(WHO.get())
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.started.append(FakeWorker())
        return self.started[-1]


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def make(starter: Starter, bound: int = 1) -> FunctionPool:
    return FunctionPool(starter, WorkerSpec(), FunctionScaling(max_containers=bound))  # type: ignore[arg-type]


async def call(pool: FunctionPool, who: str) -> str:
    WHO.set(who)
    done, _ = await pool.run({"id": who}, [], lambda *_: None, None)
    return str(done["worker"])


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_start_runs_in_the_context_of_the_request_it_is_for() -> None:
    async def test() -> None:
        starter = Starter()
        pool = make(starter, bound=2)
        first = asyncio.create_task(call(pool, "alice"))
        second = asyncio.create_task(call(pool, "bob"))
        await settle()
        assert sorted(starter.contexts) == ["alice", "bob"]  # GPU queue notices go to each
        for worker in starter.started:
            worker.release.set()
        assert {await first, await second} == {w.id for w in starter.started}

    run(test)


def test_a_failed_start_raises_its_own_error_in_the_request() -> None:
    async def test() -> None:
        starter = Starter()
        starter.error = LookupError("no image 'x'")
        with pytest.raises(LookupError, match="no image 'x'"):
            await call(make(starter), "alice")

    run(test)


def test_a_request_cancelled_while_its_worker_starts_cancels_the_start() -> None:
    async def test() -> None:
        starter = Starter()
        starter.gate.clear()  # the start waits (in the GPU queue, say)
        pool = make(starter)
        task = asyncio.create_task(call(pool, "alice"))
        await settle()
        task.cancel()
        await settle()
        starter.gate.set()
        await settle()
        assert starter.started == []  # its place in the queue went with it
        assert pool.workers == []

    run(test)


def test_a_worker_stopped_by_someone_else_is_not_handed_out() -> None:
    async def test() -> None:
        starter = Starter()
        pool = make(starter, bound=2)
        first = asyncio.create_task(call(pool, "alice"))
        await settle()
        [worker] = starter.started
        worker.release.set()
        assert await first == worker.id
        worker.alive = False  # the GPU broker evicts it: it is not gone yet
        second = asyncio.create_task(call(pool, "bob"))
        await settle()
        assert len(starter.started) == 2
        starter.started[1].release.set()
        assert await second == starter.started[1].id

    run(test)


def test_closing_fails_waiting_requests_and_stops_workers() -> None:
    async def test() -> None:
        starter = Starter()
        pool = make(starter)
        busy = asyncio.create_task(call(pool, "alice"))
        waiting = asyncio.create_task(call(pool, "bob"))
        await settle()
        [worker] = starter.started
        await pool.close()
        assert not worker.alive
        with pytest.raises(Exception, match="pool was closed"):
            await waiting
        worker.release.set()
        await busy  # its run ends as the worker's does; nothing hangs

    run(test)


def cell_pool(starter: Starter) -> FunctionPool:
    return FunctionPool(starter, WorkerSpec(), CELL)  # type: ignore[arg-type]


def test_a_cell_pool_keeps_its_worker_after_the_cell_and_gives_it_to_the_next() -> None:
    async def test() -> None:
        starter = Starter()
        pool = cell_pool(starter)
        async with pool.holding() as first:
            pass
        async with pool.holding() as second, pool.holding() as beside:
            assert first is second is beside  # one worker: the namespace stays
        assert len(starter.started) == 1

    run(test)


def test_a_cell_whose_worker_died_gets_a_new_one_next_time() -> None:
    async def test() -> None:
        starter = Starter()
        pool = cell_pool(starter)
        async with pool.holding() as first:
            await first.stop()  # it dies mid-cell
        async with pool.holding() as second:
            assert second is not first and second.alive
        assert pool.workers == [second]

    run(test)


def test_renewing_stops_the_cell_worker_and_the_next_cell_gets_a_new_one() -> None:
    async def test() -> None:
        starter = Starter()
        pool = cell_pool(starter)
        async with pool.holding() as first:
            pass
        await pool.renew()
        assert not first.alive  # stopped before the next starts: its GPUs pass on at once
        async with pool.holding() as second:
            assert second is not first
        assert not first.alive and pool.workers == [second]

    run(test)


def test_a_cell_start_runs_in_the_context_of_the_cell_it_is_for() -> None:
    async def test() -> None:
        starter = Starter()
        pool = cell_pool(starter)
        WHO.set("alice")  # the cell's "starting a worker" status goes to alice
        async with pool.holding():
            pass
        assert starter.contexts == ["alice"]

    run(test)


class FakeBroker:
    """What a session's pools use of the GPU broker: it starts workers, and has no GPUs."""

    def __init__(self) -> None:
        self.starter = Starter()
        self.holders: list[Holder] = []

    def capacity(self, spec: WorkerSpec) -> None:
        return None

    async def take(self, spec: WorkerSpec, holder: Holder, owner: object) -> FakeWorker:
        self.holders.append(holder)
        status = STARTING.get()  # the broker's `SparePool` says so when it boots one
        if status is not None:
            await status("starting a worker")
        return await self.starter(spec)


def test_a_session_says_when_a_cell_starts_a_worker_and_fresh_or_reset_start_anew() -> None:
    async def test() -> None:
        broker = FakeBroker()
        session = Session("s1", "nb.ipynb", broker)  # type: ignore[arg-type]
        heard: list[str] = []

        async def status(text: str) -> None:
            heard.append(text)

        spec = WorkerSpec()
        async with session.cell_worker(spec, False, status) as first:
            assert session.find(spec) is first
        async with session.cell_worker(spec, False, status) as again:
            assert again is first
        assert heard == ["starting a worker"]  # once: the second cell found it warm
        async with session.cell_worker(spec, True, status) as fresh:
            assert fresh is not first
        await settle()
        assert not first.alive and heard == ["starting a worker"] * 2
        assert [h.kind for h in broker.holders] == ["cell", "cell"]
        await session.reset()
        assert not fresh.alive and session.find(spec) is None and session.workers == []

    run(test)


def test_the_pool_decides_an_eviction_an_idle_worker_stops_a_busy_one_stays() -> None:
    async def test() -> None:
        starter = Starter()
        pool = make(starter, bound=2)
        first = asyncio.create_task(call(pool, "alice"))
        await settle()
        [busy] = starter.started
        assert not pool.idle(busy) and not pool.evict(busy)  # the broker learns it stays
        busy.release.set()
        await first
        assert pool.idle(busy) and pool.evict(busy)
        await settle()
        assert not busy.alive and pool.workers == []
        second = asyncio.create_task(call(pool, "bob"))  # never handed the evicted one
        await settle()
        starter.started[-1].release.set()
        assert await second == starter.started[1].id

    run(test)


# -- the spare ---------------------------------------------------------------------------------


def test_the_spare_boots_at_once_and_a_take_hands_it_over_and_boots_the_next() -> None:
    async def test() -> None:
        starter = Starter()
        pool = FunctionPool(starter, WorkerSpec(), SPARE)  # type: ignore[arg-type]
        await settle()
        [booted] = starter.started
        assert await pool.take() is booted
        await settle()
        assert pool.workers == [starter.started[1]]
        await booted.stop()  # the taker's worker ends: the pool's spare stays
        assert pool.workers == [starter.started[1]]
        await pool.close()
        assert not starter.started[1].alive

    run(test)


def test_taking_a_booting_spare_waits_for_that_boot() -> None:
    async def test() -> None:
        starter = Starter()
        starter.gate.clear()
        pool = FunctionPool(starter, WorkerSpec(), SPARE)  # type: ignore[arg-type]
        taking = asyncio.create_task(pool.take())
        await settle()
        assert len(starter.contexts) == 1  # the boot taken; the next waits for it to boot
        starter.gate.set()
        assert await taking is starter.started[0]
        await settle()
        assert len(starter.contexts) == 2
        assert pool.workers == [starter.started[1]]

    run(test)


def spare(
    monkeypatch: pytest.MonkeyPatch, starter: Starter, enabled: bool = True, spreads: bool = False
) -> SparePool:
    async def start(_: SparePool, spec: WorkerSpec) -> FakeWorker:
        return await starter(spec)

    monkeypatch.setattr(SparePool, "_start", start)
    return SparePool(None, None, enabled, spreads)  # type: ignore[arg-type]


def test_the_runner_spare_goes_to_the_default_spec_and_other_specs_start_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def test() -> None:
        starter = Starter()
        source = spare(monkeypatch, starter)
        await settle()
        [booted] = starter.started
        own = await source.take(WorkerSpec(env={"A": "1"}))
        assert own is not booted and booted.alive
        assert await source.take(WorkerSpec()) is booted
        await settle()
        [next_spare] = [w for w in starter.started if w not in (booted, own)]
        await source.close()  # runner stop
        assert not next_spare.alive
        assert booted.alive  # the taker's: its session stops it

    run(test)


def test_a_kernel_of_the_embedded_runner_naming_the_runners_own_python_gets_the_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Such a kernel names its interpreter in every spec; the spare runs that very interpreter,
    so its first cell must not boot a worker of its own (a cold start paid twice)."""

    async def test() -> None:
        starter = Starter()
        source = spare(monkeypatch, starter)
        await settle()
        [booted] = starter.started
        assert await source.take(WorkerSpec(python=sys.executable)) is booted
        other = await source.take(WorkerSpec(python="/some/other/python"))
        assert other is not booted
        await source.close()

    run(test)


def test_a_dead_spare_gives_the_caller_a_start_of_its_own_and_the_next_spare_boots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def test() -> None:
        starter = Starter()
        source = spare(monkeypatch, starter)
        await settle()
        dead = starter.started[0]
        await dead.stop()
        own = await source.take(WorkerSpec())
        await settle()
        assert own is not dead and own.alive
        [next_spare] = [w for w in starter.started if w not in (dead, own)]
        assert await source.take(WorkerSpec()) is next_spare
        await source.close()

    run(test)


def test_a_spare_that_failed_to_boot_gives_the_caller_a_start_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def test() -> None:
        starter = Starter()
        starter.error = RuntimeError("boot failed")
        source = spare(monkeypatch, starter)
        await settle()
        starter.error = None
        assert await source.take(WorkerSpec()) in starter.started
        await source.close()

    run(test)


def test_without_a_spare_every_worker_starts_on_demand(monkeypatch: pytest.MonkeyPatch) -> None:
    async def test() -> None:
        starter = Starter()
        source = spare(monkeypatch, starter, enabled=False)
        await settle()
        assert starter.started == []
        assert await source.take(WorkerSpec()) is starter.started[0]
        await source.close()

    run(test)


def test_a_cell_hears_starting_a_worker_only_when_it_waits_for_one_to_boot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def test() -> None:
        heard: list[str] = []

        async def status(text: str) -> None:
            heard.append(text)

        STARTING.set(status)  # as a cell's session sets it around its request
        starter = Starter()
        source = spare(monkeypatch, starter)
        await settle()
        starter.gate.clear()  # the next spare's boot waits
        assert await source.take(WorkerSpec()) is starter.started[0]
        await settle()
        assert heard == []  # the booted spare: no wait, no status (nor for the next one's boot)
        taking = asyncio.create_task(source.take(WorkerSpec()))
        await settle()
        assert heard == ["starting a worker"]  # the next spare is still booting
        starter.gate.set()
        await taking
        await source.take(WorkerSpec(env={"A": "1"}))  # a spec of its own always boots
        assert heard == ["starting a worker"] * 2
        await source.close()

    run(test)


def test_a_pool_that_takes_the_spare_owns_it_and_the_next_spare_is_no_pools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ray backend spreads a pool's workers over nodes by the pool each belongs to
    (`START_GROUP`): the spare a pool took is that pool's, its replacement nobody's."""

    async def test() -> None:
        groups: list[str] = []
        starter = Starter()
        source = spare(monkeypatch, starter)
        original = source._start

        async def start(spec: WorkerSpec) -> Any:
            groups.append(START_GROUP.get())
            return await original(spec)

        monkeypatch.setattr(source, "_start", start)
        await settle()
        [booted] = starter.started
        START_GROUP.set("app:f")  # as a pool's start does, in its own task
        assert await source.take(WorkerSpec()) is booted
        assert booted.group == "app:f"
        await settle()
        assert len(starter.started) == 2 and set(groups) == {""}  # the next spare: no pool's
        await source.close()

    run(test)


def test_where_pools_spread_over_nodes_only_a_pools_first_worker_is_the_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Ray the spare sits on whichever node it was placed on before any pool wanted it: a
    map's second worker taking it could land beside the first, so that one starts its own."""

    async def test() -> None:
        starter = Starter()
        source = spare(monkeypatch, starter, spreads=True)
        await settle()
        [booted] = starter.started
        POOL_HAS_OTHERS.set(True)
        second = await source.take(WorkerSpec())
        assert second is not booted and booted.alive
        POOL_HAS_OTHERS.set(False)
        assert await source.take(WorkerSpec()) is booted
        await source.close()

    run(test)
