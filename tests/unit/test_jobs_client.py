"""The client side of scheduled jobs, without a runner: what is checked before anything is sent
(schedules, zones, names, settings, ``-p`` values), how fire times are shown, and the
``promote`` request a cell makes (its exec header, every input by hash, no buffers)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, exec_request
from nbremote._client import RunnerClient
from nbremote._options import function_options, options_from, settings_of
from nbremote._promote import parse_schedule, promote_request, scheduled_lines
from nbremote.cli._main import main
from nbremote.cli.job import parse_param
from nbremote.errors import RunnerError, RunnerUnavailable
from nbremote.job import Job, format_fire, job_row, read_frame
from nbremote.wire.codec import encode_prefix
from nbremote.wire.jobs import DescribeJob, DescribeJobRun, JobSettings
from nbremote.wire.ops import Op
from nbremote.wire.serialize import content_hash
from tests.conftest import clean_shell

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, any request fails


@pytest.fixture
def offline_shell(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """A shell whose session points at no runner: a request would raise RunnerUnavailable, so a
    UsageError proves the input was refused before anything was sent."""
    _session._current = _session.RemoteSession(RunnerClient(UNREACHABLE, None))
    yield clean_shell(ipython)
    _session._current = None


# -- --schedule SPEC ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "period"),
    [
        ("every 30s", nr.Period(seconds=30)),
        ("every 10m", nr.Period(minutes=10)),
        ("every 2h", nr.Period(hours=2)),
        ("every 1d", nr.Period(days=1)),
        ("'every 1.5 h'", nr.Period(hours=1.5)),
    ],
)
def test_every_is_a_period(spec: str, period: nr.Period) -> None:
    schedule = parse_schedule(spec)
    assert isinstance(schedule, nr.Period) and schedule.length == period.length


def test_a_cron_is_read_in_its_zone() -> None:
    cron = parse_schedule("0 2 * * *", "Europe/Berlin")
    assert cron == nr.Cron("0 2 * * *", timezone="Europe/Berlin")
    assert parse_schedule("@daily") == nr.Cron("@daily", timezone="UTC")


@pytest.mark.parametrize(
    ("spec", "tz", "message"),
    [
        ("61 2 * * *", None, "minute 61 is out of 0\N{EN DASH}59"),
        ("0 2 * * * *", None, "has 6 fields"),
        ("0 2 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("every 10x", None, "a period is every N with s, m, h or d"),
        ("every 10m", "Europe/Berlin", "--tz Europe/Berlin applies to a cron schedule"),
    ],
)
def test_a_bad_schedule_names_the_culprit(spec: str, tz: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(spec, tz)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '--schedule "61 2 * * *" --name nightly',
            "--schedule: cron '61 2 \\* \\* \\*': minute 61",
        ),
        ("--schedule @daily", "--schedule needs --name N"),
        ("--schedule @daily --name 'bad name'", "--name 'bad name': a job's name is letters"),
        ("--schedule @daily --name n --tz Nowhere/City", "unknown time zone 'Nowhere/City'"),
        ("--schedule @daily --name n --retries 11", "--retries Input should be less than or"),
        ("--schedule @daily --name n --notify ftp://x", "--notify String should match"),
        ("--tz UTC", "--tz only go with --schedule SPEC --name N"),
        ("--name n", "--name only go with --schedule"),
    ],
)
def test_the_magic_refuses_bad_job_flags_before_sending(
    offline_shell: InteractiveShell, line: str, message: str
) -> None:
    offline_shell.user_ns["x"] = 1
    with pytest.raises(UsageError, match=message):
        offline_shell.run_cell_magic("remote", line, "y = x + 1")
    assert "y" not in offline_shell.user_ns


def test_a_good_job_line_is_sent(offline_shell: InteractiveShell) -> None:
    # What makes the refusals above count: a line that passes is sent (here, to no runner).
    offline_shell.user_ns["x"] = 1
    with pytest.raises(RunnerUnavailable, match="cannot reach the runner"):
        offline_shell.run_cell_magic("remote", "--schedule 'every 10m' --name n", "y = x + 1")
    assert "y" not in offline_shell.user_ns


# -- the promote request -----------------------------------------------------------------------

SETTINGS = JobSettings(name="nightly", schedule=nr.Cron("0 2 * * *").wire())


def test_a_promotion_sends_the_cells_exec_with_every_input_by_hash_and_no_buffers() -> None:
    weights = np.arange(1000.0)
    namespace: dict[str, Any] = {"weights": weights, "labels": ["a", "b"], "np": np}
    code = "total = float(np.sum(weights)) + len(labels)"
    request = promote_request(code, namespace, CellOptions(), SETTINGS)

    header = request.header
    assert header["op"] == Op.PROMOTE and header["job"] == SETTINGS.model_dump()
    assert list(request.buffers) == []
    cell = header["cell"]
    items = {item["name"]: item for item in cell["inputs"]}
    assert items["np"] == {"name": "np", "module": "numpy"}
    for name in ("weights", "labels"):
        assert items[name]["nbuf"] == 0 and items[name]["hash"]
    # The same exec a cell would send, but for the buffers it would carry.
    ran = exec_request(code, namespace, CellOptions(), lambda key: set())
    assert {k: v for k, v in ran.header.items() if k != "inputs"} == {
        k: v for k, v in cell.items() if k != "inputs"
    }
    assert [i["hash"] for i in ran.header["inputs"] if "hash" in i] == [
        items[n]["hash"] for n in ("weights", "labels")
    ]
    # A need for them is answered with their bytes, which hash to what the header says.
    assert request.packed is not None
    blobs, buffers = request.packed.blobs([items["weights"]["hash"]])
    assert blobs["items"][0]["hash"] == content_hash(buffers)
    assert namespace["weights"] is weights and set(namespace) == {"weights", "labels", "np"}


def test_the_exec_carries_the_cells_worker_settings() -> None:
    options = CellOptions(env={"MODE": "nightly"}, timeout=60.0)
    cell = promote_request("y = 1", {}, options, SETTINGS).header["cell"]
    assert cell["spec"]["env"] == {"MODE": "nightly"} and cell["timeout"] == 60.0
    assert cell["outputs"] == ["y"] and cell["inputs"] == []


# -- how times and jobs are shown --------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)


def test_fire_times_are_shown_in_the_jobs_zone() -> None:
    winter = datetime.fromisoformat("2026-01-10T02:00:00+01:00")
    summer = datetime.fromisoformat("2026-07-10T02:00:00+02:00")
    assert format_fire(winter, BERLIN, NOW) == "Sat 2026-01-10 02:00 CET (in 1 h)"
    assert format_fire(summer, BERLIN) == "Fri 2026-07-10 02:00 CEST"
    assert format_fire(winter, ZoneInfo("UTC")) == "Sat 2026-01-10 01:00 UTC"


def test_seconds_show_only_when_a_fire_has_them() -> None:
    fire = datetime(2026, 1, 10, 0, 0, 30, tzinfo=UTC)
    assert format_fire(fire, ZoneInfo("UTC"), NOW) == "Sat 2026-01-10 00:00:30 UTC (in 30 s)"


def _described(**fields: Any) -> DescribeJob:
    cron = nr.Cron("0 2 * * *", timezone="Europe/Berlin")
    fires = [t.isoformat() for t in cron.next_fires(NOW, 3)]
    values: dict[str, Any] = {
        "name": "nightly",
        "kind": "cell",
        "version": 1,
        "settings": JobSettings(name="nightly", schedule=cron.wire()),
        "schedule": "0 2 * * * (Europe/Berlin)",
        "paused": False,
        "created_at": 0.0,
        "updated_at": 0.0,
        "next_fires": fires,
    }
    return DescribeJob(**values | fields)


def test_a_promotion_prints_the_job_and_its_next_three_fires() -> None:
    assert list(scheduled_lines(_described(), NOW)) == [
        "Scheduled job 'nightly' (version 1): 0 2 * * * (Europe/Berlin)",
        "  next fires  Sat 2026-01-10 02:00 CET (in 1 h)",
        "              Sun 2026-01-11 02:00 CET (in 1 d)",
        "              Mon 2026-01-12 02:00 CET (in 2 d)",
    ]


def test_a_jobs_row_says_when_it_fires_and_how_it_last_ran() -> None:
    assert job_row(_described(), NOW) == [
        "nightly",
        "0 2 * * * (Europe/Berlin)",
        "Sat 2026-01-10 02:00 CET (in 1 h)",
        "never",
        "no",
    ]
    last = DescribeJobRun(
        id="r", job="nightly", number=3, version=1, status="failed", trigger="manual"
    )
    assert job_row(_described(paused=True, last_run=last), NOW)[2:] == ["-", "#3 failed", "yes"]


# -- -p NAME=VALUE -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("lr=0.01", ("lr", 0.01)),
        ("epochs=3", ("epochs", 3)),
        ("fast=true", ("fast", True)),
        ("sizes=[1, 2]", ("sizes", [1, 2])),
        ('who="bob"', ("who", "bob")),
        ("who=alice", ("who", "alice")),
        ("empty=", ("empty", "")),
        ("eq=a=b", ("eq", "a=b")),
    ],
)
def test_a_param_is_json_when_it_is_json_else_a_string(text: str, pair: tuple[str, Any]) -> None:
    assert parse_param(text) == pair


def test_a_param_without_a_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(
        main, ["jobs", "run", "nightly", "-p", "0.01", "--url", UNREACHABLE]
    )
    assert result.exit_code == 2
    assert "'0.01' is not NAME=VALUE" in result.output


def test_a_run_parameter_must_be_json() -> None:
    job = Job("nightly", client=RunnerClient(UNREACHABLE, None))
    with pytest.raises(TypeError, match=r"Job.run\(model=...\): a parameter travels as JSON"):
        job.run(model=object())


def test_logs_take_a_run_number_or_last() -> None:
    result = CliRunner().invoke(main, ["jobs", "logs", "nightly", "first", "--url", UNREACHABLE])
    assert result.exit_code == 2 and "a run's number, or 'last'" in result.output


# -- a run's outputs: one frame ------------------------------------------------------------------


def test_outputs_are_read_from_one_frame_whatever_its_chunks() -> None:
    header = {"op": "done", "id": "r", "ok": True, "outputs": [{"name": "x", "nbuf": 2}]}
    buffers = [b"a" * 300_000, b"bc"]
    body = encode_prefix(header, buffers) + b"".join(buffers)
    chunks = iter([body[i : i + 7001] for i in range(0, len(body), 7001)])
    read, parts = read_frame(chunks)
    assert read == header and [bytes(p) for p in parts] == buffers
    with pytest.raises(RunnerError, match="not one whole frame"):
        read_frame(iter([body[:-1]]))


# -- schedule= on functions --------------------------------------------------------------------


def test_schedule_takes_a_cron_or_a_period_and_deploys_as_its_wire_form() -> None:
    with pytest.raises(TypeError, match=r"schedule= takes nr\.Cron"):
        function_options({"schedule": "0 2 * * *"}, "@app.function on f")
    options = function_options({"schedule": nr.Period(hours=1)}, "@app.function on f")
    settings = settings_of(options)
    assert settings["schedule"] == nr.Period(hours=1).wire()
    assert options_from(settings | {"job": "app.f"}).schedule == nr.Period(hours=1)
    assert "schedule" not in settings_of(function_options({}, "@app.function on g"))


def test_f_schedule_checks_its_arguments_before_deploying() -> None:
    app = nr.App("jobs-unit")

    @app.function
    def report() -> int:
        return 1

    with pytest.raises(TypeError, match=r"report.schedule\(\) takes nr.Cron"):
        report.schedule("@daily")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name='no spaces please'"):
        report.schedule(nr.Cron("@daily"), name="no spaces please")


def test_a_class_with_a_schedule_is_refused_with_the_way_out() -> None:
    app = nr.App("sched-cls")
    with pytest.raises(TypeError, match=r"@sched-cls.cls on .*Model: schedule= is for functions"):

        @app.cls(schedule=nr.Period(hours=1))
        class Model:
            @nr.method()
            def run(self) -> int:
                return 1

    assert "Model" not in app.registered_classes
