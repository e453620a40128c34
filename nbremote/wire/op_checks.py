"""The standard-library check of a received frame, against the table derived from the op
`TypedDict`s of `nbremote.wire.ops`.

A frame missing a field, or with one of the wrong type, is refused naming the op and the field,
instead of raising a KeyError deep inside whoever reads it. An op the receiver does not know is
left to it (the worker refuses it, the client ignores it). Only types are checked here, not
ranges or patterns: the runner checks those. Measured (timeit, one core of a loaded 2-core
box): 0.4 µs a ``stream`` frame, 0.8 µs a ``done``, 1.6 µs a ``call``, 4.4 µs an ``exec`` with
five inputs; importing this module with `nbremote.wire.ops` about 5 ms (the TypedDicts and the
table built from them).

(No ``from __future__ import annotations`` here: the rules are read from live annotations.)
"""

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from .ops import FRAMES, Op


@dataclass(frozen=True, slots=True)
class Rule:
    """One field: the types its value may have, whether it must be there, and what is inside
    (an object's fields, or a list's items)."""

    name: str
    types: tuple[type, ...]
    required: bool = True
    fields: "tuple[Rule, ...] | None" = None
    items: "Rule | None" = None

    @property
    def expected(self) -> str:
        return " or ".join("null" if t is types.NoneType else t.__name__ for t in self.types)


def rule_of(name: str, annotation: Any, required: bool) -> Rule:
    """The rule of a field annotated ``annotation`` (also used by the test, on the pydantic
    models' annotations)."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return Rule(name, (object,), required)
    if annotation is None or annotation is types.NoneType:
        return Rule(name, (types.NoneType,), required)
    if annotation is float:
        return Rule(name, (int, float), required)  # JSON writes 1.0 as 1
    if origin is Literal:
        return Rule(name, tuple({type(value) for value in typing.get_args(annotation)}), required)
    if origin in (types.UnionType, typing.Union):
        members = [rule_of(name, arg, required) for arg in typing.get_args(annotation)]
        inner = next((m for m in members if m.fields or m.items), None)
        merged = tuple(dict.fromkeys(t for m in members for t in m.types))
        if inner is None:
            return Rule(name, merged, required)
        return Rule(name, merged, required, inner.fields, inner.items)
    if origin is list:
        (item,) = typing.get_args(annotation)
        return Rule(name, (list,), required, items=rule_of("", item, True))
    if origin is dict or annotation is dict:
        return Rule(name, (dict,), required)
    if isinstance(annotation, type) and annotation in (str, int, bool):
        return Rule(name, (annotation,), required)
    if isinstance(annotation, type):
        return Rule(name, (dict,), required, fields=shape(annotation))
    raise TypeError(f"{name}: no rule for {annotation!r}")


def shape(cls: type) -> "tuple[Rule, ...]":
    """The rules of the fields of a TypedDict (or of a pydantic model, for the test)."""
    hints = typing.get_type_hints(cls)
    model_fields = getattr(cls, "model_fields", None)
    if model_fields is not None:
        return tuple(
            rule_of(name, hints[name], field.is_required()) for name, field in model_fields.items()
        )
    required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    return tuple(rule_of(name, hints[name], name in required) for name in hints)


TABLE: dict[str, tuple[Rule, ...]] = {
    op: tuple(rule for rule in shape(cls) if rule.name != "op") for op, cls in FRAMES.items()
}
"""op -> its fields' rules (``op`` itself left out: it chose the entry)."""

_ABSENT = object()


class FrameInvalid(ValueError):
    """A frame that cannot be acted on: it names the op and the field."""

    def __init__(self, op: object, problem: str) -> None:
        super().__init__(f"a {op!r} frame that cannot be read: {problem}")
        self.op = op
        self.problem = problem


def problem(header: dict[str, Any]) -> str | None:
    """What is wrong with ``header`` (``"<field>: <what>"``), or None: nothing we know of."""
    op = header.get("op", _ABSENT)
    if op is _ABSENT:
        return "op: missing"
    if not isinstance(op, str):
        return f"op: expected str, got {type(op).__name__}"
    rules = TABLE.get(op)
    if rules is None:
        return None  # an op this table does not know: the receiver decides
    wrong = _fields_problem(header, rules, "")
    if wrong is None and op == Op.DONE and header["ok"] is False and not header.get("error"):
        return "error: missing (a done that is not ok says why)"
    return wrong


def check(header: dict[str, Any]) -> None:
    """Refuse ``header`` if `problem` finds something wrong with it.

    Raises:
        FrameInvalid: naming the op and the field.
    """
    wrong = problem(header)
    if wrong is not None:
        raise FrameInvalid(header.get("op"), wrong)


def _fields_problem(obj: dict[str, Any], rules: tuple[Rule, ...], prefix: str) -> str | None:
    for rule in rules:
        value = obj.get(rule.name, _ABSENT)
        if value is _ABSENT:
            if rule.required:
                return f"{prefix}{rule.name}: missing"
            continue
        if (
            rule.fields is None
            and rule.items is None
            and isinstance(value, rule.types)
            and (value.__class__ is not bool or bool in rule.types)
        ):
            continue  # a plain value of its type, the usual case: no call to say so
        wrong = _value_problem(value, rule, prefix + rule.name)
        if wrong is not None:
            return wrong
    return None


def _value_problem(value: Any, rule: Rule, where: str) -> str | None:
    # bool is an int to isinstance, not to JSON's reader: true is no count.
    if not isinstance(value, rule.types) or (value.__class__ is bool and bool not in rule.types):
        return f"{where}: expected {rule.expected}, got {type(value).__name__}"
    if rule.fields is not None and value.__class__ is dict:
        return _fields_problem(value, rule.fields, where + ".")
    if rule.items is not None and value.__class__ is list:
        for index, item in enumerate(value):
            wrong = _value_problem(item, rule.items, f"{where}[{index}]")
            if wrong is not None:
                return wrong
    return None
