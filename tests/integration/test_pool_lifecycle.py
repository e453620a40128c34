"""Workers' lives around their callers: a second interrupt, the end of an app's run, small
maps on a warm pool."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from nbremote.errors import RemoteError

STUBBORN = "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n        pass"


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def test_a_second_interrupt_kills_a_worker_that_ignores_the_first(shell: InteractiveShell) -> None:
    remote(shell, "import os\nbefore = os.getpid()\nkept = 1")
    for delay in (1.0, 2.5):
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    with capture_output() as shown, pytest.raises((RemoteError, KeyboardInterrupt)) as caught:
        remote(shell, STUBBORN)
    print("ended after", time.monotonic() - t0, repr(caught.value), shown.stdout, shown.stderr)
    t0 = time.monotonic()
    with capture_output() as status:
        shell.run_line_magic("remote", "status")
    print(status.stdout)
    remote(shell, "import os\nafter = os.getpid()")
    print("next cell took", time.monotonic() - t0)
    assert shell.user_ns["after"] != shell.user_ns["before"]
