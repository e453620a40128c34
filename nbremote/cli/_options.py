"""The options and parameter types commands share, and how a command reaches the runner."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .._config import resolve_runner
from ..errors import NbremoteError, RunnerError
from ._utils import parse_duration, parse_size

if TYPE_CHECKING:
    from .._client import RunnerClient

F = TypeVar("F", bound=Callable[..., Any])

_URL_HELP = "Runner URL (prefer NBREMOTE_URL) [else the embedded runner]."
_TOKEN_HELP = (
    "Runner token (prefer NBREMOTE_TOKEN: a token on the command line is visible in `ps`)."
)


class AliasGroup(click.Group):
    """A group that also answers to other spellings of its commands (Modal's: ``app list`` for
    ``apps ls``), without listing them twice in ``--help``.

    Args:
        aliases: spelling -> the name of the command it stands for.
    """

    def __init__(self, *args: Any, aliases: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.aliases:
            found = super().get_command(ctx, self.aliases[cmd_name])
        return found


def runner_options(command: F) -> F:
    """Add ``--url`` and ``--token``: which runner to talk to (else the environment's, else the
    embedded one), passed to the command as ``url`` and ``token``."""
    command = click.option("--token", help=_TOKEN_HELP)(command)
    return click.option("--url", help=_URL_HELP)(command)


def json_option(command: F) -> F:
    """Add ``--json`` (passed as ``as_json``): one JSON document on stdout instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")(
        command
    )


def runner_client(url: str | None, token: str | None) -> RunnerClient:
    """A client of the runner named by ``--url/--token``, the environment or the embedded one."""
    from .._client import RunnerClient

    return RunnerClient(*resolve_runner(url, token))


def connect(url: str | None, token: str | None) -> RunnerClient:
    """Make that runner this process's session (what `nr.Volume` and deploys talk to)."""
    from .. import _session

    return _session.connect(*resolve_runner(url, token)).client


@contextmanager
def usage_errors() -> Iterator[None]:
    """The runner's refusals and nbremote's own errors become usage errors: the message, with no
    traceback."""
    try:
        yield
    except RunnerError as exc:
        raise click.UsageError(exc.message) from None
    except NbremoteError as exc:
        raise click.UsageError(str(exc)) from None


def echo_until_done(texts: Callable[[], Iterable[str]]) -> None:
    """Print what ``texts()`` yields as it comes, until it ends or Ctrl-C (which ends a
    ``--follow``: no traceback); the runner's refusals as usage errors."""
    try:
        with usage_errors():
            for text in texts():
                click.echo(text, nl=False)
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def echo_stream(url: str | None, token: str | None, path: str) -> None:
    """Print the runner's text at ``path`` (a log) as it comes, as `echo_until_done` does."""
    echo_until_done(
        lambda: (chunk.decode(errors="replace") for chunk in runner_client(url, token).stream(path))
    )


class _Size(click.ParamType[int, Any]):
    """A size in bytes, or with a unit: 500M, 20G."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _Duration(click.ParamType[float, Any]):
    """A duration in seconds, or with a unit: 90s, 15m, 12h, 7d."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SIZE = _Size()
DURATION = _Duration()
