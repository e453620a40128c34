"""``%%remote --schedule``: a cell promoted to a scheduled job on the runner instead of run.

The job is the ``exec`` request the cell would send (`nbremote._cell.exec_request`), inside a
``promote`` frame with its `JobSettings`. Every input goes by hash: the runner asks with one
``need`` for those its job store lacks and gets them as ``blobs``, exactly as a worker would, so
an unchanged input is neither sent nor stored twice. Everything the user typed is checked here
first (the schedule, the zone, the name, the settings): bad input fails before anything is sent.
The cell's code is not run here, and the namespace is left as it is.
"""

from __future__ import annotations

import json
import re
from argparse import Namespace
from collections.abc import Callable, Container, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from ._cell import CellOptions, exec_request
from ._client import build
from ._session import RemoteSession, Request
from .errors import RunnerError
from .job import format_fire, zone_of
from .wire.codec import Header
from .wire.jobs import JOB_NAME, DescribeJob, JobSettings
from .wire.ops import Op
from .wire.schedule import Cron, Period, Schedule

F = TypeVar("F", bound=Callable[..., Any])

_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
PERIOD_FORM = "every N with s, m, h or d: 'every 30s', 'every 10m', 'every 2h', 'every 1d'"

_FLAGS = (
    argument(
        "--schedule",
        metavar="SPEC",
        help="promote the cell to a job instead of running it: a cron ('0 2 * * *'), an alias "
        "(@daily) or a period ('every 10m')",
    ),
    argument(
        "--endpoint",
        nargs="*",
        metavar="METHOD PATH",
        help="promote the cell to an HTTP endpoint instead of running it: it answers METHOD "
        "(POST) at PATH (/) with `response` or its last expression",
    ),
    argument("--public", action="store_true", help="with --endpoint: callers need no token"),
    argument("--name", metavar="N", help="the job's or endpoint's name"),
    argument("--tz", metavar="ZONE", help="the cron's time zone, e.g. Europe/Berlin (UTC)"),
    argument("--retries", type=int, metavar="N", help="try a failed run again N times (0-10)"),
    argument("--notify", metavar="URL", help="POST a JSON summary of each failed run to URL"),
    argument("--notify-on-success", action="store_true", help="with --notify: every run"),
)
_JOB_ONLY = ("tz", "retries", "notify", "notify_on_success")


def job_flags(func: F) -> F:
    """Add the promotion flags (``--schedule``, ``--endpoint``) to a magic's parser (under
    ``magic_arguments``)."""
    for flag in reversed(_FLAGS):
        func = flag(func)
    return func


def parse_schedule(spec: str, tz: str | None = None) -> Schedule:
    """A schedule from ``--schedule``: ``every 10m`` (a `Period`), else a cron or an alias read
    in ``tz`` (a `Cron`).

    Raises:
        ValueError: naming the bad field, value or zone, and the forms there are.

    Example:
        >>> parse_schedule("every 10m")
        Period(days=0, hours=0, minutes=10.0, seconds=0)
    """
    text = spec.strip().strip("'\"").strip()
    if text.lower().startswith("every"):
        match = _EVERY.match(text.lower())
        if match is None:
            raise ValueError(f"schedule {text!r}: a period is {PERIOD_FORM}")
        if tz is not None:
            raise ValueError(
                f"--tz {tz} applies to a cron schedule; a period ({text!r}) counts elapsed time"
            )
        number, unit = match.groups()
        return Period(**{_UNITS[unit]: float(number)})
    return Cron(text, timezone=tz.strip("'\"") if tz else "UTC")


def job_settings(args: Namespace) -> JobSettings | None:
    """The job of a ``%%remote`` line, checked; None: the line promotes nothing.

    Raises:
        UsageError: a bad schedule, zone, name or setting (naming it), ``--schedule`` without
            ``--name``, or a job flag without ``--schedule``.
    """
    if args.schedule is not None and args.endpoint is not None:
        raise UsageError(
            "--schedule and --endpoint promote a cell two ways: give one (two cells for both)"
        )
    if args.schedule is None:
        given = [f"--{flag.replace('_', '-')}" for flag in _JOB_ONLY if getattr(args, flag)]
        given += ["--name"] if args.name is not None and args.endpoint is None else []
        if given:
            raise UsageError(f"{', '.join(given)} only go with --schedule SPEC --name N")
        return None
    if args.name is None:
        raise UsageError(
            "--schedule needs --name N: the job's name, to find it again (nr.Job(N), "
            "`nbremote jobs show N`)"
        )
    name = args.name.strip("'\"")
    if not JOB_NAME.match(name):
        raise UsageError(
            f"--name {name!r}: a job's name is letters, digits, '_', '.' and '-', starting with "
            "a letter or digit, 64 characters at most"
        )
    try:
        schedule = parse_schedule(args.schedule, args.tz)
    except ValueError as exc:
        raise UsageError(f"--schedule: {exc}") from None
    fields = {
        "name": name,
        "schedule": schedule.wire(),
        "retries": args.retries if args.retries is not None else 0,
        "timeout": args.timeout,
        "notify": args.notify.strip("'\"") if args.notify else None,
        "notify_on_success": args.notify_on_success,
    }
    try:
        return build(JobSettings, **fields)
    except RunnerError as exc:  # "retries: Input should be less than or equal to 10"
        field, _, problem = exc.message.partition(": ")
        raise UsageError(f"--{field.replace('_', '-')} {problem}") from None


class _Everything:
    """Holds every hash: a promotion sends each input by hash, whatever a worker holds."""

    def __contains__(self, item: object) -> bool:
        return True


EVERYTHING: Container[str] = _Everything()


def promote_request(
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    settings: JobSettings,
    *,
    hidden: Container[str] = (),
) -> Request:
    """The ``promote`` request of a cell: its exec request with every input by hash and no
    buffers, and what the runner's ``need`` is answered from."""
    built = exec_request(code, namespace, options, lambda key: EVERYTHING, hidden=hidden)
    header: Header = {"op": Op.PROMOTE, "cell": built.header, "job": settings.model_dump()}
    return Request(header, (), built.packed, image=options.image)


def promote(session: RemoteSession, request: Request) -> DescribeJob:
    """Send a promotion and wait for the runner's answer: the job as stored.

    Raises:
        RunnerError: the runner refused it (its error's type and message).
    """
    done, _ = session.call(request, _no_output)
    if not done["ok"]:
        error = done.get("error") or {}
        raise RunnerError(error.get("ename", "PromotionFailed"), error.get("evalue", ""))
    data = json.dumps(done.get("job")).encode()
    return session.client.read(DescribeJob, data, "promote")


def promote_cell(
    session: RemoteSession,
    code: str,
    namespace: MutableMapping[str, Any],
    options: CellOptions,
    settings: JobSettings,
    *,
    hidden: Container[str] = (),
) -> DescribeJob:
    """Promote a cell and print what was scheduled, with its next fire times.

    Raises:
        UsageError: the runner refused it (the message says why).
        SerializationError: an input cannot be pickled (nothing was sent).
    """
    request = promote_request(code, namespace, options, settings, hidden=hidden)
    try:
        described = promote(session, request)
    except RunnerError as exc:
        raise UsageError(f"job {settings.name!r} was not scheduled: {exc.message}") from None
    print("\n".join(scheduled_lines(described, datetime.now(UTC))))
    return described


def _no_output(header: Header, buffers: list[bytearray]) -> None:
    """A promotion prints nothing while it is stored."""


def scheduled_lines(job: DescribeJob, now: datetime) -> Iterator[str]:
    """What the magic prints once a cell is promoted."""
    yield f"Scheduled job {job.name!r} (version {job.version}): {job.schedule}"
    zone = zone_of(job)
    for index, text in enumerate(job.next_fires[:3]):
        label = "next fires" if index == 0 else ""
        yield f"  {label:<10}  {format_fire(datetime.fromisoformat(text), zone, now)}"
