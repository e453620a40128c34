"""TLS: a runner reached over a network serves HTTPS, and every client path speaks it.

The runner gets a certificate for 127.0.0.1/localhost from a throwaway CA (trustme); clients
trust that CA through ``NBREMOTE_CA_BUNDLE``. "Another host" is simulated by giving this process
another boot id, so that nothing goes through shared memory or a leased worker's Unix socket and
every byte crosses the TLS connection, as it would to a runner on another machine.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trustme
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbremote_runner.service import RunnerConfig

import nbremote as nr
from nbremote import _session
from nbremote._client import RunnerClient
from nbremote.errors import RunnerUnavailable
from nbremote.wire import shm as _shm
from tests.conftest import TOKEN, RunningRunner, clean_shell, session_on, start_runner

app = nr.App("tls-tests")


@app.function
def checksum(data: bytes, repeat: int) -> tuple[int, bytes]:
    return sum(data[::4096]), data[:repeat] * 1024


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, Path, Path, Path]]:
    """A CA (its PEM file) and a certificate and key it issued for 127.0.0.1 and localhost."""
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    bundle, certfile, keyfile = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(bundle))
    issued.private_key_pem.write_to_path(str(keyfile))
    with certfile.open("wb") as file:
        for blob in issued.cert_chain_pems:
            file.write(blob.bytes())
    yield authority, bundle, certfile, keyfile


@pytest.fixture(scope="module")
def tls_runner(
    ca: tuple[trustme.CA, Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRunner]:
    """A runner serving HTTPS on 127.0.0.1 (its readiness checked over HTTPS)."""
    _, bundle, certfile, keyfile = ca
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBREMOTE_CA_BUNDLE", str(bundle))
        running = start_runner(
            tmp_path_factory.mktemp("runner"), TOKEN, "--certfile", str(certfile), "--keyfile",
            str(keyfile),
        )  # fmt: skip
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def trust_the_ca(ca: tuple[trustme.CA, Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBREMOTE_CA_BUNDLE", str(ca[1]))


@pytest.fixture(params=["another host", "same host"])
def tls_session(
    request: pytest.FixtureRequest, tls_runner: RunningRunner, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_session.RemoteSession]:
    """This process's session on the TLS runner, as if from another machine or from its own."""
    if request.param == "another host":
        monkeypatch.setattr(_shm, "host_id", lambda: "another-machine-boot-id")
    yield from session_on(tls_runner)


def test_health_and_api_answer_over_https(tls_runner: RunningRunner) -> None:
    assert tls_runner.url.startswith("https://127.0.0.1:")
    with tls_runner.client() as client:
        assert client.request("GET", "/api/v1/health")["version"] == nr.__version__
        assert client.request("GET", "/api/v1/runner")["backend"] == "process"


def test_nothing_answers_in_clear_text(tls_runner: RunningRunner) -> None:
    port = int(tls_runner.url.rsplit(":", 1)[1])
    with (
        RunnerClient(f"http://127.0.0.1:{port}", TOKEN) as client,
        pytest.raises(RunnerUnavailable),
    ):
        client.request("GET", "/api/v1/health")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert b"HTTP/1.1 200" not in answer
    assert b"version" not in answer


def test_a_client_that_does_not_trust_the_certificate_refuses_it(
    tls_runner: RunningRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NBREMOTE_CA_BUNDLE")  # the system CAs never signed the test CA
    with pytest.raises(RunnerUnavailable, match="NBREMOTE_CA_BUNDLE") as caught:
        _session.connect(tls_runner.url, tls_runner.token)
    assert "certificate" in str(caught.value)
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    monkeypatch.setenv("NBREMOTE_CA_BUNDLE", str(stranger))
    with pytest.raises(RunnerUnavailable, match="NBREMOTE_CA_BUNDLE"):
        RunnerClient(tls_runner.url, TOKEN).open_channel("nobody")
    monkeypatch.setenv("NBREMOTE_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(RunnerUnavailable, match=r"NBREMOTE_CA_BUNDLE=.*missing\.pem"):
        RunnerClient(tls_runner.url, TOKEN)


def test_https_to_a_plain_runner_says_so(runner: RunningRunner) -> None:
    with pytest.raises(RunnerUnavailable, match="serve https"):
        RunnerClient(runner.url.replace("http://", "https://"), TOKEN).request(
            "GET", "/api/v1/health"
        )


@pytest.fixture
def tls_shell(ipython: InteractiveShell, tls_session: _session.RemoteSession) -> InteractiveShell:
    return clean_shell(ipython)


def test_a_cell_ships_megabytes_and_streams_output_over_tls(
    tls_shell: InteractiveShell, tls_session: _session.RemoteSession
) -> None:
    data = np.random.default_rng(0).integers(0, 1000, size=1 << 20)  # 8 MiB each way
    tls_shell.user_ns.update(data=data)
    cell = (
        "total = int(data.sum())\n"
        "doubled = data * 2\n"
        "for i in range(2000):\n"
        "    print(f'line {i:05d}', 'x' * 200)\n"
    )
    with capture_output() as captured:
        tls_shell.run_cell_magic("remote", "", cell)
    assert tls_shell.user_ns["total"] == int(data.sum())
    assert np.array_equal(tls_shell.user_ns["doubled"], data * 2)
    lines = captured.stdout.splitlines()
    assert len(lines) == 2000 and lines[-1].startswith("line 01999")
    channel = tls_session._channel
    assert channel is not None and isinstance(channel.sock, ssl.SSLSocket)


def test_a_function_call_works_over_tls(
    tls_session: _session.RemoteSession, request: pytest.FixtureRequest
) -> None:
    payload = os.urandom(5 << 20)
    total, back = checksum.remote(payload, 1000)
    assert total == sum(payload[::4096])
    assert back == payload[:1000] * 1024
    assert [checksum.remote(b"\x01" * n, 1)[0] for n in (1, 4097, 8193)] == [1, 2, 3]
    if request.node.callspec.params["tls_session"] == "another host":
        # Everything crossed the TLS connection: no shared memory, no leased worker's socket.
        assert tls_session._channel is not None and tls_session._channel.shm_dir is None
        assert not tls_session.leases.by_pool


def test_cli_status_over_https(tls_runner: RunningRunner, ca: tuple[Any, Path, Path, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "nbremote", "status", "--url", tls_runner.url],
        env={**os.environ, "NBREMOTE_TOKEN": TOKEN, "NBREMOTE_CA_BUNDLE": str(ca[1])},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert tls_runner.url in result.stdout


def test_runner_config_wants_both_files_readable_and_warns_without_tls(
    ca: tuple[Any, Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bundle, certfile, keyfile = ca
    with pytest.raises(ValueError, match="both --certfile and --keyfile"):
        RunnerConfig(tmp_path, certfile=certfile).check()
    with pytest.raises(ValueError, match=r"cannot read --keyfile .*nope\.pem"):
        RunnerConfig(tmp_path, certfile=certfile, keyfile=tmp_path / "nope.pem").check()
    with pytest.raises(ValueError, match="its own private key"):
        RunnerConfig(tmp_path, certfile=certfile, keyfile=bundle).check()
    RunnerConfig(tmp_path, host="0.0.0.0", token=TOKEN, certfile=certfile, keyfile=keyfile).check()
    assert "WARNING" not in capsys.readouterr().err
    RunnerConfig(tmp_path, host="0.0.0.0", token=TOKEN).check()
    assert "without TLS" in capsys.readouterr().err


def test_remote_connect_magic_takes_an_https_url(
    ipython: InteractiveShell, tls_runner: RunningRunner
) -> None:
    try:
        with capture_output() as captured:
            ipython.run_line_magic("remote", f"connect {tls_runner.url} --token {TOKEN}")
            ipython.run_cell_magic("remote", "", "answer = 6 * 7")
        assert f"connected to {tls_runner.url}" in captured.stdout
        assert ipython.user_ns["answer"] == 42
    finally:
        session = _session.current_session()
        session.reset()
        session.close()
        _session._current = None


def test_an_endpoint_answers_over_https(
    tls_runner: RunningRunner, ca: tuple[Any, Path, Path, Path]
) -> None:
    """Over TLS an endpoint is served by tornado's front (the lean one takes plain HTTP only)."""
    from tests.integration.endpoints_helpers import deployed_object

    source = "def hello(name: str = 'you'):\n    return {'hello': name}\n"
    web = {"web": {"kind": "fastapi_endpoint"}}
    with tls_runner.client() as client:
        client.request(
            "PUT", "/api/v1/apps/tlsweb", {"objects": [deployed_object(source, "hello", web)]}
        )
        token = client.request("GET", "/api/v1/endpoints/tlsweb%2Fhello")["token"]
    try:
        port = int(tls_runner.url.rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(ca[1]))
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
        for name in ("a", "b"):  # twice on one connection
            headers = {"Authorization": f"Bearer {token}"}
            connection.request("GET", f"/endpoints/tlsweb/hello?name={name}", headers=headers)
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b'{"hello":"%s"}' % name.encode())
        connection.close()
    finally:
        with tls_runner.client() as client:
            client.request("DELETE", "/api/v1/apps/tlsweb")
