"""Values packed as a set (`nbremote.wire.aliases`) arrive sharing what they shared."""

from __future__ import annotations

from typing import Any

import numpy as np

from nbremote._namespace import in_place
from nbremote.wire.aliases import SetLoader, dumps_set
from nbremote.wire.serialize import dumps


def _round_trip(values: dict[str, Any]) -> dict[str, Any]:
    payloads, failed = dumps_set(values)
    assert not failed
    loaded, failed_loading = SetLoader(
        {name: payload.parts for name, payload in payloads.items()}, lambda name: {}[name]
    ).load_all()
    assert not failed_loading
    return loaded


def test_a_value_sharing_nothing_hashes_as_on_its_own() -> None:
    values = {"a": [1, 2], "b": {"k": "v"}, "x": np.arange(5)}
    payloads, _ = dumps_set(values)
    assert all(payloads[name].hash == dumps(name, value).hash for name, value in values.items())


def test_views_of_every_layout_share_memory_after_the_trip() -> None:
    base = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    loaded = _round_trip({"base": base, "rev": base[::-1, 1:3], "col": base[:, 2]})
    loaded["rev"][0, 0] = -1.0  # base[2, 1]
    loaded["col"][0] = -2.0  # base[0, 2]
    assert loaded["base"][2, 1] == -1.0
    assert loaded["base"][0, 2] == -2.0


def test_references_in_a_circle_still_load() -> None:
    a: list[Any] = []
    b = [a]
    a.append(b)
    loaded = _round_trip({"a": a, "b": b})
    assert loaded["a"][0][0] is loaded["a"]  # each keeps its own structure


def test_a_member_that_cannot_be_pickled_is_not_referred_to() -> None:
    gen = (i for i in range(3))
    holder = [1]
    payloads, failed = dumps_set({"gen": gen, "box": [gen], "holder": holder, "both": [holder]})
    assert set(failed) == {"gen", "box"}  # box cannot travel without gen, nor by its name
    loaded, _ = SetLoader(
        {name: payload.parts for name, payload in payloads.items()}, lambda name: {}[name]
    ).load_all()
    assert loaded["both"][0] is loaded["holder"]


class _Custom:
    def __init__(self) -> None:
        self.n = 1

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def test_only_types_that_are_their_contents_are_updated_in_place() -> None:
    old_array, new_array = np.zeros(2), np.ones(2)
    assert in_place(old_array, new_array) is old_array and old_array[0] == 1.0
    assert in_place(np.zeros(2), np.ones(3)) is not None  # another shape: rebound
    custom = _Custom()
    assert in_place(custom, _Custom()) is not custom  # its own pickling: rebound
    assert in_place((1,), (2,)) == (2,)
