"""Schedules (Modal's ``Cron`` and ``Period``): validated specs, their wire form, their fire times.

Why here, in the wire: the client builds and checks a schedule (``nr.Cron``, ``--schedule``),
the runner stores it and asks it when to fire next, and both must read it the same way. The
runner may import the wire only, so the one implementation lives here and ``nbremote.schedule``
re-exports it. No I/O, no clock: the caller passes the time in.

Time zones and daylight saving time. A ``Cron`` is read in its own zone, by croniter, with one
correction:

* Spring forward (the clock jumps from 02:00 to 03:00): a job due in the hour that does not
  exist fires once, at the first instant after the jump (croniter's way: a 02:30 daily job in
  Europe/Berlin fires at 03:00 CEST on that day).
* Fall back (an hour happens twice): croniter fires a job whose time falls in the repeated hour
  twice, once in each pass. A job with a fixed hour (``30 2 * * *``) fires only in the first
  pass here, as Vixie cron does: "daily at 02:30" means once a day. A job whose hour field is a
  wildcard (``0 * * * *``, ``*/15 */2 * * *``) fires in both passes: it is about elapsed time.

A ``Period`` is elapsed time, in UTC: no DST at all (``Period(days=1)`` is 24 hours).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# croniter (with dateutil) is imported where a Cron is used: every kernel and runner imports this
# module, few make a schedule, and it cost each ~50 ms of its start (issue 23).

TO = "\N{EN DASH}"  # ranges in messages, as in "minute 61 is out of 0 to 59"
# The five fields of a cron expression, the numbers each allows, and what else it takes.
FIELDS = (
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("day of month", 1, 31, " or L"),
    ("month", 1, 12, f" or jan{TO}dec"),
    ("day of week", 0, 7, f" or sun{TO}sat (0 and 7 are Sunday)"),
)
ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
FORMAT = "a cron expression has 5 fields: minute hour day-of-month month day-of-week"


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{when.isoformat()} has no time zone: pass an aware datetime, e.g. "
            "datetime.now(timezone.utc)"
        )
    return when


def _check_field(expression: str, name: str, low: int, high: int, text: str) -> None:
    """Raise ValueError naming ``name`` if a number or step in ``text`` is out of range."""
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) < 1):
            raise ValueError(
                f"cron {expression!r}: {name} step {step!r} in {part!r} must be a whole "
                f"number of 1 or more (e.g. */5)"
            )
        for number in re.findall(r"\d+", base):
            if not low <= int(number) <= high:
                raise ValueError(
                    f"cron {expression!r}: {name} {int(number)} is out of {low}{TO}{high}"
                )


def _check_cron(expression: str) -> None:
    from croniter import croniter

    if expression.strip().lower() in ALIASES:
        return
    fields = expression.split()
    if len(fields) != len(FIELDS):
        raise ValueError(f"cron {expression!r} has {len(fields)} fields: {FORMAT}")
    for (name, low, high, _), text in zip(FIELDS, fields, strict=True):
        _check_field(expression, name, low, high, text)
    for index, ((name, low, high, names), text) in enumerate(zip(FIELDS, fields, strict=True)):
        # Names (jan, mon-fri), L, #: what the numbers check cannot judge, croniter can.
        probe = ["*"] * len(FIELDS)
        probe[index] = text
        if not croniter.is_valid(" ".join(probe)):
            raise ValueError(
                f"cron {expression!r}: {name} {text!r} is not valid: it takes {low}{TO}{high}"
                f"{names}, a range (1-5), a list (1,3) or a step (*/5)"
            )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'"
        ) from exc


def _second_pass(when: datetime, zone: tzinfo) -> bool:
    """Whether ``when`` is the second time its wall-clock time happens (a DST fall-back)."""
    wall = when.replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and when.utcoffset() == second.utcoffset()


@dataclass(frozen=True)
class Cron:
    """Fire at the times a cron expression names, read in a time zone.

    Args:
        cron_string: five fields, ``minute hour day-of-month month day-of-week``
            (``"0 2 * * *"``: every day at 02:00), or an alias such as ``"@daily"``.
        timezone: an IANA time zone name; the expression is read on its clocks.

    Example:
        >>> Cron("0 2 * * *", timezone="Europe/Berlin").next_fires(
        ...     datetime(2026, 1, 1, tzinfo=UTC), 1)[0].isoformat()
        '2026-01-01T02:00:00+01:00'
    """

    cron_string: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not isinstance(self.cron_string, str):
            raise TypeError(f"Cron({self.cron_string!r}): the expression must be a str")
        from croniter import CroniterBadDateError

        _check_cron(self.cron_string)
        zone = _zone(self.timezone)
        try:
            next(self._fires(datetime(2000, 1, 1, tzinfo=zone)))
        except CroniterBadDateError as exc:  # 30 February
            raise ValueError(f"cron {self.cron_string!r} never fires (no such date)") from exc

    def _fires(self, after: datetime) -> Iterator[datetime]:
        from croniter import croniter

        zone = ZoneInfo(self.timezone)
        text = self.cron_string.strip().lower()
        hour_is_wildcard = text == "@hourly" or (text[0] != "@" and text.split()[1][0] == "*")
        times = croniter(self.cron_string, _aware(after).astimezone(zone))
        while True:
            when = times.get_next(datetime)
            if hour_is_wildcard or not _second_pass(when, zone):
                yield when

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after``, in the schedule's zone."""
        return list(islice(self._fires(after), count))

    def fires(self, after: datetime) -> Iterator[datetime]:
        """Every fire time strictly after ``after``, in order, without end."""
        return self._fires(after)

    def wire(self) -> dict[str, Any]:
        """The schedule as JSON (what the runner stores)."""
        return {"kind": "cron", "cron_string": self.cron_string, "timezone": self.timezone}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Cron:
        return cls(data["cron_string"], timezone=data.get("timezone", "UTC"))


@dataclass(frozen=True)
class Period:
    """Fire every fixed length of elapsed time (UTC: daylight saving does not move it).

    The first fire is one period after the job starts counting (its deployment), then one
    period after each scheduled fire, so fires do not drift when a run is late.

    Args:
        days, hours, minutes, seconds: the parts of the period, added up; each 0 or more.

    Example:
        >>> Period(hours=1).next_fires(datetime(2026, 1, 1, tzinfo=UTC), 2)[1].isoformat()
        '2026-01-01T02:00:00+00:00'
    """

    days: float = 0
    hours: float = 0
    minutes: float = 0
    seconds: float = 0

    def __post_init__(self) -> None:
        for name in ("days", "hours", "minutes", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Period({name}={value!r}): must be a number")
            if value < 0:
                raise ValueError(f"Period({name}={value!r}): a part cannot be negative")
        if self.length <= timedelta(0):
            raise ValueError(
                f"{self!r} has zero length: give it a positive length, e.g. Period(hours=1)"
            )

    @property
    def length(self) -> timedelta:
        """The period as a timedelta."""
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )

    def fires(self, after: datetime) -> Iterator[datetime]:
        """Every fire time strictly after ``after`` (one period apart), in UTC, without end."""
        start, step, n = _aware(after).astimezone(UTC), self.length, 1
        while True:
            yield start + n * step
            n += 1

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after``, in UTC."""
        return list(islice(self.fires(after), count))

    def wire(self) -> dict[str, Any]:
        """The schedule as JSON (what the runner stores)."""
        return {
            "kind": "period",
            "days": self.days,
            "hours": self.hours,
            "minutes": self.minutes,
            "seconds": self.seconds,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Period:
        return cls(**{k: data.get(k, 0) for k in ("days", "hours", "minutes", "seconds")})


Schedule = Cron | Period


def from_wire(data: dict[str, Any]) -> Schedule:
    """A schedule from its JSON form (either kind)."""
    kind = data.get("kind")
    if kind == "cron":
        return Cron.from_wire(data)
    if kind == "period":
        return Period.from_wire(data)
    raise ValueError(f"unknown schedule kind {kind!r}: expected 'cron' or 'period'")
