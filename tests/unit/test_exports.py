"""The public API is what ``nbremote.__all__`` lists, sorted, every name importable."""

from __future__ import annotations

import subprocess
import sys

import nbremote


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert nbremote.__all__ == sorted(nbremote.__all__)
    for name in nbremote.__all__:
        assert getattr(nbremote, name) is not None, name


def test_modal_code_runs_under_the_modal_name() -> None:
    import nbremote as modal

    app = modal.App("compat")

    @app.function(retries=modal.Retries(max_retries=2))
    def f(x: int) -> int:
        return x + 1

    assert isinstance(f, modal.Function) and f.local(1) == 2


def test_the_worker_side_imports_stay_light() -> None:
    code = (
        "import sys, nbremote.wire.codec, nbremote.wire.serialize; print('pydantic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
