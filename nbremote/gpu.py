"""GPU requests, as Modal spells them: ``gpu="A100"``, ``"H100:2"``, ``"H100|A100-80GB"``, a list
(fallback order), or Modal's objects (``nr.gpu.A100(memory=80, count=2)``).

A request names GPU types; the runner matches them against its devices' NVML product names,
case-insensitively and word by word: ``A100`` matches ``NVIDIA A100-SXM4-80GB`` and
``NVIDIA A100 80GB PCIe``, ``A100-80GB`` only the 80 GB ones (by the name's ``80GB``, else by the
device's total memory), ``A10`` never matches ``A100``. ``any`` matches every GPU. Names outside
Modal's list (``RTX-4090``) work the same way, against whatever the runner has.

Example:
    >>> str(parse("h100:2|a100-80gb"))
    'H100:2|A100-80GB'
    >>> str(parse(A100(memory=80, count=2)))
    'A100-80GB:2'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .schema import GpuChoice, GpuRequest

# Modal's GPU names and the memory (GB) of each variant; other names are matched as written.
MODAL_GPUS: dict[str, tuple[int, ...]] = {
    "T4": (16,),
    "L4": (24,),
    "A10": (24,),
    "A10G": (24,),
    "L40S": (48,),
    "A100": (40, 80),
    "H100": (80,),
    "H200": (141,),
    "B200": (180,),
}
# Names that denote the same chip in NVML's product names (AWS's A10G is an A10).
ALIASES = {"A10": ("A10", "A10G"), "A10G": ("A10G", "A10")}

_MEMORY = re.compile(r"^(?P<type>.+?)-(?P<memory>\d+)\s*GB$", re.IGNORECASE)
_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


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


def _choice(text: str, where: str) -> GpuChoice:
    name, _, count_text = text.strip().partition(":")
    name = name.strip().rstrip("!")  # Modal's "H100!": no upgrade to another type; never here
    count = 1
    if count_text:
        if not count_text.strip().isdigit() or int(count_text) < 1:
            raise ValueError(f"{where}: the count in {text.strip()!r} must be a whole number ≥ 1")
        count = int(count_text)
    memory = None
    found = _MEMORY.match(name)
    if found is not None:
        name, memory = found.group("type"), int(found.group("memory"))
    if not _TYPE.match(name):
        raise ValueError(
            f"{where}: {text.strip()!r} is not a GPU type; use 'any', a name such as "
            f"{', '.join(MODAL_GPUS)}, optionally with -NNGB and :COUNT (A100-80GB:2)"
        )
    kind = "any" if name.lower() == "any" else name.upper()
    if kind == "any" and memory is not None:
        raise ValueError(f"{where}: 'any' has no memory variant; name a type (A100-80GB)")
    return GpuChoice(type=kind, memory_gb=memory, count=count)


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
        items = spec.split("|")
    elif isinstance(spec, GPU):
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
            if "|" in item:
                choices.extend(parse(item, where).choices)  # type: ignore[union-attr]
            else:
                choices.append(_choice(item, where))
        else:
            raise ValueError(f"{where}: {item!r} is not a GPU type (a string or nr.gpu.X())")
    if not choices:
        raise ValueError(f"{where}: empty GPU list; name at least one type, or 'any'")
    return GpuRequest(choices=choices)


def _words(name: str) -> list[str]:
    return [word for word in re.split(r"[^A-Za-z0-9]+", name.upper()) if word]


def matches(choice: GpuChoice, name: str, memory_bytes: int | None) -> bool:
    """Whether a device (NVML product name, total memory) is one ``choice`` accepts.

    Example:
        >>> matches(GpuChoice(type="A100", memory_gb=80), "NVIDIA A100-SXM4-80GB", None)
        True
        >>> matches(GpuChoice(type="A10"), "NVIDIA A100-PCIE-40GB", None)
        False
    """
    if choice.type == "any":
        return True
    words = _words(name)
    wanted = {"".join(_words(alias)) for alias in ALIASES.get(choice.type, (choice.type,))}
    runs = {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    if not wanted & runs:
        return False
    if choice.memory_gb is None:
        return True
    sizes = [int(word[:-2]) for word in words if re.fullmatch(r"\d+GB", word)]
    if sizes:
        return choice.memory_gb in sizes
    if memory_bytes is None:
        return False
    # NVML reports a little less than the marketing size (an 80 GB H100: 79.6 GiB).
    return abs(memory_bytes / 2**30 - choice.memory_gb) <= 0.1 * choice.memory_gb


def describe(choice: GpuChoice) -> str:
    """A choice for people: its count, a multiplication sign, its type and memory variant."""
    memory = f"-{choice.memory_gb}GB" if choice.memory_gb else ""
    return f"{choice.count}\N{MULTIPLICATION SIGN}{choice.type}{memory}"
