"""Remote tracebacks of functions pickled by value show their source lines."""

from __future__ import annotations

import linecache
import pickle
import traceback
from typing import Any

import cloudpickle

from nbremote._code_lines import WithLines

CELL = "/tmp/ipykernel_0/cell-7.py"  # a notebook cell: no such file on the worker
SOURCE = """\
def helper(x):
    return 1 / x


def compute(x):
    total = x + 1
    return helper(total - total)
"""


def _cell_function() -> Any:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    linecache.cache[CELL] = (len(SOURCE), None, SOURCE.splitlines(True), CELL)
    exec(compile(SOURCE, CELL, "exec"), namespace)
    return namespace["compute"]


def _remote_traceback(payload: bytes) -> str:
    fn = pickle.loads(payload)
    try:
        fn(1)
    except ZeroDivisionError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("the function did not raise")


def test_a_traceback_shows_the_lines_of_a_function_and_its_helpers() -> None:
    payload = cloudpickle.dumps(WithLines(_cell_function()))
    del linecache.cache[CELL]  # the worker has never seen the cell

    text = _remote_traceback(payload)

    assert f'File "{CELL}", line 7, in compute' in text
    assert "return helper(total - total)" in text
    assert f'File "{CELL}", line 2, in helper' in text
    assert "return 1 / x" in text
    assert "<dynamic-code>" not in text


def test_only_the_function_lines_travel() -> None:
    wrapped = WithLines(_cell_function())
    assert sorted(wrapped.lines[CELL]) == [1, 2, 5, 6, 7]
