"""Serialization of single values: the pickler chain, zero-copy buffers, hashes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from nbremote.errors import SerializationError
from nbremote.wire.serialize import dumps, loads


def roundtrip(value: object) -> object:
    payload = dumps("v", value)
    return loads("v", [bytearray(part) for part in payload.parts])


def test_plain_values_use_plain_pickle() -> None:
    assert roundtrip({"a": [1, 2.5, "x"], "b": (None, True)}) == {
        "a": [1, 2.5, "x"],
        "b": (None, True),
    }


def test_lambdas_and_main_defined_functions_fall_back_to_cloudpickle() -> None:
    square = roundtrip(lambda x: x * x)
    assert callable(square) and square(4) == 16  # type: ignore[operator]


def test_arrays_travel_out_of_band() -> None:
    array = np.arange(1_000_000, dtype=np.float64)
    payload = dumps("array", array)
    assert len(payload.parts) == 2
    assert payload.parts[0].nbytes < 1000  # the data is not inside the pickle stream
    assert payload.parts[1].nbytes == array.nbytes
    back = roundtrip(array)
    np.testing.assert_array_equal(back, array)  # type: ignore[arg-type]


def test_hash_follows_content() -> None:
    array = np.zeros(1000)
    first = dumps("a", array).hash
    assert dumps("a", np.zeros(1000)).hash == first
    array[10] = 1
    assert dumps("a", array).hash != first


def test_unpicklable_value_names_the_variable_and_why() -> None:
    with pytest.raises(SerializationError) as caught:
        dumps("rows", (row for row in range(3)))
    assert caught.value.name == "rows"
    assert "generator" in caught.value.reason
    assert "(pickle" in caught.value.reason and "dill" in caught.value.reason


def test_unloadable_stream_names_the_value_and_suggests_a_fix() -> None:
    with pytest.raises(SerializationError, match="same package"):
        loads(
            "model",
            [
                b"\x80\x05\x95\x12\x00\x00\x00\x00\x00\x00\x00\x8c\x0bno_such_mod\x94\x8c\x01X\x94\x93\x94."
            ],
        )
