"""Every child of the runner dies with it, however the runner dies.

A runner killed with SIGKILL cannot stop its workers and build steps. So each child it starts
asks the kernel to kill it when the runner goes (``PR_SET_PDEATHSIG``, set in the child between
fork and exec, by `die_with_runner` as its ``preexec_fn``); a sandboxed worker also has bwrap's
``--die-with-parent``, and its whole PID namespace goes with it.

``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the process:
children are started from the event loop's thread, which lives as long as the runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

try:  # looked up here, before any fork: the child must not load libraries
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no such call, and children may outlive us
    _prctl = None


def die_with_runner() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGKILL when this process dies."""
    runner = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != runner:  # the runner died between fork and prctl
            os._exit(1)

    return preexec
