"""GPU spec matching, shared by the client (which parses specs) and the runner (which matches
them against its devices).

A request names GPU types; the runner matches them against its devices' NVML product names,
case-insensitively and word by word: ``A100`` matches ``NVIDIA A100-SXM4-80GB`` and
``NVIDIA A100 80GB PCIe``, ``A100-80GB`` only the 80 GB ones (by the name's ``80GB``, else by the
device's total memory), ``A10`` never matches ``A100``. ``any`` matches every GPU. Names outside
Modal's list (``RTX-4090``) work the same way, against whatever the runner has. Modal's GPU
objects (``nr.gpu.A100()``) are the client's, in `nbremote.gpu`.

Example:
    >>> str(parse_text("h100:2|a100-80gb"))
    'H100:2|A100-80GB'
"""

from __future__ import annotations

import re

from .http import GpuChoice, GpuRequest

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


def parse_choice(text: str, where: str) -> GpuChoice:
    """One choice from its text (``A100-80GB:2``); ``where`` is named in errors."""
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


def parse_text(text: str, where: str = "gpu") -> GpuRequest:
    """A request from its text: choices in fallback order, separated by ``|``.

    Raises:
        ValueError: a choice is malformed (the message shows the accepted forms).

    Example:
        >>> [str(choice) for choice in parse_text("H100|A100-80GB:2").choices]
        ['H100', 'A100-80GB:2']
    """
    return GpuRequest(choices=[parse_choice(item, where) for item in text.split("|")])


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
