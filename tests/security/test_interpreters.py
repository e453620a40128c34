"""A client cannot make a runner run a program of its choosing as a worker's interpreter.

A kernel of an embedded runner names its interpreter in the worker spec (its workers import what
it imports). Any other runner serves clients it does not share a user with: a path from them
would run outside any sandbox (the runner first checks that the interpreter can run a worker).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbremote import _session, _spec
from nbremote._cell import CellOptions, run_cell
from nbremote.errors import NbremoteError


def test_a_standalone_runner_refuses_an_interpreter_named_by_a_client(
    remote_session: _session.RemoteSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    program = tmp_path / "python"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(0o755)
    monkeypatch.setattr(_spec, "kernel_python", lambda: str(program))
    with pytest.raises(NbremoteError) as caught:
        run_cell(remote_session, "1 + 1", {}, CellOptions(), lambda frame, buffers: None)
    assert "embedded runner only" in str(caught.value)
    assert not marker.exists()
