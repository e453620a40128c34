"""nr.Cron and nr.Period: the fire times a user is shown, DST included, and bad input refused.

Time is passed in; nothing sleeps. Fire times are compared as ISO strings, the way a user reads
them (two wall-clock times of a DST fall-back differ only in their offset).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

import nbremote as nr
from nbremote.wire.schedule import from_wire

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def iso(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("* * * * *", ["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"]),
        ("*/15 * * * *", ["2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00"]),
        ("0 * * * *", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
        ("0 2 * * *", ["2026-01-01T02:00:00+00:00", "2026-01-02T02:00:00+00:00"]),
        ("30 9 * * mon-fri", ["2026-01-01T09:30:00+00:00", "2026-01-02T09:30:00+00:00",
                              "2026-01-05T09:30:00+00:00"]),
        ("0 0 1 * *", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        ("0 0 * * 0", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),
        ("0 0 * * 7", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),
        ("0 12 29 2 *", ["2028-02-29T12:00:00+00:00"]),
        ("@daily", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@hourly", ["2026-01-01T01:00:00+00:00"]),
    ],
)  # fmt: skip
def test_cron_next_fires(cron: str, expected: list[str]) -> None:
    assert iso(nr.Cron(cron).next_fires(JAN1, len(expected))) == expected


def test_fires_are_strictly_after_the_given_time() -> None:
    """A fire time given back as ``after`` (the last fire) is not due again."""
    at_two = datetime(2026, 1, 1, 2, tzinfo=UTC)
    assert iso(nr.Cron("0 2 * * *").next_fires(at_two, 1)) == ["2026-01-02T02:00:00+00:00"]
    assert iso(nr.Period(hours=1).next_fires(at_two, 1)) == ["2026-01-01T03:00:00+00:00"]


def test_cron_reads_its_zone_and_answers_in_it() -> None:
    berlin = nr.Cron("0 2 * * *", timezone="Europe/Berlin")
    assert iso(berlin.next_fires(JAN1, 2)) == [
        "2026-01-01T02:00:00+01:00",
        "2026-01-02T02:00:00+01:00",
    ]
    # the same instant, from another zone
    from_new_york = JAN1.astimezone(ZoneInfo("America/New_York"))
    assert berlin.next_fires(from_new_york, 2) == berlin.next_fires(JAN1, 2)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # spring forward: 02:00 -> 03:00; the 02:30 that does not exist fires once, at 03:00
        ("Europe/Berlin", datetime(2026, 3, 28),
         ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
        ("America/New_York", datetime(2026, 3, 7),
         ["2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
        # fall back: Berlin's 02:00-03:00 happens twice; the daily job fires once, the first time
        ("Europe/Berlin", datetime(2026, 10, 24),
         ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
        # New York repeats 01:00-02:00: 02:30 is not in it and fires once as on any day
        ("America/New_York", datetime(2026, 10, 31),
         ["2026-10-31T02:30:00-04:00", "2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"]),
    ],
)  # fmt: skip
def test_a_daily_job_fires_once_a_day_across_dst(
    zone: str, day: datetime, expected: list[str]
) -> None:
    start = day.replace(tzinfo=ZoneInfo(zone))
    assert iso(nr.Cron("30 2 * * *", timezone=zone).next_fires(start, 3)) == expected


def test_a_daily_job_in_new_yorks_repeated_hour_fires_once() -> None:
    start = datetime(2026, 10, 31, 12, tzinfo=ZoneInfo("America/New_York"))
    assert iso(nr.Cron("30 1 * * *", "America/New_York").next_fires(start, 2)) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


def test_an_hourly_job_fires_in_both_passes_of_the_repeated_hour() -> None:
    """Elapsed time: an hourly job runs every real hour, 25 times on the fall-back day."""
    start = datetime(2026, 10, 25, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    fires = nr.Cron("0 * * * *", "Europe/Berlin").next_fires(start, 4)
    assert iso(fires) == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(fires)}
    assert gaps == {timedelta(hours=1)}


def test_an_hourly_job_on_the_spring_forward_day_skips_the_missing_hour() -> None:
    start = datetime(2026, 3, 8, 0, 30, tzinfo=ZoneInfo("America/New_York"))
    assert iso(nr.Cron("0 * * * *", "America/New_York").next_fires(start, 3)) == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T04:00:00-04:00",
    ]


@pytest.mark.parametrize(
    ("period", "after", "expected"),
    [
        (nr.Period(seconds=1), JAN1, ["2026-01-01T00:00:01+00:00", "2026-01-01T00:00:02+00:00"]),
        (nr.Period(minutes=90), JAN1, ["2026-01-01T01:30:00+00:00", "2026-01-01T03:00:00+00:00"]),
        (nr.Period(days=1, hours=6), JAN1,
         ["2026-01-02T06:00:00+00:00", "2026-01-03T12:00:00+00:00"]),
        (nr.Period(seconds=0.5), JAN1,
         ["2026-01-01T00:00:00.500000+00:00", "2026-01-01T00:00:01+00:00"]),
        # elapsed time in UTC, whatever zone the start is given in; DST does not move it
        (nr.Period(days=1), datetime(2026, 3, 28, 12, tzinfo=ZoneInfo("Europe/Berlin")),
         ["2026-03-29T11:00:00+00:00", "2026-03-30T11:00:00+00:00"]),
    ],
)  # fmt: skip
def test_period_next_fires(period: nr.Period, after: datetime, expected: list[str]) -> None:
    assert iso(period.next_fires(after, len(expected))) == expected


@pytest.mark.parametrize(
    ("cron", "culprit"),
    [
        ("61 * * * *", "minute 61 is out of 0-59"),
        ("0 24 * * *", "hour 24 is out of 0-23"),
        ("0 0 0 * *", "day of month 0 is out of 1-31"),
        ("0 0 32 * *", "day of month 32 is out of 1-31"),
        ("0 0 * 13 *", "month 13 is out of 1-12"),
        ("0 0 * * 8", "day of week 8 is out of 0-7"),
        ("0-60 * * * *", "minute 60 is out of 0-59"),
        ("0,15,75 * * * *", "minute 75 is out of 0-59"),
        ("*/0 * * * *", "minute step '0'"),
        ("0 */x * * *", "hour step 'x'"),
        ("0 0 * foo *", "month 'foo' is not valid: it takes 1-12 or jan-dec"),
        ("0 0 * * funday", "day of week 'funday' is not valid"),
        ("* * *", "has 3 fields: a cron expression has 5 fields: minute hour"),
        ("0 0 * * * *", "has 6 fields: a cron expression has 5 fields"),
        ("", "has 0 fields"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_a_bad_cron_expression_names_the_field_and_value(cron: str, culprit: str) -> None:
    """The message names the field and value; ranges have an en dash, as the issue writes."""
    with pytest.raises(ValueError, match=re.escape(culprit.replace("-", "\N{EN DASH}"))) as info:
        nr.Cron(cron)
    assert repr(cron) in str(info.value)


def test_an_unknown_time_zone_names_itself() -> None:
    with pytest.raises(ValueError, match=r"unknown time zone 'Mars/Olympus'.*Europe/Berlin"):
        nr.Cron("0 2 * * *", timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({}, r"zero length: give it a positive length, e.g. Period\(hours=1\)"),
        ({"seconds": 0}, "zero length"),
        ({"minutes": -5}, r"Period\(minutes=-5\): a part cannot be negative"),
        ({"hours": 1, "seconds": -1}, r"Period\(seconds=-1\): a part cannot be negative"),
    ],
)
def test_a_period_without_positive_length_says_so(kwargs: dict[str, int], culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit):
        nr.Period(**kwargs)


def test_a_period_part_must_be_a_number() -> None:
    with pytest.raises(TypeError, match=r"Period\(hours='1'\): must be a number"):
        nr.Period(hours="1")  # type: ignore[arg-type]


def test_a_naive_start_time_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        nr.Period(hours=1).next_fires(datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="has no time zone"):
        nr.Cron("0 2 * * *").next_fires(datetime(2026, 1, 1), 1)


@pytest.mark.parametrize(
    "schedule",
    [
        nr.Cron("0 2 * * *", timezone="Europe/Berlin"),
        nr.Cron("@hourly"),
        nr.Period(hours=1),
        nr.Period(days=1, minutes=30, seconds=0.25),
    ],
)
def test_wire_round_trip(schedule: nr.Cron | nr.Period) -> None:
    import json

    data = json.loads(json.dumps(schedule.wire()))
    assert type(schedule).from_wire(data) == schedule
    assert from_wire(data) == schedule


def test_an_unknown_wire_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown schedule kind 'weekly'"):
        from_wire({"kind": "weekly"})


def test_a_fixed_offset_start_is_fine() -> None:
    plus_two = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert iso(nr.Cron("0 2 * * *").next_fires(plus_two, 1)) == ["2026-01-01T02:00:00+00:00"]
