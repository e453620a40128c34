"""What a user sees of one executed cell, and how two such views differ.

Issue 15's promise is that a ``%%remote`` cell shows what the same cell shows locally. A cell's
*view* keeps exactly what the issue names: its stream text (stdout and stderr apart), the ordered
output types with their mime sets (so image presence, never image bytes), text/plain, text/html
and the errors' names and messages. Before comparing, a small normaliser removes only what
differs between any two runs of the same notebook, local or not; each rule says why it is
legitimate. Anything else that differs is a real difference, and is reported as one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

# A rule is (pattern, replacement, why). Only what a second *local* run would also change.
_Rule = tuple[re.Pattern[str], str | Callable[[re.Match[str]], str], str]

# The units a Jupyter kernel's %timeit/%time print: IPython writes micro as U+03BC or U+00B5
# depending on its version; a shell without an encoding (a terminal's) prints "us" instead.
_UNIT = r"(?:ns|µs|μs|ms|s)"
_NUMBER = r"\d+(?:\.\d+)?"

RULES: list[_Rule] = [
    (
        re.compile(r"0x[0-9a-fA-F]{6,}"),
        "0x<address>",
        "object addresses in default reprs differ between any two processes",
    ),
    (
        re.compile(
            rf"{_NUMBER} {_UNIT} ± {_NUMBER} {_UNIT} per loop \(mean ± std\. dev\. of "
            r"\d+ runs?, [\d,]+ loops? each\)"
        ),
        "<timeit line>",
        "%timeit's figures and its auto-ranged loop count depend on the machine's load; only the "
        "Jupyter form (± and µs) is recognised, so a terminal-style line stays a difference",
    ),
    (
        re.compile(r"The slowest run took \d+(?:\.\d+)? times longer than the fastest"),
        "The slowest run took <n> times longer than the fastest",
        "%timeit's spread between its fastest and slowest runs is a timing",
    ),
    (
        re.compile(rf"\b{_NUMBER} {_UNIT}\b"),
        "<time>",
        "durations (%time, %%time, 'Wall time') differ between any two runs; again only the "
        "units a Jupyter kernel prints",
    ),
    (
        re.compile(
            r"\[\d\d:\d\d<(?:\d\d:\d\d|\?), *(?:\?|\d+(?:\.\d+)?[kMGTP]?)"
            r"(?:[A-Za-z]*/s|s/[A-Za-z]*)(?=[,\]])"
        ),
        "[<elapsed><<remaining>, <rate>",
        "a tqdm bar's elapsed time, time left and rate (any unit, SI prefix) are timings",
    ),
    (
        re.compile(r"\b\d+%\|[^|\n]*\| *(\d+)/(\d+)\b"),
        lambda m: m[0] if m[1] == m[2] else f"<partial bar>/{m[2]}",
        "where a tqdm bar stood at each intermediate redraw (9/50 or 10/50) depends on timing; "
        "its final state (50/50) does not, and stays compared",
    ),
    (
        re.compile(r"\b\d+m\d+\.\d{3}s\b"),
        "<time>",
        "the shell's `time` (real/user/sys) reports durations",
    ),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
        "<uuid>",
        "random UUIDs (uuid4, e.g. the ids of HTML elements) are new in every run",
    ),
    (
        re.compile(r"display_id=[0-9a-f]{32}\b"),
        "display_id=<uuid>",
        "a DisplayHandle's id is a random uuid4, new in every run",
    ),
    (
        re.compile(r"\bpid\W{0,3}\d+", re.IGNORECASE),
        "pid <n>",
        "process ids differ between any two kernels",
    ),
    (
        re.compile(r"/tmp/ipykernel_\d+/\d+\.py"),
        "<ipykernel cell file>",
        "ipykernel names a cell's code file after its pid and a hash of the cell",
    ),
    (
        re.compile(r"(?:/var)?/tmp/fidelity-nb-[\w.-]+"),
        "<notebook folder>",
        "each run of the harness executes its notebook in a fresh temporary folder",
    ),
]


def _render_carriage_returns(text: str) -> str:
    """What a frontend shows of ``\\r``-redrawn lines: the last redraw of each. How many
    intermediate redraws a progress bar makes depends on timing, the last one does not."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def normalise(text: str) -> str:
    """``text`` with the legitimate run-to-run differences of ``RULES`` replaced."""
    text = _render_carriage_returns(text)
    for pattern, replacement, _why in RULES:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class CellView:
    """What a user sees of one executed cell, normalised."""

    stdout: str
    stderr: str
    outputs: tuple[str, ...]  # output types with mime sets; consecutive streams as one "stream"
    plain: tuple[str, ...]  # text/plain of each rich output
    html: tuple[str, ...]  # text/html of each rich output
    errors: tuple[str, ...]  # "Name: message"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _token(output: Any) -> str:
    kind = output["output_type"]
    if kind in ("display_data", "execute_result"):
        return f"{kind}[{','.join(sorted(output.get('data', {})))}]"
    return str(kind)


def view(outputs: Iterable[Any]) -> CellView:
    """The view of a cell's nbformat outputs."""
    streams = {"stdout": "", "stderr": ""}
    tokens: list[str] = []
    plain: list[str] = []
    html: list[str] = []
    errors: list[str] = []
    for output in outputs:
        if output["output_type"] == "stream":
            streams[output["name"]] += _text(output["text"])
            # stdout against stderr order is not fixed even locally (two buffers flushed apart);
            # streams against rich output is (a display flushes the streams first).
            if not tokens or tokens[-1] != "stream":
                tokens.append("stream")
            continue
        tokens.append(_token(output))
        data = output.get("data", {})
        if "text/plain" in data:
            plain.append(normalise(_text(data["text/plain"])))
        if "text/html" in data:
            html.append(normalise(_text(data["text/html"])))
        if output["output_type"] == "error":
            errors.append(normalise(f"{output['ename']}: {output['evalue']}"))
    return CellView(
        normalise(streams["stdout"]),
        normalise(streams["stderr"]),
        tuple(tokens),
        tuple(plain),
        tuple(html),
        tuple(errors),
    )


def _lines(value: str | tuple[str, ...]) -> list[str]:
    text = value if isinstance(value, str) else "\n---\n".join(value)
    return text.splitlines() or [""]


def diff(local: CellView, remote: CellView, limit: int = 12) -> str:
    """A short unified diff of the fields that differ ('' when the views are the same)."""
    parts: list[str] = []
    theirs = asdict(remote)
    for name, mine in asdict(local).items():
        if mine == theirs[name]:
            continue
        lines = list(
            difflib.unified_diff(
                _lines(mine), _lines(theirs[name]), "local", "remote", n=1, lineterm=""
            )
        )[2:]
        shown = [line[:160] for line in lines[:limit]]
        if len(lines) > limit:
            shown.append(f"... {len(lines) - limit} more diff lines")
        parts.append(f"[{name}]\n" + "\n".join(shown))
    return "\n".join(parts)
