"""Schedules for jobs (Modal's ``nr.Cron`` and ``nr.Period``).

The implementation lives in the wire (``nbremote.wire.schedule``): the runner, which imports
no client module, reads the same schedules to decide when to fire.
"""

from __future__ import annotations

from .wire.schedule import Cron, Period

__all__ = ["Cron", "Period"]
