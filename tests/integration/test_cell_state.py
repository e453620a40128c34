"""Whatever a ``%%remote`` cell changed, by any means, is what both sides hold afterwards.

A real IPython shell against a real runner: a change by method call, through a view or through
another name, and a name bound where the cell's analysis cannot see, all reach the notebook as
they would locally, and the next cell sees them on the worker too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from nbremote.errors import RemoteError


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def printed(shell: InteractiveShell, cell: str) -> str:
    with capture_output() as captured:
        remote(shell, cell)
    return captured.stdout


# -- mutation by method call ---------------------------------------------------------------------


def test_a_list_appended_to_comes_back_and_the_next_cell_sees_it(shell: InteractiveShell) -> None:
    shell.user_ns["xs"] = [1, 2, 3]
    remote(shell, "xs.append(4)")
    assert shell.user_ns["xs"] == [1, 2, 3, 4]
    assert printed(shell, "print(xs)") == "[1, 2, 3, 4]\n"


def test_a_frame_changed_in_place_comes_back(shell: InteractiveShell) -> None:
    shell.user_ns["df"] = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    remote(shell, "df.insert(0, 'c', [5, 6])")
    assert list(shell.user_ns["df"].columns) == ["c", "a", "b"]
    remote(shell, "df.drop(columns=['a'], inplace=True)")
    assert list(shell.user_ns["df"].columns) == ["c", "b"]
    assert printed(shell, "print(list(df.columns))") == "['c', 'b']\n"


def test_a_generators_state_comes_back(shell: InteractiveShell) -> None:
    shell.user_ns["rng"] = np.random.default_rng(7)
    expected = np.random.default_rng(7)
    remote(shell, "first = rng.random()")
    assert shell.user_ns["first"] == expected.random()
    assert shell.user_ns["rng"].random() == expected.random()  # the next draw, not the first


def test_an_iterators_position_comes_back(shell: InteractiveShell) -> None:
    shell.user_ns["it"] = iter([1, 2, 3])
    remote(shell, "first = next(it)")
    assert shell.user_ns["first"] == 1
    assert next(shell.user_ns["it"]) == 2


# -- in place in the notebook --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "change", "expected"),
    [
        ([1, 2, 3], "x.append(4)", [1, 2, 3, 4]),
        ({"a": 1}, "x.update(b=2)", {"a": 1, "b": 2}),
        ({1, 2}, "x.discard(1)", {2}),
        (bytearray(b"ab"), "x.extend(b'c')", bytearray(b"abc")),
    ],
    ids=["list", "dict", "set", "bytearray"],
)
def test_other_names_of_a_changed_object_see_the_change(
    shell: InteractiveShell, value: Any, change: str, expected: Any
) -> None:
    shell.user_ns.update(x=value, y=value)
    remote(shell, change)  # reads x only
    assert shell.user_ns["y"] is shell.user_ns["x"]
    assert shell.user_ns["y"] == expected


def test_other_names_of_a_changed_array_see_the_change(shell: InteractiveShell) -> None:
    shell.user_ns["x"] = np.zeros(4)
    shell.user_ns["v"] = shell.user_ns["x"][1:]  # a view: not sent, only shares x's memory
    remote(shell, "x += 1")
    np.testing.assert_array_equal(shell.user_ns["v"], [1.0, 1.0, 1.0])


def test_other_names_of_a_changed_plain_object_see_the_change(shell: InteractiveShell) -> None:
    shell.run_cell("class Box:\n    def __init__(self): self.n = 1\nbox = Box()\nalias = box")
    remote(shell, "box.n = 2\nbox.m = 3")
    assert shell.user_ns["alias"] is shell.user_ns["box"]
    assert (shell.user_ns["alias"].n, shell.user_ns["alias"].m) == (2, 3)


def test_a_name_rebound_remotely_leaves_its_other_names_alone(shell: InteractiveShell) -> None:
    # Rebinding is not a change in place: locally, ys keeps the old list and f's old alias the
    # old function.
    shell.run_cell("xs = [1, 2, 3]\nys = xs\ndef f(): return 1\ng = f")
    remote(shell, "xs = [9] + xs\ndef f(): return 2")
    assert shell.user_ns["ys"] == [1, 2, 3] and shell.user_ns["xs"] == [9, 1, 2, 3]
    assert (shell.user_ns["f"](), shell.user_ns["g"]()) == (2, 1)


def test_a_class_redefined_remotely_is_the_new_class_here(shell: InteractiveShell) -> None:
    shell.run_cell("class Bad:\n    pass")
    remote(shell, "class Bad:\n    def hello(self): return 'new'")
    assert shell.user_ns["Bad"]().hello() == "new"


# -- aliases and views across the wire ----------------------------------------------------------


def test_a_view_made_remotely_writes_into_the_notebooks_array(shell: InteractiveShell) -> None:
    x = shell.user_ns["x"] = np.zeros(3)
    remote(shell, "v = x[:2]\nv[0] = 99")
    assert shell.user_ns["x"] is x
    assert x[0] == 99
    assert np.shares_memory(shell.user_ns["v"], x)
    shell.user_ns["v"][1] = 7  # and it stays a view here
    assert x[1] == 7


def test_a_view_sent_to_the_worker_writes_into_its_array(shell: InteractiveShell) -> None:
    x = shell.user_ns["x"] = np.zeros(4)
    shell.user_ns["v"] = x[::2]
    assert printed(shell, "v[1] = 5\nprint(x.tolist())") == "[0.0, 0.0, 5.0, 0.0]\n"
    assert x[2] == 5  # came back, through the notebook's own view too


def test_shared_references_stay_shared_on_both_sides(shell: InteractiveShell) -> None:
    shell.run_cell("a = [1]\nb = {'k': a}")
    out = printed(shell, "a.append(2)\nprint(b['k'] is a, b)")
    assert out == "True {'k': [1, 2]}\n"
    assert shell.user_ns["b"]["k"] is shell.user_ns["a"]
    assert shell.user_ns["b"] == {"k": [1, 2]}


def test_a_new_name_for_an_input_is_the_same_object_here(shell: InteractiveShell) -> None:
    xs = shell.user_ns["xs"] = [1]
    remote(shell, "ys = xs")
    assert shell.user_ns["ys"] is xs


def test_equal_values_stay_distinct_objects_on_the_worker(shell: InteractiveShell) -> None:
    shell.user_ns.update(p=[1], q=[1])
    remote(shell, "same = p is q")
    remote(shell, "p.append(2)")  # both held by hash now: still two lists
    assert shell.user_ns["q"] == [1]
    assert printed(shell, "print(p, q)") == "[1, 2] [1]\n"


# -- names bound where the analysis cannot see ---------------------------------------------------


def test_a_star_import_binds_the_modules_names(shell: InteractiveShell) -> None:
    remote(shell, "from math import *")
    assert shell.user_ns["sqrt"](16) == 4.0
    assert shell.user_ns["pi"] > 3.14


def test_a_star_import_binds_the_modules_own_objects_quietly(shell: InteractiveShell) -> None:
    # sympy's RR cannot be pickled back: as the module's attribute it comes as an import.
    import sympy

    with capture_output() as captured:
        remote(shell, "from sympy import *\nx = Symbol('x')")
    assert shell.user_ns["RR"] is sympy.RR and shell.user_ns["sin"] is sympy.sin
    assert shell.user_ns["x"] == sympy.Symbol("x")
    assert captured.stderr == ""


def test_names_bound_by_globals_and_exec_come_back(shell: InteractiveShell) -> None:
    out, history = shell.user_ns["Out"], shell.user_ns.get("_i")
    remote(shell, "globals()['z'] = 1\nexec('w = 2')")
    assert (shell.user_ns["z"], shell.user_ns["w"]) == (1, 2)
    assert shell.user_ns["Out"] is out  # the shell's own names are its own
    assert shell.user_ns.get("_i") == history


def test_a_name_deleted_by_globals_is_deleted_here(shell: InteractiveShell) -> None:
    shell.user_ns["gone"] = 1
    remote(shell, "globals().pop('gone')", line="--in gone")
    assert "gone" not in shell.user_ns


def test_out_still_brings_back_exactly_its_names(shell: InteractiveShell) -> None:
    shell.user_ns["xs"] = [1]
    remote(shell, "globals()['z'] = 1\nxs.append(2)\nk = 3", line="--out k")
    assert shell.user_ns["k"] == 3
    assert "z" not in shell.user_ns
    assert shell.user_ns["xs"] == [1]


# -- what must not change ------------------------------------------------------------------------


def test_a_failed_cell_changes_nothing_here(shell: InteractiveShell) -> None:
    shell.user_ns["xs"] = [1]
    with pytest.raises(RemoteError):
        remote(shell, "xs.append(2)\nglobals()['z'] = 1\n1 / 0")
    assert shell.user_ns["xs"] == [1]
    assert "z" not in shell.user_ns
    assert printed(shell, "print(xs)") == "[1]\n"  # the worker takes the notebook's copy again


def test_the_shell_travels_as_each_sides_own(shell: InteractiveShell) -> None:
    # `ip = get_ipython()` (to register a formatter, say) cannot be pickled: each side binds
    # its own shell, quietly, whichever side ran it.
    with capture_output() as captured:
        remote(shell, "ip = get_ipython()")
    assert shell.user_ns["ip"] is shell and captured.stderr == ""
    assert printed(shell, "print(ip is get_ipython())") == "True\n"
