"""A kernel's way back to its runner after the runner went away (stopped, idled out, restarted).

The kernel keeps one frame channel open to its runner. When the runner goes, the OS closes that
socket, and the kernel only learns of it at its next request. So, before each request:

* `alive` looks at the idle channel without blocking (one ``poll``): a channel the runner closed
  is replaced before anything is sent on it, so no request is lost to it and none is sent twice.
* `recover` finds the runner again (the embedded one is found, or started anew, by the client's
  ``find_runner``; a standalone one is asked at the same URL) and asks it for this kernel's
  session. A session it still has (the connection broke, the runner did not) is simply re-opened;
  one it lost (it restarted) is replaced by a new one, and the kernel says so in one line: the
  remote namespace is gone. The notebook's own values go again, as the new worker asks for them.

A request whose channel broke while it was being sent never ran (the runner takes whole frames
only) and is sent once more on a new channel (`NotSent`). One whose channel broke after it was
sent may have run, or be running still: it is not sent again, and fails in one line
(`connection_errors`), the next request reconnecting.
"""

from __future__ import annotations

import select
import ssl
import sys
import uuid
from collections import deque
from types import TracebackType
from typing import Any, Protocol

from ._client import Channel, RunnerClient
from .errors import RunnerError, RunnerUnavailable
from .wire.http import DescribeSession


class _Leases(Protocol):
    """What of `nbremote._direct.Leases` a reconnection touches (that module imports this one)."""

    def end_all(self) -> None: ...


class RemoteSession(Protocol):
    """What of `nbremote._session.RemoteSession` a reconnection touches (that module imports
    this one)."""

    client: RunnerClient
    id: str
    sent_functions: set[str]
    _channel: Channel | None
    _held: dict[str, tuple[str, set[str]]]
    _pending: dict[str, Any]
    _stash: dict[str, deque[Any]]

    @property
    def leases(self) -> _Leases: ...


class NotSent(ConnectionError):
    """A request's frame could not be sent: the runner never saw it, so it may go again."""


def alive(channel: Channel) -> bool:
    """Whether the runner still holds ``channel`` open; bytes that arrived meanwhile (a
    cancelled request's late frames) are kept for the reader."""
    if channel.broken:
        return False
    poller = select.poll()
    poller.register(channel.sock, select.POLLIN)
    if not poller.poll(0):
        return True  # nothing arrived: the usual case, one system call
    channel.sock.setblocking(False)
    try:
        data = channel.sock.recv(1 << 16)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True  # a TLS record not yet whole
    except OSError:
        data = b""  # reset
    finally:
        if not channel.broken:
            channel.sock.setblocking(True)
    if not data:
        channel.close()
        return False
    channel.reader.feed(data)
    return True


def recover(session: RemoteSession) -> None:
    """Get ready to re-open ``session`` after its channel broke: its runner is asked whether
    it still has the session; if it does not, the session starts anew, said in one line.

    Raises:
        RunnerUnavailable: the runner cannot be reached (still down); the next request tries
            again.
    """
    try:
        session.client.call("GET", f"/api/v1/sessions/{session.id}", response=DescribeSession)
        gone = False
    except RunnerError as exc:
        if exc.kind != "NotFound":
            raise
        gone = True
    if gone:
        forget_remote(session, uuid.uuid4().hex)
        print(
            f"nbremote: the runner at {session.client.url} restarted; the remote namespace is "
            "gone, a new worker starts",
            file=sys.stderr,
        )
        return
    # The same runner, and the session with its workers: only this side's connections go.
    drop_connections(session)


def forget_remote(session: RemoteSession, session_id: str) -> None:
    """Use the session ``session_id`` from now on: what this kernel knew of its old session's
    workers (channel, leases, held inputs, sent functions) no longer holds."""
    drop_connections(session)
    session.id = session_id
    session._held.clear()
    session.sent_functions.clear()


def drop_connections(session: RemoteSession) -> None:
    """Close this side's connections (leases, the channel); forget requests awaiting answers."""
    session.leases.end_all()
    if session._channel is not None:
        session._channel.close()
        session._channel = None
    session._pending.clear()
    session._stash.clear()


class connection_errors:
    """Turn a broken connection into one line: `RunnerUnavailable`, saying whether the request
    reached the runner. (A class, not a generator: a ``contextlib`` frame would show in the
    traceback the user sees.)"""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, ConnectionError | OSError):
            return
        url = self.session.client.url
        if isinstance(exc, NotSent):
            message = (
                f"lost the connection to the runner at {url} twice before the request could be "
                f"sent ({exc.__cause__ or exc}); is it running?"
            )
        else:
            message = (
                f"the runner at {url} went away while this ran ({exc}): whether it finished is "
                "unknown and nothing came back; the next request reconnects"
            )
        raise RunnerUnavailable(message) from exc
