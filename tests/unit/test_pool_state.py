"""The warm pool's rules: bounds, reuse order, FIFO waits, failures, deaths, scale-down, close."""

from __future__ import annotations

import pytest
from nbremote_runner.pool_state import (
    CELL,
    CLOSED,
    NO_SPARE,
    SPARE,
    Abort,
    Fail,
    Hand,
    PoolState,
    Start,
    Stop,
    max_workers,
)

from nbremote.wire.http import FunctionScaling


def pool(
    bound: int = 2, min_containers: int = 0, window: float = 60.0, max_inputs: int = 1
) -> PoolState:
    scaling = FunctionScaling(
        min_containers=min_containers, scaledown_window=window, max_inputs=max_inputs
    )
    return PoolState(scaling, bound)


def warm(state: PoolState, *workers: str, now: float = 0.0) -> None:
    """Start ``workers`` for requests, then release them: idle, ``workers[-1]`` used last."""
    for worker in workers:
        [start] = state.acquire(f"warm-{worker}")
        assert isinstance(start, Start)
        assert state.started(start.start, worker, now) == [Hand(worker, f"warm-{worker}")]
    for worker in workers:
        assert state.release(worker, f"warm-{worker}", retire=False, now=now) == []


# -- bounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_containers", "limit", "cpus", "bound"),
    [
        (None, None, 8, 8),  # one per core
        (None, None, 1, 2),  # at least two
        (None, None, None, 2),  # cores unknown
        (3, None, 8, 3),  # as asked
        (3, 1, 8, 1),  # never more than the runner's GPUs hold
        (None, 4, 16, 4),
    ],
)
def test_the_bound(max_containers: int | None, limit: int | None, cpus: int, bound: int) -> None:
    assert max_workers(FunctionScaling(max_containers=max_containers), limit, cpus) == bound


def test_a_request_starts_a_worker_and_gets_it() -> None:
    state = pool()
    assert state.acquire("r1") == [Start(1, "r1")]
    assert state.size == 1
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "r1")]
    assert state.serving("r1") == "w1"


def test_starts_stop_at_the_bound_and_requests_wait_in_order() -> None:
    state = pool(bound=2)
    assert state.acquire("r1") == [Start(1, "r1")]
    assert state.acquire("r2") == [Start(2, "r2")]
    assert state.acquire("r3") == []
    assert state.acquire("r4") == []
    assert state.waiting == ["r1", "r2", "r3", "r4"]
    assert state.started(2, "w2", now=0.0) == [Hand("w2", "r1")]  # the oldest first
    assert state.starts == {1: "r2"}  # r1's start passed to r2, whose own is done
    assert state.release("w2", "r1", retire=False, now=1.0) == [Hand("w2", "r2")]
    assert state.starts == {1: "r3"}
    assert state.release("w2", "r2", retire=False, now=2.0) == [Hand("w2", "r3")]
    assert state.started(1, "w1", now=3.0) == [Hand("w1", "r4")]
    assert state.size == 2


def test_an_idle_worker_is_reused_rather_than_a_new_one_started() -> None:
    state = pool(bound=4)
    warm(state, "w1")
    assert state.acquire("r") == [Hand("w1", "r")]
    assert state.size == 1


def test_the_most_recently_used_idle_worker_goes_first() -> None:
    state = pool(bound=4)
    warm(state, "w1", "w2", "w3")  # released in order: w3 last
    assert state.acquire("a") == [Hand("w3", "a")]
    assert state.acquire("b") == [Hand("w2", "b")]
    state.release("w3", "a", retire=False, now=1.0)
    state.release("w2", "b", retire=False, now=2.0)
    assert state.acquire("c") == [Hand("w2", "c")]  # released last


def test_a_worker_takes_up_to_max_inputs_at_once() -> None:
    state = pool(bound=1, max_inputs=3)
    warm(state, "w1")
    assert [state.acquire(r) for r in ("a", "b", "c", "d")] == [
        [Hand("w1", "a")],
        [Hand("w1", "b")],
        [Hand("w1", "c")],
        [],
    ]
    assert state.release("w1", "b", retire=False, now=1.0) == [Hand("w1", "d")]


def test_a_worker_with_room_is_used_before_a_start() -> None:
    state = pool(bound=2, max_inputs=2)
    assert state.acquire("a") == [Start(1, "a")]
    state.started(1, "w1", now=0.0)
    assert state.acquire("b") == [Hand("w1", "b")]
    assert state.acquire("c") == [Start(2, "c")]


# -- warm workers before new ones ---------------------------------------------------------------


def test_a_request_waiting_on_a_start_takes_the_warm_worker_that_frees_first() -> None:
    """A map of two on a warm pool: the second input runs on the warm worker after the first,
    not on a container still booting; the boot goes on for nobody and joins the pool idle."""
    state = pool(bound=2)
    warm(state, "w1")
    assert state.acquire("a") == [Hand("w1", "a")]
    assert state.acquire("b") == [Start(2, "b")]
    assert state.release("w1", "a", retire=False, now=1.0) == [Hand("w1", "b")]
    assert state.starts == {2: None}
    assert state.started(2, "w2", now=2.0) == []
    assert state.idle("w2")


def test_a_started_worker_serves_the_oldest_waiting_request() -> None:
    state = pool(bound=2)
    warm(state, "w1")
    state.acquire("a")
    state.acquire("b")  # start 2
    state.acquire("c")  # at the bound: waits
    assert state.release("w1", "a", retire=False, now=1.0) == [Hand("w1", "b")]
    assert state.starts == {2: "c"}  # b's start passed on to c
    assert state.started(2, "w2", now=2.0) == [Hand("w2", "c")]


def test_a_warm_start_with_nobody_waiting_goes_on_and_its_owner_gets_the_first_free() -> None:
    state = pool(bound=3, max_inputs=2)
    warm(state, "w1")
    assert state.acquire("a") == [Hand("w1", "a")]
    assert state.acquire("b") == [Hand("w1", "b")]  # room on a live worker beats a start
    assert state.acquire("c") == [Start(2, "c")]
    assert state.release("w1", "b", retire=False, now=1.0) == [Hand("w1", "c")]
    assert state.starts == {2: None}


# -- failed starts, deaths, retirement ---------------------------------------------------------


def test_a_failed_start_fails_its_request_and_the_next_one_tries_its_own() -> None:
    state = pool(bound=1)
    state.acquire("r1")
    state.acquire("r2")
    error = RuntimeError("no such image")
    assert state.start_failed(1, error) == [Fail("r1", "no such image", error), Start(2, "r2")]
    assert state.waiting == ["r2"]
    assert state.size == 1


def test_a_failed_start_with_nobody_waiting_frees_its_room() -> None:
    state = pool(bound=1)
    state.acquire("r1")
    error = RuntimeError("boom")
    assert state.start_failed(1, error) == [Fail("r1", "boom", error)]
    assert state.size == 0


def test_a_worker_retired_after_its_run_stops_and_makes_room() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    state.acquire("r1")
    state.acquire("r2")
    assert state.release("w1", "r1", retire=True, now=1.0) == [Stop("w1"), Start(2, "r2")]
    assert "w1" not in state.workers


def test_a_dead_worker_is_replaced_for_a_waiting_request() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    state.acquire("r1")
    state.acquire("r2")
    assert state.died("w1") == [Start(2, "r2")]
    assert state.release("w1", "r1", retire=True, now=1.0) == []  # its run ends after: ignored
    assert state.started(2, "w2", now=2.0) == [Hand("w2", "r2")]


def test_an_idle_worker_that_dies_is_forgotten() -> None:
    state = pool()
    warm(state, "w1")
    assert state.died("w1") == []
    assert state.died("w1") == []  # reported twice (stopped, then gone): once is enough
    assert state.acquire("r") == [Start(2, "r")]


# -- giving up ---------------------------------------------------------------------------------


def test_a_waiting_request_that_gives_up_leaves_the_queue() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    state.acquire("r1")
    state.acquire("r2")
    state.acquire("r3")
    assert state.withdraw("r2") == []
    assert state.release("w1", "r1", retire=False, now=1.0) == [Hand("w1", "r3")]


def test_a_request_that_gives_up_while_its_worker_starts_aborts_the_start() -> None:
    state = pool(bound=1)
    state.acquire("r1")
    assert state.withdraw("r1") == [Abort(1)]
    assert state.size == 0


def test_a_request_that_gives_up_passes_its_start_to_the_next_waiting() -> None:
    state = pool(bound=1)
    state.acquire("r1")
    state.acquire("r2")
    assert state.withdraw("r1") == []
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "r2")]


def test_a_request_that_gives_up_after_being_handed_a_worker_frees_it() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    state.acquire("r1")
    state.acquire("r2")
    assert state.withdraw("r1") == [Hand("w1", "r2")]


# -- warm workers and scale-down ---------------------------------------------------------------


def test_opening_starts_min_containers_within_the_bound() -> None:
    assert pool(bound=4, min_containers=2).open() == [Start(1, None), Start(2, None)]
    assert pool(bound=1, min_containers=3).open() == [Start(1, None)]
    assert pool().open() == []


def test_a_warm_start_joins_the_pool_idle_or_serves_whoever_waits() -> None:
    state = pool(bound=1, min_containers=1)
    state.open()
    assert state.acquire("r") == []  # the bound is taken by the warm start
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "r")]


def test_a_failed_warm_start_fails_nobody_and_is_not_retried() -> None:
    state = pool(bound=2, min_containers=1)
    state.open()
    assert state.start_failed(1, RuntimeError("boom")) == []
    assert state.size == 0


def test_idle_workers_stop_after_the_window_least_recently_used_first() -> None:
    state = pool(bound=4, window=10.0)
    warm(state, "w1", "w2", now=0.0)
    assert state.acquire("r") == [Hand("w2", "r")]
    state.release("w2", "r", retire=False, now=5.0)
    assert state.tick(now=10.0) == []  # not past the window yet
    assert state.tick(now=10.5) == [Stop("w1")]
    assert state.tick(now=15.5) == [Stop("w2")]
    assert state.workers == {}


def test_busy_workers_never_scale_down() -> None:
    state = pool(window=1.0)
    warm(state, "w1")
    state.acquire("r")
    assert state.tick(now=100.0) == []


def test_min_containers_are_kept_counting_busy_ones() -> None:
    state = pool(bound=4, min_containers=2, window=1.0)
    warm(state, "w1", "w2", "w3")
    assert state.tick(now=100.0) == [Stop("w1")]  # two stay warm: the most recently used
    state.acquire("r")  # w3 is busy now: it counts toward the two
    assert state.tick(now=200.0) == []
    state.release("w3", "r", retire=False, now=200.0)
    assert state.tick(now=300.0) == []


def test_a_worker_used_again_restarts_its_window() -> None:
    state = pool(window=10.0)
    warm(state, "w1", now=0.0)
    state.acquire("r")
    state.release("w1", "r", retire=False, now=20.0)
    assert state.tick(now=25.0) == []
    assert state.tick(now=30.5) == [Stop("w1")]


# -- eviction (the GPU broker wants the devices) -------------------------------------------------


def test_an_idle_worker_is_evicted_forgotten_and_replaced_for_the_next_request() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    assert state.idle("w1")
    assert state.evict("w1") == [Stop("w1")]
    assert not state.idle("w1") and state.workers == {}
    assert state.died("w1") == []  # its end, reported after: nothing more
    assert state.acquire("r") == [Start(2, "r")]


def test_a_worker_handed_to_a_request_is_not_idle_and_is_not_evicted() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    assert state.acquire("r") == [Hand("w1", "r")]  # handed, its run not begun yet
    assert not state.idle("w1")
    assert state.evict("w1") == []
    assert state.release("w1", "r", retire=False, now=1.0) == []
    assert state.idle("w1")


def test_evicting_a_worker_the_pool_does_not_have_does_nothing() -> None:
    state = pool()
    assert not state.idle("w9")
    assert state.evict("w9") == []


# -- renewing (a cell's --fresh) ---------------------------------------------------------------


def test_renewing_stops_every_live_worker_and_the_next_request_starts_one() -> None:
    state = pool(bound=2)
    warm(state, "w1", "w2")
    state.acquire("busy")
    assert state.renew() == [Stop("w1"), Stop("w2")]
    assert state.release("w2", "busy", retire=False, now=1.0) == []  # its run ends: ignored
    assert state.acquire("r") == [Start(3, "r")]


def test_renewing_keeps_a_start_in_progress_its_worker_is_new() -> None:
    state = pool(bound=1)
    state.acquire("r1")
    assert state.renew() == []
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "r1")]


def test_renewing_a_full_pool_lets_a_waiting_request_start_its_own() -> None:
    state = pool(bound=1)
    warm(state, "w1")
    state.acquire("busy")
    state.acquire("waiting")
    assert state.renew() == [Stop("w1"), Start(2, "waiting")]


# -- the cell policy ---------------------------------------------------------------------------


def cell() -> PoolState:
    return PoolState(CELL, max_workers(CELL, None, cpus=8))


def test_a_cell_pool_has_one_worker_that_every_request_shares() -> None:
    state = cell()
    assert state.acquire("exec") == [Start(1, "exec")]
    assert state.acquire("pull") == []  # waits for that start, not one of its own
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "exec"), Hand("w1", "pull")]
    assert state.acquire("interrupt") == [Hand("w1", "interrupt")]  # beside the running cell


def test_a_cell_pool_keeps_its_worker_however_long_it_idles() -> None:
    state = cell()
    assert cell().open() == []  # none kept warm before the first cell
    warm(state, "w1")
    assert state.tick(now=1e12) == []
    assert state.acquire("r") == [Hand("w1", "r")]


def test_a_cell_pool_whose_worker_died_starts_a_new_one_for_the_next_cell() -> None:
    state = cell()
    warm(state, "w1")
    state.acquire("running")
    assert state.died("w1") == []
    assert state.release("w1", "running", retire=True, now=1.0) == []
    assert state.acquire("next") == [Start(2, "next")]


def test_a_cell_pool_with_gpus_is_bounded_by_one_even_if_more_fit() -> None:
    assert max_workers(CELL, limit=4, cpus=8) == 1


# -- the spare policy --------------------------------------------------------------------------


def spare() -> PoolState:
    state = PoolState(SPARE, max_workers(SPARE, None, cpus=8))
    assert state.open() == [Start(1, None)]  # booted at once, for no request
    return state


def test_taking_the_spare_hands_it_over_for_good_and_starts_the_next() -> None:
    state = spare()
    assert state.started(1, "w1", now=0.0) == []
    assert state.take("cell") == [Hand("w1", "cell"), Start(2, None)]
    assert not state.idle("w1")  # the taker's now: never evicted, stopped or handed again
    assert state.evict("w1") == []
    assert state.died("w1") == []
    assert state.started(2, "w2", now=1.0) == []
    assert state.idle("w2")


def test_taking_a_booting_spare_gives_its_boot_and_starts_the_next_once_it_booted() -> None:
    """Not beside it: on a small machine a second boot would slow the one the taker waits for
    (a fresh runner's first cell)."""
    state = spare()
    assert state.take("cell") == []
    assert state.started(1, "w1", now=0.0) == [Hand("w1", "cell"), Start(2, None)]
    assert state.started(2, "w2", now=0.0) == []
    assert (state.idle("w1"), state.idle("w2")) == (False, True)


def test_taking_when_no_spare_is_left_fails_and_starts_the_next() -> None:
    state = spare()
    state.started(1, "w1", now=0.0)
    assert state.died("w1") == []  # not replaced until the next take
    assert state.take("cell") == [Fail("cell", NO_SPARE), Start(2, None)]
    assert state.take("other") == []  # takes start 2; the next boots once it has booted
    assert state.started(2, "w2", now=0.0) == [Hand("w2", "other"), Start(3, None)]


def test_a_taken_boot_that_fails_fails_its_taker_and_a_failed_spare_is_not_retried() -> None:
    state = spare()
    error = RuntimeError("no python")
    assert state.take("cell") == []
    assert state.start_failed(1, error) == [Fail("cell", "no python", error)]
    assert state.size == 0
    assert state.take("next") == [Fail("next", NO_SPARE), Start(2, None)]  # tried again now


def test_a_taker_that_gives_up_aborts_the_boot_it_took_and_leaves_the_next_spare() -> None:
    state = spare()
    state.take("cell")
    assert state.withdraw("cell") == [Abort(1), Start(2, None)]
    assert state.started(2, "w2", now=0.0) == []
    assert state.take("next") == [Hand("w2", "next"), Start(3, None)]


def test_the_spare_is_never_scaled_down() -> None:
    state = spare()
    state.started(1, "w1", now=0.0)
    assert state.tick(now=1e12) == []


def test_closing_the_spare_stops_it_and_fails_a_taker_still_waiting_for_its_boot() -> None:
    state = spare()
    state.take("cell")  # takes start 1
    assert state.close() == [Fail("cell", CLOSED)]
    assert state.started(1, "w1", now=0.0) == [Stop("w1")]
    assert state.take("late") == [Fail("late", CLOSED)]


def test_closing_stops_an_idle_spare() -> None:
    state = spare()
    state.started(1, "w1", now=0.0)
    assert state.close() == [Stop("w1")]


# -- closing -----------------------------------------------------------------------------------


def test_closing_stops_every_worker_and_fails_whoever_waits() -> None:
    state = pool(bound=2)
    warm(state, "w1")
    state.acquire("busy")
    state.acquire("starting")
    state.acquire("waiting")
    assert state.close() == [Fail("starting", CLOSED), Fail("waiting", CLOSED), Stop("w1")]
    assert state.acquire("late") == [Fail("late", CLOSED)]
    assert state.started(2, "w2", now=0.0) == [Stop("w2")]  # a start that ends after
    assert state.release("w1", "busy", retire=False, now=0.0) == []
    assert state.tick(now=1e9) == []
