"""The worker program imports little (STYLE 6): every warm container pays for its imports.

It must never import pydantic, the client's API or the rest of the runner: only the standard
library, IPython, the pickle libraries and the light modules of the wire (codec, shm, serialize).
Checked in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

_LIST_MODULES = (
    "import json, sys, nbremote_runner.worker; "
    "print(json.dumps(sorted(name for name in sys.modules)))"
)


def _modules_after_importing_the_worker() -> set[str]:
    answer = subprocess.run(
        [sys.executable, "-P", "-c", _LIST_MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(answer.stdout))


def test_the_worker_imports_no_pydantic_and_no_client_api() -> None:
    modules = _modules_after_importing_the_worker()
    assert "pydantic" not in modules
    ours = {name for name in modules if name.partition(".")[0] == "nbremote"}
    allowed = {"nbremote", "nbremote.errors"}
    assert {name for name in ours if not name.startswith("nbremote.wire")} <= allowed
    assert "nbremote.wire.http" not in ours
    assert "nbremote.wire.frames" not in ours


def test_the_worker_imports_only_the_worker_of_the_runner() -> None:
    modules = _modules_after_importing_the_worker()
    runner = {name for name in modules if name.partition(".")[0] == "nbremote_runner"}
    assert {name for name in runner if not name.startswith("nbremote_runner.worker")} <= {
        "nbremote_runner"
    }


def test_the_worker_imports_no_asyncio_before_an_async_function() -> None:
    # asyncio (and concurrent.futures) serve only `async def` and @nr.concurrent functions:
    # ~20 ms of CPU in every worker's boot otherwise (issue 23, W5 cold start).
    modules = _modules_after_importing_the_worker()
    assert not {"asyncio", "concurrent.futures"} & modules
