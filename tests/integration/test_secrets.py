"""Secrets on a real runner: injected in workers' environments, never shown, kept on restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session
from nbremote._options import settings_of
from tests.conftest import RunningRunner, start_runner

NAMED = "named-value-7f3a9c"  # values searched for in every answer, output and file
INLINE = "inline-value-2b8e41"
DOTENV = "dotenv-value-c05d17"
app = nr.App("secret-tests")


@app.function
def environment(*names: str) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def cli(runner: RunningRunner, *args: str) -> str:
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    result = subprocess.run(
        [sys.executable, "-m", "nbremote", *args], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_secrets_are_injected_and_never_shown(
    fresh_runner: RunningRunner, tmp_path: Path, ipython: InteractiveShell
) -> None:
    (tmp_path / ".env").write_text(f"# comment\nexport FROM_FILE='{DOTENV}'\n")
    outputs = [
        cli(fresh_runner, "secrets", "set", "api", f"API_KEY={NAMED}", "REGION=eu"),
        cli(fresh_runner, "secrets", "set", "files", "--from-dotenv", str(tmp_path / ".env")),
    ]
    session = _session.connect(fresh_runner.url, fresh_runner.token)
    try:
        named = environment.with_options(secrets=[nr.Secret.from_name("api")])
        assert named.remote("API_KEY", "REGION") == {"API_KEY": NAMED, "REGION": "eu"}
        inline = nr.Secret.from_dict({"TOKEN": INLINE})
        dotenv = nr.Secret.from_dotenv(tmp_path)
        both = environment.with_options(secrets=[inline, dotenv])
        assert both.remote("TOKEN", "FROM_FILE", "API_KEY") == {
            "TOKEN": INLINE,
            "FROM_FILE": DOTENV,
            "API_KEY": None,  # a container never holds a secret it was not asked for
        }
        assert environment.remote("API_KEY", "TOKEN") == {"API_KEY": None, "TOKEN": None}
        ipython.reset(new_session=False)
        ipython.user_ns["inline"] = inline
        ipython.run_cell_magic(
            "remote", "--secret api --secret inline", "import os; seen = os.environ['TOKEN']"
        )
        assert ipython.user_ns["seen"] == INLINE
        assert repr(inline) == "<nbremote.Secret from_dict keys=['TOKEN']>"

        paths = ["secrets", "secrets/api", "runner", "sessions", f"sessions/{session.id}"]
        with fresh_runner.client() as client:
            answers = [client.request("GET", f"/api/v1/{path}") for path in paths]
            with pytest.raises(nr.RunnerError, match="Input should be a valid string") as failed:
                client.request("PUT", "/api/v1/secrets/bad", {"values": {"K": 12345678}})
        listed = answers[0]["secrets"]
        assert [(s["name"], s["keys"]) for s in listed] == [
            ("api", ["API_KEY", "REGION"]),
            ("files", ["FROM_FILE"]),
        ]
        outputs += [
            json.dumps(answers),
            cli(fresh_runner, "secrets", "ls"),
            cli(fresh_runner, "secrets", "ls", "--json"),
            cli(fresh_runner, "status", "--json"),
        ]
        assert "12345678" not in str(failed.value)
    finally:
        session.close()
        _session._current = None
        fresh_runner.stop()
    for text in [*outputs, *fresh_runner.output]:
        assert NAMED not in text and INLINE not in text and DOTENV not in text
    store = fresh_runner.data_dir / "secrets.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    for path in fresh_runner.data_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert INLINE.encode() not in data, path  # from_dict values are never stored
            if path != store:
                assert NAMED.encode() not in data and DOTENV.encode() not in data, path


def test_a_missing_secret_fails_before_any_worker_starts(
    remote_session: _session.RemoteSession,
) -> None:
    workers = len(remote_session.describe().workers)
    uses = environment.with_options(secrets=[nr.Secret.from_name("never-set")])
    with pytest.raises(nr.RemoteError, match=r"no secret named 'never-set'.*nbremote secrets set"):
        uses.remote("X")
    assert len(remote_session.describe().workers) == workers


def test_bad_secrets_are_refused_without_showing_values() -> None:
    with pytest.raises(nr.NbremoteError, match="secret key '1BAD' is not an environment"):
        nr.Secret.from_dict({"1BAD": "hidden-1"})
    with pytest.raises(nr.NbremoteError, match="'N' is a int, not a string") as failed:
        nr.Secret.from_dict({"N": 4242})  # type: ignore[dict-item]
    assert "4242" not in str(failed.value)
    with pytest.raises(nr.NbremoteError, match=r"secrets= takes nr\.Secret objects, got a dict"):
        app.function(secrets=[{"K": "hidden-2"}])(len)
    deployed = app.function(secrets=[nr.Secret.from_dict({"K": "hidden-3"})])(len)
    with pytest.raises(nr.NbremoteError, match=r"cannot carry Secret\.from_dict values"):
        settings_of(deployed.options)


def test_restart_keeps_secrets(fresh_runner: RunningRunner) -> None:
    cli(fresh_runner, "secrets", "set", "kept", "KEPT=yes")
    fresh_runner.stop()
    again = start_runner(fresh_runner.data_dir)
    try:
        _session.connect(again.url, again.token)
        kept = environment.with_options(secrets=[nr.Secret.from_name("kept")])
        assert kept.remote("KEPT") == {"KEPT": "yes"}
        cli(again, "secrets", "rm", "kept")
        assert "no secrets" in cli(again, "secrets", "ls")
    finally:
        _session.current_session().close()
        _session._current = None
        again.stop()
