"""The GPU allocator: matching, counts, fallbacks, FIFO fairness, eviction, errors at once."""

from __future__ import annotations

import itertools

import pytest
from nbremote_runner.gpus.alloc import Action, Allocator, Evict, Grant, Queued, Reject
from nbremote_runner.gpus.discovery import Device

from nbremote.gpu import parse

GIB = 2**30
A100_80 = "NVIDIA A100-SXM4-80GB"
A100_40 = "NVIDIA A100-PCIE-40GB"
H100 = "NVIDIA H100 80GB HBM3"


def box(*names: str) -> Allocator:
    return Allocator([Device(index, name) for index, name in enumerate(names)])


def ask(alloc: Allocator, lease: str, spec: str, group: str = "") -> list[Action]:
    request = parse(spec)
    assert request is not None
    return alloc.request(lease, request, group or lease)


def test_a_free_device_is_granted_at_once() -> None:
    alloc = box(A100_80)
    assert ask(alloc, "a", "A100") == [Grant("a", (0,))]
    assert alloc.devices_of("a") == (0,)


@pytest.mark.parametrize(
    ("spec", "granted"),
    [
        ("A100", (0,)),  # either memory variant; the lowest index first
        ("a100-80gb", (1,)),  # case-insensitive; the variant by the name's 80GB
        ("A100-40GB", (0,)),
        ("H100", (2,)),
        ("any", (0,)),
        ("A100:2", (0, 1)),
        ("H100|A100", (2,)),  # fallback order: the first choice that fits
        ("B200|A100-80GB", (1,)),  # a choice the runner lacks is skipped
        ("A100-80GB:2|H100", (2,)),  # a choice asking for more than there are is skipped
    ],
)
def test_matching_and_fallbacks(spec: str, granted: tuple[int, ...]) -> None:
    alloc = box(A100_40, A100_80, H100)
    assert ask(alloc, "a", spec) == [Grant("a", granted)]


def test_memory_variant_from_total_memory_when_the_name_has_none() -> None:
    alloc = Allocator(
        [Device(0, "NVIDIA H100 PCIe", 81559 * 2**20), Device(1, "NVIDIA A100", 40 * GIB)]
    )
    assert ask(alloc, "a", "A100-80GB|H100-80GB") == [Grant("a", (0,))]
    assert ask(alloc, "b", "A100-40GB") == [Grant("b", (1,))]


def test_a10_never_matches_an_a100_but_a10g_matches_an_a10() -> None:
    alloc = box(A100_80, "NVIDIA A10")
    assert ask(alloc, "a", "A10G") == [Grant("a", (1,))]
    assert ask(alloc, "b", "A10") == [Queued("b", 1)]


def test_unknown_type_is_rejected_at_once_listing_what_the_runner_has() -> None:
    alloc = box(A100_80, A100_80, H100)
    [reject] = ask(alloc, "a", "B200")
    assert isinstance(reject, Reject)
    assert "no GPU on this runner matches B200" in reject.reason
    assert f"2\N{MULTIPLICATION SIGN} {A100_80}, 1\N{MULTIPLICATION SIGN} {H100}" in reject.reason
    assert not alloc.queue


def test_count_beyond_the_runner_is_rejected_at_once() -> None:
    alloc = box(A100_80, A100_80, H100)
    [reject] = ask(alloc, "a", "A100:4|H100:2")
    assert isinstance(reject, Reject)
    assert "A100:4 (it has 2); H100:2 (it has 1)" in reject.reason
    assert not alloc.queue


def test_a_runner_without_gpus_rejects_with_the_reason() -> None:
    alloc = Allocator([], unavailable="NVML failed: driver not loaded")
    [reject] = ask(alloc, "a", "any")
    assert isinstance(reject, Reject)
    assert "no GPUs (NVML failed: driver not loaded)" in reject.reason


def test_busy_devices_queue_requests_in_order_and_release_serves_the_head() -> None:
    alloc = box(A100_80)
    ask(alloc, "a", "A100")
    assert ask(alloc, "b", "A100") == [Queued("b", 1)]
    assert ask(alloc, "c", "any") == [Queued("c", 2)]
    assert alloc.release("a") == [Grant("b", (0,)), Queued("c", 1)]
    assert alloc.release("b") == [Grant("c", (0,))]


def test_a_big_request_at_the_head_is_not_starved_by_small_ones_behind() -> None:
    alloc = box(A100_80, A100_80)
    ask(alloc, "small1", "A100")
    assert ask(alloc, "big", "A100:2") == [Queued("big", 1)]
    # The free A100 is reserved for the big request: a small one behind it waits.
    assert ask(alloc, "small2", "A100") == [Queued("small2", 2)]
    assert alloc.release("small1") == [Grant("big", (0, 1)), Queued("small2", 1)]


def test_later_requests_backfill_devices_no_earlier_request_wants() -> None:
    alloc = box(A100_80, H100)
    ask(alloc, "a", "A100")
    assert ask(alloc, "b", "A100") == [Queued("b", 1)]
    assert ask(alloc, "c", "H100") == [Grant("c", (1,))]
    assert ask(alloc, "d", "any") == [Queued("d", 2)]  # H100 taken, A100 reserved for b


def test_withdrawing_a_waiting_request_moves_those_behind_up() -> None:
    alloc = box(A100_80)
    ask(alloc, "a", "A100")
    ask(alloc, "b", "A100")
    ask(alloc, "c", "A100")
    assert alloc.release("b") == [Queued("c", 1)]
    assert alloc.release("a") == [Grant("c", (0,))]


def test_an_idle_holder_is_evicted_for_a_waiting_request() -> None:
    alloc = box(A100_80)
    ask(alloc, "fn", "A100")
    assert alloc.idle("fn", True) == []  # nobody waits: it stays
    assert ask(alloc, "cell", "A100") == [Evict("fn"), Queued("cell", 1)]
    assert alloc.release("fn") == [Grant("cell", (0,))]


def test_an_idle_cell_worker_gives_way_only_to_its_own_notebook_and_last() -> None:
    alloc = box(A100_80, A100_80)
    a100, both = parse("A100"), parse("A100:2")
    assert a100 is not None and both is not None
    alloc.request("cell", a100, "nb1:a100", session="nb1", private=True)
    alloc.request("fn", a100, "nb1:fn", session="nb1")
    alloc.idle("cell", True)  # idle longer than the function worker
    alloc.idle("fn", True)
    # Another notebook's request may stop the function worker, never the cell worker.
    assert alloc.request("other", a100, "nb2:a100", session="nb2") == [
        Evict("fn"),
        Queued("other", 1),
    ]
    alloc.release("other")
    # The notebook's own request counts the GPU being freed, and stops its cell worker for the rest.
    assert alloc.request("big", both, "nb1:both", session="nb1") == [
        Evict("cell", "big"),
        Queued("big", 1),
    ]
    assert alloc.release("fn") == []
    assert alloc.release("cell") == [Grant("big", (0, 1))]


def test_a_waiting_request_evicts_a_holder_as_soon_as_it_goes_idle() -> None:
    alloc = box(A100_80)
    ask(alloc, "fn", "A100")
    assert ask(alloc, "cell", "A100") == [Queued("cell", 1)]
    assert alloc.idle("fn", True) == [Evict("fn")]
    assert alloc.idle("fn", True) == []  # asked once only


def test_busy_holders_are_never_evicted_and_a_holder_that_turns_busy_is_spared() -> None:
    alloc = box(A100_80)
    ask(alloc, "fn", "A100")
    alloc.idle("fn", True)
    alloc.idle("fn", False)
    assert ask(alloc, "cell", "A100") == [Queued("cell", 1)]
    assert alloc.idle("fn", True) == [Evict("fn")]
    assert alloc.idle("fn", False) == []  # it turned busy before it stopped: kept
    assert alloc.idle("fn", True) == [Evict("fn")]  # and asked again when idle again


def test_eviction_takes_the_holder_idle_longest_and_only_as_many_as_needed() -> None:
    alloc = box(A100_80, A100_80, A100_80)
    for lease in ("f1", "f2", "f3"):
        ask(alloc, lease, "A100")
    for lease in ("f2", "f3", "f1"):
        alloc.idle(lease, True)
    assert ask(alloc, "big", "A100:2") == [Evict("f2"), Evict("f3"), Queued("big", 1)]
    assert alloc.release("f2") == []
    assert alloc.release("f3") == [Grant("big", (1, 2))]


def test_no_eviction_that_would_not_be_enough() -> None:
    alloc = box(A100_80, A100_80)
    ask(alloc, "busy", "A100")
    ask(alloc, "idle", "A100")
    alloc.idle("idle", True)
    assert ask(alloc, "big", "A100:2") == [Queued("big", 1)]
    assert alloc.idle("busy", True) == [Evict("idle"), Evict("busy")]


def test_no_eviction_within_a_group() -> None:
    alloc = box(A100_80)
    ask(alloc, "w1", "A100", group="pool")
    alloc.idle("w1", True)
    assert ask(alloc, "w2", "A100", group="pool") == [Queued("w2", 1)]
    assert ask(alloc, "other", "A100") == [Queued("other", 2)]  # reserved for w2, ahead of it


def test_a_later_request_never_evicts_what_an_earlier_one_waits_for() -> None:
    alloc = box(A100_80, H100)
    ask(alloc, "a100-holder", "A100")
    ask(alloc, "h100-holder", "H100")
    assert ask(alloc, "head", "A100", group="g") == [Queued("head", 1)]
    alloc.idle("a100-holder", True)  # evicted for the head
    alloc.idle("h100-holder", True)
    # Behind it, "any" may only evict the H100 (the A100 is the head's).
    assert ask(alloc, "tail", "any") == [Evict("h100-holder"), Queued("tail", 2)]


def test_fallback_evicts_for_the_first_choice_that_eviction_can_satisfy() -> None:
    alloc = box(A100_80, H100)
    ask(alloc, "busy", "H100")
    ask(alloc, "idle", "A100")
    alloc.idle("idle", True)
    assert ask(alloc, "req", "H100|A100") == [Evict("idle"), Queued("req", 1)]
    assert alloc.release("idle") == [Grant("req", (0,))]


def test_capacity_counts_workers_that_fit_an_empty_runner() -> None:
    alloc = box(A100_80, A100_80, A100_40, H100)
    request = parse("A100-80GB:2|A100")
    assert request is not None and alloc.capacity(request) == 3
    assert alloc.capacity(parse("B200")) == 0  # type: ignore[arg-type]


class Harness:
    """Applies an allocator's actions as a driver would, checking that no device is granted
    while someone holds it."""

    def __init__(self, alloc: Allocator) -> None:
        self.alloc = alloc
        self.holders: dict[int, str] = {}
        self.granted: set[str] = set()

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Grant):
                for index in action.devices:
                    assert index not in self.holders, "device granted twice"
                    self.holders[index] = action.lease
                self.granted.add(action.lease)
            elif isinstance(action, Evict):
                self.release(action.lease)

    def release(self, lease: str) -> None:
        for index in [i for i, holder in self.holders.items() if holder == lease]:
            del self.holders[index]
        self.apply(self.alloc.release(lease))


def test_event_sequences_keep_the_invariants() -> None:
    """Many orders of requests and idles: no device held twice, and once every holder has gone,
    every request has been served and nothing waits."""
    specs = ["A100", "A100:2", "H100|A100", "any", "A100-80GB"]
    for order in itertools.islice(itertools.permutations(range(5)), 60):
        harness = Harness(box(A100_80, A100_40, H100))
        for step in order:
            harness.apply(ask(harness.alloc, f"r{step}", specs[step]))
            if step % 2:
                harness.apply(harness.alloc.idle(f"r{step}", True))
        while harness.holders:
            harness.release(next(iter(harness.holders.values())))
        assert not harness.alloc.queue
        assert harness.granted == {f"r{i}" for i in range(5)}
