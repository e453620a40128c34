"""Modal's isolation flags, honoured by the process backend: ``block_network=True`` (a network of
its own with only a loopback), ``single_use_containers=True`` (a fresh worker per input) and
``restrict_modal_access=True`` (its code cannot reach the runner). Each test runs the same code
without the flag too, so that it fails where the flag is ignored."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from nbremote_runner.backends.sandbox import unavailable

import nbremote as nr
from nbremote._session import RemoteSession
from nbremote.errors import RemoteError
from tests.conftest import RunningRunner, run_python

app = nr.App("test-isolation-flags")


def _host_address() -> str | None:
    """A non-loopback address of this machine (where the runner could also be reached)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def reach(targets: list[tuple[str, int]]) -> dict[str, Any]:
    """What the code sees of the network: its interfaces, and which targets it can connect to."""
    import socket

    reached = {}
    for host, port in targets:
        try:
            socket.create_connection((host, port), timeout=3).close()
            reached[f"{host}:{port}"] = True
        except OSError:
            reached[f"{host}:{port}"] = False
    interfaces = sorted(name for _, name in socket.if_nameindex())
    return {"reached": reached, "interfaces": interfaces, "sum": 2 + 2}


open_reach = app.function(reach)
blocked_reach = app.function(block_network=True)(reach)


@pytest.mark.skipif(unavailable() is not None, reason=f"no sandbox here: {unavailable()}")
def test_block_network_leaves_only_a_loopback(
    remote_session: RemoteSession, runner: RunningRunner
) -> None:
    url = urlsplit(runner.url)
    assert url.hostname is not None and url.port is not None
    targets = [(url.hostname, url.port)]
    host = _host_address()
    if host is not None:
        with socket.socket() as listener:  # a server of the host, on a non-loopback address
            listener.bind((host, 0))
            listener.listen(4)
            targets.append((host, listener.getsockname()[1]))
            seen_open = open_reach.remote(targets)
            seen_blocked = blocked_reach.remote(targets)
    else:
        seen_open, seen_blocked = open_reach.remote(targets), blocked_reach.remote(targets)
    assert all(seen_open["reached"].values())  # without the flag, every target answers
    assert not any(seen_blocked["reached"].values())
    assert seen_blocked["interfaces"] == ["lo"]
    assert seen_blocked["sum"] == 4  # and the function still works


def which_worker() -> tuple[str, int]:
    """The worker that runs it, and how many calls its module state has seen."""
    import os
    import sys

    calls = getattr(sys, "_nbremote_test_calls", 0) + 1
    sys._nbremote_test_calls = calls  # type: ignore[attr-defined]
    return os.environ["NBREMOTE_TASK_ID"], calls


warm_worker = app.function(which_worker)
single_use_worker = app.function(single_use_containers=True)(which_worker)


def test_single_use_containers_give_each_input_a_fresh_worker(
    remote_session: RemoteSession,
) -> None:
    first, second = warm_worker.remote(), warm_worker.remote()
    assert first[0] == second[0] and second[1] == first[1] + 1  # warm: one worker, its state

    seen = [single_use_worker.remote(), single_use_worker.remote()]
    seen += list(single_use_worker.starmap([(), (), ()]))
    assert len({worker for worker, _ in seen}) == len(seen) == 5
    assert {calls for _, calls in seen} == {1}


def use_the_runner(name: str) -> dict[str, Any]:
    """What a function can see and do of the runner: its environment, and a Dict."""
    import os

    import nbremote as nr

    seen: dict[str, Any] = {"env": dict(os.environ)}
    store = nr.Dict.from_name(name, create_if_missing=True)
    store["key"] = "written"
    seen["read"] = store["key"]
    return seen


open_access = app.function(use_the_runner)
restricted = app.function(restrict_modal_access=True)(use_the_runner)


def test_restrict_modal_access_keeps_the_code_from_the_runner(
    remote_session: RemoteSession,
) -> None:
    assert open_access.remote("nbr-flags-open")["read"] == "written"
    with pytest.raises(RemoteError, match="restrict_modal_access=True") as caught:
        restricted.remote("nbr-flags-restricted")
    assert "nr.Dict" in str(caught.value)
    assert not nr.Dict.from_name("nbr-flags-restricted", create_if_missing=True).contains("key")


@app.function(restrict_modal_access=True)
def environment() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_restricted_code_holds_no_runner_address_or_token(
    remote_session: RemoteSession, runner: RunningRunner
) -> None:
    env = environment.remote()
    assert not {"NBREMOTE_URL", "NBREMOTE_TOKEN"} & set(env)
    assert runner.token is not None
    assert not [key for key, value in env.items() if runner.token in value]
    assert not [key for key, value in env.items() if runner.url in value]


# Modal's guide (LLM Code Execution), as written there but for the import and the app.
GUIDE_UNTRUSTED = """
import nbremote as modal

app = modal.App("untrusted")


@app.function(
    restrict_modal_access=True,  # Security: restrict Modal API access
    single_use_containers=True,   # Fresh container per request
    timeout=30,
    block_network=True,           # No network access
)
def run_untrusted_code(code: str):
    try:
        exec_globals = {}
        exec(code, exec_globals)
        return exec_globals.get("result")
    except Exception as e:
        return f"Error: {e}"


print(run_untrusted_code.remote("result = 6 * 7"))
print(run_untrusted_code.remote("import socket; socket.create_connection(('1.1.1.1', 53), 3)"))
"""


@pytest.mark.skipif(unavailable() is not None, reason=f"no sandbox here: {unavailable()}")
def test_modals_untrusted_code_example_runs_as_a_script(
    runner: RunningRunner, tmp_path: Path
) -> None:
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    answer, refused = run_python(GUIDE_UNTRUSTED, tmp_path, env).splitlines()
    assert answer == "42"
    assert refused.startswith("Error: [Errno")  # no route: only a loopback in there
