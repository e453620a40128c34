"""The CLI's shared helpers: the table-or-JSON printer, the byte formatter, the duration and
size parsers, the runner options; and the ``%remote`` subcommands' parsing."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbremote.cli._options import DURATION, SIZE, runner_options
from nbremote.cli._utils import (
    display_table,
    format_bytes,
    parse_duration,
    parse_size,
    render_table,
)


@pytest.mark.parametrize(
    ("nbytes", "shown"),
    [
        (None, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (8000, "7.8 KiB"),
        (3 * 2**29, "1.5 GiB"),
        (80 * 2**30, "80.0 GiB"),
        (2**40, "1.0 TiB"),
        (5 * 2**50, "5120.0 TiB"),  # the largest unit keeps counting
    ],
)
def test_format_bytes(nbytes: int | None, shown: str) -> None:
    assert format_bytes(nbytes) == shown


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ("90s", 90.0), ("15m", 900.0), ("12h", 43200.0), ("7d", 604800.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "ten", "7 days"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected a duration: 90s, 15m, 12h, 7d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [(1234, 1234), ("1234", 1234), ("500M", 500 * 2**20), ("20g", 20 * 2**30), ("1.5K", 1536)],
)
def test_parse_size(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "M", "-1", "-5G", "12Q", "big"])
def test_parse_size_refuses_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size like 500M or 20G"):
        parse_size(text)


def test_click_types_report_the_bad_value_as_a_usage_error() -> None:
    @click.command()
    @click.option("--keep", type=SIZE)
    @click.option("--older-than", type=DURATION)
    def prune(keep: int | None, older_than: float | None) -> None:
        click.echo(f"{keep} {older_than}")

    assert CliRunner().invoke(prune, ["--keep", "2K", "--older-than", "1m"]).output == "2048 60.0\n"
    failed = CliRunner().invoke(prune, ["--older-than", "soon"])
    assert failed.exit_code == 2 and "'soon': expected a duration" in failed.output


def test_a_table_has_a_header_row_and_aligned_columns() -> None:
    text = render_table(
        ["NAME", "SIZE", "KEYS"],
        [["api", "1.0 KiB", "A, B"], ["a-longer-name", "12 B", ""]],
        right={"SIZE"},
    )
    assert text.splitlines() == [
        "NAME              SIZE  KEYS",
        "api            1.0 KiB  A, B",
        "a-longer-name     12 B",
    ]


def test_a_plain_table_shows_cells_as_they_are_on_one_line() -> None:
    # Markup, emoji codes and long cells are data: a pipe gets them verbatim, never wrapped.
    long_path = "/data/" + "x" * 400 + ".bin"
    text = render_table(["NAME", "PATH"], [["[bold]v[/bold] :smile:", long_path]])
    lines = text.splitlines()
    assert len(lines) == 2 and "\x1b" not in text
    assert lines[1].startswith("[bold]v[/bold] :smile:") and lines[1].endswith(long_path)


def test_a_terminal_table_is_bold_headed() -> None:
    assert "\x1b[1m" in render_table(["NAME"], [["a"]], terminal=True, width=80)


def test_display_table_prints_the_document_with_json() -> None:
    document = [{"name": "models", "size": 7, "nested": {"a": [1, 2]}}]
    out = io.StringIO()
    display_table(["NAME"], [["models"]], document, True, empty="no volumes", file=out)
    assert json.loads(out.getvalue()) == document  # one document, the whole of stdout
    assert out.getvalue() == json.dumps(document, indent=2) + "\n"


def test_display_table_says_when_there_is_nothing_to_list() -> None:
    out = io.StringIO()
    display_table(["NAME"], [], [], False, empty="no volumes", file=out)
    assert out.getvalue() == "no volumes\n"
    out = io.StringIO()
    display_table(["NAME"], [], [], False, empty=None, file=out)
    assert out.getvalue() == ""
    out = io.StringIO()
    display_table(["NAME"], [], [], True, empty="no volumes", file=out)
    assert out.getvalue() == "[]\n"


def test_runner_options_add_url_and_token_and_warn_about_ps() -> None:
    @click.command()
    @runner_options
    def show(url: str | None, token: str | None) -> None:
        click.echo(f"{url} {token}")

    assert CliRunner().invoke(show, ["--url", "u", "--token", "t"]).output == "u t\n"
    shown = " ".join(CliRunner().invoke(show, ["--help"]).output.split())
    assert "prefer NBREMOTE_URL" in shown and "prefer NBREMOTE_TOKEN" in shown
    assert "visible in `ps`" in shown


def test_the_kernel_formats_bytes_without_loading_the_cli() -> None:
    code = (
        "import sys, nbremote.magics, nbremote.cli._utils;"
        "print(sorted({'click', 'rich', 'nbremote.cli._main'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_command_is_reachable_from_python_m_nbremote() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nbremote", "--help"], capture_output=True, text=True, check=True
    )
    commands = result.stdout.split("Commands:")[1].split()
    for name in ("apps", "demo", "deploy", "gpus", "images", "run", "runner", "secrets"):
        assert name in commands
    assert "status" in commands and "volumes" in commands


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", r"%remote takes one of: connect, status, pull, push, reset"),
        ("bogus", r"%remote takes one of"),
        ("connect", r"required: URL; usage: %remote connect \[--token TOKEN\] URL"),
        ("connect --token t", r"required: URL"),
        ("connect http://x --token", r"argument --token: expected one argument"),
        ("pull", r"required: NAME; usage: %remote pull \[--job JOB\] NAME \[NAME ...\]"),
        ("push", r"required: NAME; usage: %remote push NAME"),
        ("status now", r"unrecognized arguments: now; usage: %remote status"),
        ("reset all", r"unrecognized arguments: all"),
    ],
)
def test_remote_subcommands_refuse_bad_input_with_usage_errors(
    ipython: InteractiveShell, line: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ipython.run_line_magic("remote", line)
