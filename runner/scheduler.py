"""When one scheduled job fires, as a state machine without I/O: events in, actions out.

Why: firing on time, skipping overlaps and catching up after downtime are rules worth testing
exhaustively, and they are easy to test only apart from clocks, timers and databases.
`JobClock` holds them; the driver reads the clock, passes ``now`` in, starts the runs, records
the actions in the job's history, stores `JobClock.cursor` and sleeps until `JobClock.wake`.

Events: `start` (the runner starts, with the cursor it stored), `tick` (the driver woke up),
`resume` (the job was paused and is resumed). Actions: `Fire` (start a run for this scheduled
time), `Skip` (the run for this scheduled time was not started: the previous one is still
going), `Missed` (these scheduled times passed with nobody to fire them).

The rules, in full:

* The cursor is the last scheduled time dealt with (fired, skipped or missed); a new job's
  cursor is its creation time. Every fire time after the cursor and at or before ``now`` is due.
* Of the due times only the latest may run: it fires if it is at most ``grace`` old, and is
  missed otherwise. Every earlier due time is missed (the runner was down, or its loop stalled):
  a job never runs twice in a row to make up for lost time.
* Missed times are **collapsed**: one `Missed` action for a stretch of downtime, with the first
  and last scheduled time and how many there were (a 1-second Period down for a day is one
  record, not 86,400).
* Overlap: if a run of the job is still going when the latest due time would fire, that time is
  recorded as `Skip` instead; the next fire time is tried as usual.
* On `start`, a fire is a catch-up (``Fire.catch_up``): the one run for the downtime.
* `resume` moves the cursor to ``now``: the times that passed while paused are neither run nor
  recorded.
* `wake` is the next fire time after the cursor: the driver sleeps until then.

All times are compared in UTC: two wall-clock times of a DST fall-back that look alike are
different instants. Fire times are handed out in the schedule's zone (a `Cron`'s) or UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nbremote.wire.schedule import Schedule

# How late a fire may start and still run, by default: a runner restarted within it catches up.
GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class Fire:
    """Start a run for ``scheduled``; ``catch_up`` when it is the one run after downtime."""

    scheduled: datetime
    catch_up: bool = False


@dataclass(frozen=True)
class Skip:
    """The run for ``scheduled`` was not started: the job's previous run was still going."""

    scheduled: datetime


@dataclass(frozen=True)
class Missed:
    """``count`` scheduled times, ``first`` to ``last``, passed without a run."""

    first: datetime
    last: datetime
    count: int


Action = Fire | Skip | Missed


class JobClock:
    """The fire decisions of one job. See the module docstring for the rules."""

    def __init__(self, schedule: Schedule, cursor: datetime, grace: timedelta = GRACE) -> None:
        if cursor.tzinfo is None:
            raise ValueError("the cursor must be an aware datetime (e.g. in UTC)")
        self.schedule = schedule
        self.cursor = cursor
        self.grace = grace

    @property
    def wake(self) -> datetime:
        """When the next fire is due: the driver sleeps until then, then calls `tick`."""
        return self.schedule.next_fires(self.cursor, 1)[0]

    def start(self, now: datetime, running: bool = False) -> list[Action]:
        """The runner started: catch up once, or record what was missed."""
        return self._due(now, running, catch_up=True)

    def tick(self, now: datetime, running: bool) -> list[Action]:
        """The driver woke up at ``now``; ``running``: a run of this job is still going."""
        return self._due(now, running, catch_up=False)

    def resume(self, now: datetime) -> list[Action]:
        """The job was paused until ``now``: forget the times that passed meanwhile."""
        self.cursor = now
        return []

    def _due(self, now: datetime, running: bool, catch_up: bool) -> list[Action]:
        first, before, latest, count = self._due_times(now)
        if latest is None or first is None:
            return []
        self.cursor = latest
        if now.astimezone(UTC) - latest.astimezone(UTC) > self.grace:
            return [Missed(first, latest, count)]
        actions: list[Action] = []
        if before is not None:
            actions.append(Missed(first, before, count - 1))
        actions.append(Skip(latest) if running else Fire(latest, catch_up=catch_up))
        return actions

    def _due_times(
        self, now: datetime
    ) -> tuple[datetime | None, datetime | None, datetime | None, int]:
        """Of the fire times after the cursor up to ``now``: the first, the one before the
        latest, the latest, and how many (without holding a long downtime's list)."""
        until = now.astimezone(UTC)
        first = before = latest = None
        count = 0
        for when in self.schedule.fires(self.cursor):
            if when.astimezone(UTC) > until:
                break
            first = first or when
            before, latest = latest, when
            count += 1
        return first, before, latest, count
