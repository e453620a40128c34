"""No module grows past what one can read in a sitting (STYLE.md: split before ~600 lines)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 500


def test_no_module_is_over_the_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for folder in ("nbremote", "runner", "server_ext")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert {path: lines for path, lines in sizes.items() if lines > LIMIT} == {}
