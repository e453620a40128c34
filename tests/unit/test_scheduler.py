"""The runner's fire decisions for one job: on time, overlap, downtime, catch-up, wake-up.

Time is passed in; nothing sleeps. Each test reads as the job's history a user would see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from nbremote_runner.scheduler import GRACE, Fire, JobClock, Missed, Skip

from nbremote.wire.schedule import Cron, Period

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def hourly(grace: timedelta = GRACE) -> JobClock:
    """A job created at T0 that fires every hour on the hour."""
    return JobClock(Cron("0 * * * *"), cursor=T0, grace=grace)


def test_nothing_fires_before_the_first_fire_time() -> None:
    clock = hourly()
    assert clock.tick(at(minutes=59, seconds=59), running=False) == []
    assert clock.wake == at(1)


def test_a_fire_on_time_runs_with_its_scheduled_time() -> None:
    clock = hourly()
    assert clock.wake == at(1)
    assert clock.tick(at(1, seconds=0.05), running=False) == [Fire(at(1))]
    assert clock.cursor == at(1)
    assert clock.wake == at(2)


def test_each_scheduled_time_fires_once() -> None:
    clock = hourly()
    assert clock.tick(at(1), running=False) == [Fire(at(1))]
    assert clock.tick(at(1, seconds=1), running=False) == []
    assert clock.tick(at(2), running=False) == [Fire(at(2))]


def test_a_run_still_going_when_the_next_is_due_skips_it() -> None:
    clock = hourly()
    assert clock.tick(at(1), running=False) == [Fire(at(1))]
    assert clock.tick(at(2), running=True) == [Skip(at(2))]
    assert clock.wake == at(3)  # the next is tried as usual
    assert clock.tick(at(3), running=False) == [Fire(at(3))]


def test_runner_down_within_grace_catches_up_once() -> None:
    """Down from 00:30 to 03:10 with 15 minutes of grace: 03:00 runs late, once, as the
    catch-up; 01:00 and 02:00 are recorded as missed, in one record."""
    clock = hourly()
    assert clock.start(at(3, minutes=10)) == [
        Missed(first=at(1), last=at(2), count=2),
        Fire(at(3), catch_up=True),
    ]
    assert clock.cursor == at(3)
    assert clock.wake == at(4)


def test_one_missed_fire_within_grace_is_just_the_catch_up() -> None:
    clock = hourly()
    assert clock.start(at(1, minutes=14)) == [Fire(at(1), catch_up=True)]


def test_runner_down_past_grace_records_missed_and_runs_nothing() -> None:
    clock = hourly()
    assert clock.start(at(3, minutes=16)) == [Missed(first=at(1), last=at(3), count=3)]
    assert clock.cursor == at(3)
    assert clock.wake == at(4)
    assert clock.tick(at(4), running=False) == [Fire(at(4))]


def test_exactly_grace_late_still_runs() -> None:
    clock = hourly(grace=timedelta(minutes=15))
    assert clock.start(at(1, minutes=15)) == [Fire(at(1), catch_up=True)]


def test_a_long_downtime_is_one_record() -> None:
    """A 1-second Period down for a day: one Missed record, not 86,399, and the catch-up."""
    clock = JobClock(Period(seconds=1), cursor=T0, grace=timedelta(seconds=5))
    actions = clock.start(at(24, seconds=0.5))
    assert actions == [
        Missed(first=at(seconds=1), last=at(23, 59, 59), count=86_399),
        Fire(at(24), catch_up=True),
    ]


def test_a_catch_up_while_the_last_run_is_going_is_skipped() -> None:
    """A run cut off by the crash is already marked interrupted; a run still going (another
    replica's, a slow stop) makes the catch-up a skip like any overlap."""
    clock = hourly()
    assert clock.start(at(2, minutes=5), running=True) == [
        Missed(first=at(1), last=at(1), count=1),
        Skip(at(2)),
    ]


def test_a_stalled_loop_is_treated_as_downtime() -> None:
    """The driver woke up late (a laptop asleep): late past grace, the time is missed."""
    clock = hourly()
    assert clock.tick(at(1, minutes=30), running=False) == [Missed(at(1), at(1), 1)]
    assert clock.tick(at(2), running=False) == [Fire(at(2))]


def test_nothing_due_at_start_up_does_nothing() -> None:
    clock = hourly()
    clock.tick(at(1), running=False)
    assert clock.start(at(1, minutes=30)) == []
    assert clock.wake == at(2)


def test_resume_forgets_the_time_paused() -> None:
    clock = hourly()
    assert clock.tick(at(1), running=False) == [Fire(at(1))]
    assert clock.resume(at(5, minutes=30)) == []
    assert clock.wake == at(6)
    assert clock.tick(at(6), running=False) == [Fire(at(6))]


def test_a_period_fires_one_period_after_each_scheduled_time_without_drift() -> None:
    clock = JobClock(Period(minutes=10), cursor=T0)
    assert clock.tick(at(minutes=10, seconds=3), running=False) == [Fire(at(minutes=10))]
    assert clock.wake == at(minutes=20)  # not 20:03: a late run does not push the next one


def test_the_wake_time_of_a_cron_job_is_in_its_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    clock = JobClock(Cron("0 2 * * *", "Europe/Berlin"), cursor=T0)
    assert clock.wake.isoformat() == "2026-01-01T02:00:00+01:00"
    assert clock.tick(datetime(2026, 1, 1, 2, tzinfo=berlin), running=False) == [
        Fire(datetime(2026, 1, 1, 2, tzinfo=berlin))
    ]


def test_the_fall_back_day_fires_a_daily_job_once() -> None:
    """Berlin, 25 Oct 2026: 02:30 happens twice; the job fires at the first, and ticks through
    the repeated hour (which compare equal as wall-clock times) fire nothing more."""
    zone = ZoneInfo("Europe/Berlin")
    clock = JobClock(
        Cron("30 2 * * *", "Europe/Berlin"), cursor=datetime(2026, 10, 25, tzinfo=zone)
    )
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET, an hour later
    (fire,) = clock.tick(first, running=False)
    assert isinstance(fire, Fire) and fire.scheduled.isoformat() == "2026-10-25T02:30:00+02:00"
    assert clock.tick(second, running=False) == []
    assert clock.wake.isoformat() == "2026-10-26T02:30:00+01:00"


def test_the_spring_forward_day_fires_a_daily_job_once_after_the_jump() -> None:
    zone = ZoneInfo("America/New_York")
    clock = JobClock(
        Cron("30 2 * * *", "America/New_York"), cursor=datetime(2026, 3, 8, tzinfo=zone)
    )
    assert clock.wake.isoformat() == "2026-03-08T03:00:00-04:00"
    actions = clock.tick(datetime(2026, 3, 8, 7, tzinfo=UTC), running=False)  # 03:00 EDT
    assert [type(a).__name__ for a in actions] == ["Fire"]
    assert clock.wake.isoformat() == "2026-03-09T02:30:00-04:00"


def test_a_naive_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        JobClock(Period(hours=1), cursor=datetime(2026, 1, 1))
