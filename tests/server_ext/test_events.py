"""The live events of the panel (server-sent events): everything at once, then only changes.

A real Jupyter server for the shared runner; a job promoted from a real IPython shell while the
stream is open shows up on it without the browser asking again.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import RunningRunner
from tests.server_ext.jupyter import TOKEN, Jupyter, running_jupyter


@pytest.fixture(scope="module")
def jupyter(runner: RunningRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    with running_jupyter(tmp_path_factory.mktemp("jupyter"), env) as server:
        yield server


class EventStream:
    """``GET /nbremote/api/events`` read as a browser's EventSource reads it."""

    def __init__(self, jupyter: Jupyter) -> None:
        url = urlsplit(jupyter.url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.conn.request(
            "GET", "/nbremote/api/events", headers={"Authorization": f"token {TOKEN}"}
        )
        self.response = self.conn.getresponse()

    def next(self) -> tuple[str, Any]:
        """The next event's name and data (comments and ``retry`` skipped)."""
        name, data = "", ""
        while True:
            line = self.response.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif line == "" and name:
                return name, json.loads(data)

    def close(self) -> None:
        self.conn.close()


def test_the_stream_sends_the_state_then_each_change_once(
    jupyter: Jupyter, shell: InteractiveShell
) -> None:
    stream = EventStream(jupyter)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream"
        first: dict[str, Any] = {}
        while len(first) < 5:  # every topic, at once
            name, data = stream.next()
            assert name not in first
            first[name] = data
        assert set(first) == {"status", "jobs", "endpoints", "gpus", "sessions"}
        assert first["status"]["connected"] is True
        assert "t-ext-live" not in json.dumps(first["jobs"])

        promote = "--schedule 'every 1h' --name t-ext-live"
        shell.run_cell_magic("remote", promote, "y = 2\n")
        seen = {name: json.dumps(data, sort_keys=True) for name, data in first.items()}
        while True:
            name, data = stream.next()
            text = json.dumps(data, sort_keys=True)
            assert seen[name] != text, f"{name} was sent again unchanged"
            seen[name] = text
            if name == "jobs" and any(j["name"] == "t-ext-live" for j in data["jobs"]):
                break
    finally:
        stream.close()
        jupyter.fetch("/nbremote/api/jobs/t-ext-live", "DELETE")


def test_two_tabs_get_the_same_events(jupyter: Jupyter) -> None:
    tabs = [EventStream(jupyter), EventStream(jupyter)]
    try:
        for tab in tabs:
            names = {tab.next()[0] for _ in range(5)}
            assert names == {"status", "jobs", "endpoints", "gpus", "sessions"}
    finally:
        for tab in tabs:
            tab.close()
