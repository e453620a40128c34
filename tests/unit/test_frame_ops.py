"""The stdlib frame table (`nbremote.wire.ops`) agrees with the runner's pydantic models, and
its check refuses a frame missing a field, or with one of the wrong type, naming the field."""

from __future__ import annotations

import ast
import json
import types
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from nbremote.wire import frames, op_checks
from nbremote.wire.op_checks import TABLE, Rule, problem
from nbremote.wire.ops import Op

PYDANTIC = {
    "exec": frames.ExecFrame,
    "pull": frames.PullFrame,
    "call": frames.CallFrame,
    "spawn": frames.SpawnFrame,
    "get": frames.GetFrame,
    "lease": frames.LeaseFrame,
    "promote": frames.PromoteFrame,
    "blobs": frames.BlobsFrame,
    "input_reply": frames.InputReplyFrame,
    "interrupt": frames.SignalFrame,
    "cancel": frames.SignalFrame,
    "dict": frames.DictFrame,
    "queue": frames.QueueFrame,
    "volume": frames.VolumeFrame,
}


def _normal(rules: tuple[Rule, ...]) -> dict[str, Any]:
    """Rules by name, order left out (a TypedDict and a model may list fields differently)."""
    return {
        rule.name: (
            frozenset(rule.types),
            rule.required,
            None if rule.fields is None else _normal(rule.fields),
            None if rule.items is None else _normal((rule.items,)),
        )
        for rule in rules
        if rule.name != "op"
    }


@pytest.mark.parametrize("op", sorted(PYDANTIC))
def test_the_table_and_the_pydantic_models_agree(op: str) -> None:
    assert _normal(TABLE[op]) == _normal(op_checks.shape(PYDANTIC[op]))


def test_every_op_has_one_typed_definition() -> None:
    assert set(TABLE) == {op.value for op in Op}
    assert json.dumps({"op": Op.DONE}) == '{"op": "done"}'


def _sample(rule: Rule) -> Any:
    """A valid value for ``rule`` (one the pydantic models take too)."""
    kind = rule.types[0]
    if rule.fields is not None:
        return {r.name: _sample(r) for r in rule.fields if r.required}
    if rule.items is not None:
        return [_sample(rule.items)]
    if rule.name == "action":
        return "lookup"
    if rule.name == "op":  # a nested request: promote's cell
        return "exec"
    return {str: "a:b", int: 1, bool: True, float: 1.0, dict: {}, object: None}[kind]


def _wrong(rule: Rule) -> Any:
    return 1.5 if str in rule.types else "x"


def _valid(op: str) -> dict[str, Any]:
    frame = {rule.name: _sample(rule) for rule in TABLE[op] if rule.required}
    return {"op": op, **frame}


def _mutations(rules: tuple[Rule, ...], path: tuple[str, ...] = ()):
    """(path to a field, its name as a check names it, whether it is required) for each field,
    nested ones included."""
    for rule in rules:
        where = (*path, rule.name)
        if object not in rule.types:
            yield where, rule
        if rule.fields is not None:
            yield from _mutations(rule.fields, where)


def _set(frame: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    frame = json.loads(json.dumps(frame))
    obj = frame
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    if value is _DROP:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value
    return frame


_DROP = object()
_ADAPTER: TypeAdapter[Any] = TypeAdapter(frames.ClientFrame | frames.VolumeFrame)


def _fill_parents(rules: tuple[Rule, ...], path: tuple[str, ...], frame: dict[str, Any]) -> None:
    """Make an optional object on ``path`` present, so a field inside it can be tested."""
    obj = frame
    for part in path[:-1]:
        rule = next(r for r in rules if r.name == part)
        obj = obj.setdefault(part, _sample(rule))
        rules = rule.fields or ()


@pytest.mark.parametrize("op", sorted(TABLE))
def test_each_check_names_the_missing_or_wrong_field(op: str) -> None:
    frame = _valid(op)
    assert problem(frame) is None
    if op in PYDANTIC:
        _ADAPTER.validate_python(frame)
    for path, rule in _mutations(TABLE[op]):
        base = json.loads(json.dumps(frame))
        _fill_parents(TABLE[op], path, base)
        name = ".".join(path)
        bad = _set(base, path, _wrong(rule))
        assert (
            problem(bad) == f"{name}: expected {rule.expected}, got {type(_wrong(rule)).__name__}"
        )
        if op in PYDANTIC:
            with pytest.raises(ValidationError):
                _ADAPTER.validate_python(bad)
        if rule.required:
            assert problem(_set(base, path, _DROP)) == f"{name}: missing"
            if op in PYDANTIC:
                with pytest.raises(ValidationError):
                    _ADAPTER.validate_python(_set(base, path, _DROP))


def test_a_list_item_is_checked_and_named_by_position() -> None:
    frame = _valid("exec") | {"inputs": [{"name": "x"}, {"name": 3}]}
    assert problem(frame) == "inputs[1].name: expected str, got int"
    assert (
        problem(_valid("need") | {"hashes": ["a", None]}) == "hashes[1]: expected str, got NoneType"
    )


def test_true_is_no_count() -> None:
    frame = _valid("call")
    frame["function"]["nbuf"] = True
    assert problem(frame) == "function.nbuf: expected int, got bool"


def test_a_failed_done_must_say_why() -> None:
    assert problem({"op": "done", "id": "r", "ok": False}) is not None
    error = {"ename": "E", "evalue": "v"}
    assert problem({"op": "done", "id": "r", "ok": False, "error": error}) is None


def test_op_itself() -> None:
    assert problem({"id": "r"}) == "op: missing"
    assert problem({"op": 3}) == "op: expected str, got int"
    assert problem({"op": "something-newer", "id": "r"}) is None  # left to the receiver
    with pytest.raises(op_checks.FrameInvalid, match=r"'stream' frame .*text: missing"):
        op_checks.check({"op": "stream", "id": "r", "name": "stdout"})


def test_none_type_is_named_null() -> None:
    assert Rule("x", (str, types.NoneType)).expected == "str or null"


# -- no op spelled as a string literal in frame code ---------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _is_op_key(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value == "op"


def _reads_op(node: ast.AST) -> bool:
    """``x["op"]`` or ``x.get("op")``."""
    if isinstance(node, ast.Subscript):
        return _is_op_key(node.slice)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and _is_op_key(node.args[0])
    )


def _is_text(node: ast.AST) -> bool:
    """A string constant, or a tuple, list or set holding one (``op in ("dict", "queue")``)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_text(element) for element in node.elts)
    return False


def op_literals(source: str) -> list[int]:
    """Lines of ``source`` that spell a frame op as a string: ``{"op": "done"}``, or
    ``header["op"] == "exec"`` / ``header.get("op") in ("dict", "queue")``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            lines += [node.lineno for key, value in pairs if _is_op_key(key) and _is_text(value)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_reads_op(side) for side in sides) and any(_is_text(side) for side in sides):
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_each_spelling() -> None:
    source = (
        'a = {"op": "done", "id": 1}\n'
        'b = header["op"] == "exec"\n'
        'c = header.get("op") in ("dict", "queue")\n'
        'd = {"op": Op.DONE, "name": "x"}\n'
        'e = header["op"] == Op.EXEC or header["name"] == "stdout"\n'
    )
    assert op_literals(source) == [1, 2, 3]


def test_no_frame_op_is_spelled_as_a_string_literal() -> None:
    found = []
    for package in ("nbremote", "runner"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            found += [f"{name}:{line}" for line in op_literals(path.read_text())]
    assert not found, f"frame ops spelled as strings at {found}: use nbremote.wire.ops.Op members"
