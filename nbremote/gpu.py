"""GPU requests, as Modal spells them: ``gpu="A100"``, ``"H100:2"``, ``"H100|A100-80GB"``, a list
(fallback order), or Modal's objects (``nr.gpu.A100(memory=80, count=2)``).

How the runner matches a request against its devices is `nbremote.wire.gpu`'s, shared with it.

Example:
    >>> str(parse("h100:2|a100-80gb"))
    'H100:2|A100-80GB'
    >>> str(parse(A100(memory=80, count=2)))
    'A100-80GB:2'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .wire.gpu import parse_text
from .wire.http import GpuChoice, GpuRequest


class GPU:
    """One of Modal's GPU objects (``nr.gpu.H100()``): a type, a memory variant, a count.

    Args:
        count: how many GPUs of this type the worker gets.
    """

    type = "any"
    memory_gb: int | None = None

    def __init__(self, *, count: int = 1) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"nr.gpu.{type(self).__name__}(count={count!r}): must be 1 or more")
        self.count = count

    def choice(self) -> GpuChoice:
        """The object as one choice of a request."""
        return GpuChoice(type=self.type, memory_gb=self.memory_gb, count=self.count)

    def __repr__(self) -> str:
        return f"nr.gpu.{type(self).__name__}(count={self.count})"

    def __str__(self) -> str:
        return str(self.choice())


class Any(GPU):
    """Whatever GPU the runner has."""


class T4(GPU):
    """NVIDIA T4 (16 GB)."""

    type = "T4"


class L4(GPU):
    """NVIDIA L4 (24 GB)."""

    type = "L4"


class A10G(GPU):
    """NVIDIA A10G / A10 (24 GB)."""

    type = "A10G"


class L40S(GPU):
    """NVIDIA L40S (48 GB)."""

    type = "L40S"


class A100(GPU):
    """NVIDIA A100, either memory variant unless one is asked for.

    Args:
        count: how many.
        memory: 40 or 80 (GB); 0 takes either.
        size: Modal's other spelling of ``memory``: ``"40GB"`` or ``"80GB"``.

    Example:
        >>> str(A100(memory=80, count=2))
        'A100-80GB:2'
    """

    type = "A100"

    def __init__(self, *, count: int = 1, memory: int = 0, size: str | None = None) -> None:
        super().__init__(count=count)
        if size is not None:
            found = re.fullmatch(r"(\d+)\s*GB", size.strip(), re.IGNORECASE)
            if found is None:
                raise ValueError(f"nr.gpu.A100(size={size!r}): use '40GB' or '80GB'")
            memory = int(found.group(1))
        if memory not in (0, 40, 80):
            raise ValueError(f"nr.gpu.A100(memory={memory!r}): use 40 or 80 (GB), or 0 for either")
        self.memory_gb = memory or None


class H100(GPU):
    """NVIDIA H100 (80 GB)."""

    type = "H100"


class H200(GPU):
    """NVIDIA H200 (141 GB)."""

    type = "H200"


class B200(GPU):
    """NVIDIA B200."""

    type = "B200"


def parse(spec: object, where: str = "gpu") -> GpuRequest | None:
    """A GPU request from any of Modal's spellings; None for no GPU.

    Args:
        spec: ``"A100"``, ``"H100:2"``, ``"H100|A100-80GB"``, a list of those or of GPU objects
            (tried in order), a GPU object, a `GpuRequest`, or None.
        where: what to name in an error (``@app.function on f``, ``--gpu``).

    Raises:
        ValueError: the spec is malformed (the message shows the accepted forms).

    Example:
        >>> [str(choice) for choice in parse(["H100", "A100-80GB:2"]).choices]
        ['H100', 'A100-80GB:2']
    """
    if spec is None or isinstance(spec, GpuRequest):
        return spec
    items: Sequence[object]
    if isinstance(spec, str):
        return parse_text(spec, where)
    if isinstance(spec, GPU):
        items = [spec]
    elif isinstance(spec, list | tuple):
        items = spec
    else:
        raise ValueError(
            f"{where}: expected a string such as 'A100:2', a list of them, or nr.gpu.A100(...); "
            f"got {type(spec).__name__}"
        )
    choices = []
    for item in items:
        if isinstance(item, GPU):
            choices.append(item.choice())
        elif isinstance(item, str):
            choices.extend(parse_text(item, where).choices)
        else:
            raise ValueError(f"{where}: {item!r} is not a GPU type (a string or nr.gpu.X())")
    if not choices:
        raise ValueError(f"{where}: empty GPU list; name at least one type, or 'any'")
    return GpuRequest(choices=choices)
