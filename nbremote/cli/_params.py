"""A function's parameters as command-line options, as ``modal run app.py::f --x 3`` does.

Each parameter becomes ``--name`` (underscores also spelled as dashes): its type comes from its
annotation, else from its default (int, float, str; bool as ``--name/--no-name``); anything
else is taken as a string. A parameter without a default is a required option, and a missing
one is click's usage error naming it.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import click

_TYPES: dict[Any, Any] = {int: int, float: float, str: str, bool: bool}
_NAMED = {"int": int, "float": float, "str": str, "bool": bool}  # postponed annotations


def _annotation(fn: Callable[..., Any], parameter: inspect.Parameter) -> Any:
    """The parameter's type: its annotation resolved (strings too), else its default's type."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation naming what the script never imported: use the text
        hints = {}
    annotation = hints.get(parameter.name, parameter.annotation)
    if isinstance(annotation, str):
        annotation = _NAMED.get(annotation.strip(), str)
    if annotation is inspect.Parameter.empty:
        default = parameter.default
        annotation = type(default) if default not in (inspect.Parameter.empty, None) else str
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(args) == 1 and typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = args[0]  # Optional[int] is an int that may be left out
    return _TYPES.get(annotation, str)


def _option(fn: Callable[..., Any], parameter: inspect.Parameter) -> click.Option:
    kind = _annotation(fn, parameter)
    required = parameter.default is inspect.Parameter.empty
    # A required option gets no default at all: click counts an explicit None as given.
    default: dict[str, Any] = {} if required else {"default": parameter.default}
    dashed = parameter.name.replace("_", "-")
    if kind is bool:
        flags = [f"--{dashed}/--no-{dashed}"]
        return click.Option(
            [*flags, parameter.name], required=required, show_default=True, **default
        )
    names = sorted({f"--{parameter.name}", f"--{dashed}"})
    return click.Option(
        [*names, parameter.name], type=kind, required=required, show_default=True, **default
    )


def command_for(fn: Callable[..., Any], name: str, call: Callable[..., Any]) -> click.Command:
    """A click command whose options are ``fn``'s parameters; it runs ``call(**options)``.

    Raises:
        click.UsageError: ``fn`` takes ``*args`` (options cannot name them).
    """
    options: list[click.Parameter] = []
    parameters = inspect.signature(fn).parameters.values()
    positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_ONLY]
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise click.UsageError(f"{name} takes *{parameter.name}: options cannot pass them")
        options.append(_option(fn, parameter))

    def callback(**values: Any) -> Any:
        return call(*(values.pop(key) for key in positional), **values)

    return click.Command(name, params=options, callback=callback, help=inspect.getdoc(fn))
