"""JupyterLab with nbremote, as a user clicks it: Debian's Chromium driven by Playwright against a
real ``jupyter lab`` on loopback, its kernels on a real runner.

One notebook, one walk through it: run a ``%%remote`` cell (the status bar says a cell runs, the
cell wears a badge naming the runner),
promote a cell to an endpoint from the cell toolbar and call it over HTTP, refuse a bad cron in
the dialog, promote a schedule from the context menu and find it in the Remote panel and in
``nbremote jobs ls``. Screenshots of the status bar, the dialogs and the panel are kept.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from nbremote.errors import NbremoteError
from tests.browser.lab import Lab, chromium_path
from tests.conftest import RunningRunner
from tests.server_ext.jupyter import TOKEN, free_port, running_jupyter

# One walk takes about a minute here; a loaded machine gets room (the suite's default is 120 s).
pytestmark = [pytest.mark.browser, pytest.mark.timeout(360)]

CELLS = [
    "%load_ext nbremote",
    "%%remote\nimport time\ntime.sleep(4)\nx = 21",
    "response = {'answer': x * 2, 'asked': request['json']}",
    "print('tick', x)",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@contextmanager
def lab_page(browser: Browser, tmp: Path, env: dict[str, str], shot: str) -> Iterator[Page]:
    """JupyterLab with ``env`` (its kernels' and server extension's runner) open on a notebook of
    CELLS in a new browser context; the page's last state is kept as screenshot ``shot``."""
    root = tmp / "notebooks"
    root.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, root / "walk.ipynb")
    with running_jupyter(tmp, env, app="lab", args=("--LabApp.news_url=",)) as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        opened = context.new_page()
        opened.set_default_timeout(30_000)
        opened.goto(f"{lab.url}/lab/tree/walk.ipynb?token={TOKEN}")
        expect(opened.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
        try:
            yield opened
        finally:
            Lab(opened).shot(shot)  # how the page was left, failed or not
            context.close()


@pytest.fixture
def page(browser: Browser, runner: RunningRunner, tmp_path: Path) -> Iterator[Page]:
    """A notebook in JupyterLab whose kernels and server extension use the shared runner."""
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    with lab_page(browser, tmp_path, env, "last-walk") as opened:
        yield opened


def call(url: str, token: str, body: object) -> object:
    request = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_a_notebook_promotes_cells_and_sees_them_live(page: Page, runner: RunningRunner) -> None:
    lab = Lab(page)
    expect(lab.status).to_contain_text("Remote: connected", timeout=30_000)
    lab.settle()

    # A remote cell runs: the status bar says so while it does, and idle after.
    lab.run(0)
    lab.run(1)
    host = runner.url.removeprefix("http://")
    badge = lab.cell(1).locator(".nbremote-badge")
    expect(badge).to_contain_text(f"remote · {host}")
    expect(lab.status).to_contain_text("running a cell", timeout=60_000)
    expect(badge).to_have_text(f"remote · {host} · CPU")  # its worker holds no GPU
    lab.shot("status-running", lab.status)
    lab.shot("cell-badge", lab.cell(1))
    expect(lab.status).to_contain_text("idle", timeout=60_000)
    expect(badge).to_have_count(0)
    lab.wait_idle()

    try:
        # Promote to an endpoint from the cell's toolbar; call it as any HTTP client would.
        dialog = lab.promote_from_toolbar(2)
        lab.fill("name", "lab-answer")
        dialog.locator("[name='method']").select_option("POST")
        lab.fill("path", "/answer")
        dialog.locator(".nbremote-submit").click()
        token = dialog.locator(".nbremote-token code")
        expect(token).to_be_visible(timeout=120_000)
        url = dialog.locator(".nbremote-url code").inner_text()
        assert url == f"{runner.url}/endpoints/lab-answer/answer"
        expect(dialog.locator(".nbremote-try code")).to_contain_text("curl -X POST")
        dialog.locator(".nbremote-try-body").fill('{"q": 2}')  # the dialog's own "try it"
        dialog.locator(".nbremote-try-send").click()
        expect(dialog.locator(".nbremote-try-answer")).to_contain_text("HTTP 200")
        expect(dialog.locator(".nbremote-try-answer")).to_contain_text('"asked"')
        lab.shot("dialog-endpoint")
        assert call(url, token.inner_text(), {"q": 1}) == {"answer": 42, "asked": {"q": 1}}
        dialog.locator(".nbremote-close").click()

        # A bad cron is refused in the dialog, before anything reaches the kernel.
        dialog = lab.promote_from_context_menu(3)
        dialog.locator(".nbremote-tab[data-kind='schedule']").click()
        lab.fill("name", "lab-nightly")
        lab.fill("schedule", "61 2 * * *")
        error = dialog.locator(".nbremote-error")
        expect(error).to_contain_text("minute")
        dialog.locator(".nbremote-submit").click()
        expect(error).to_contain_text("minute")
        lab.shot("dialog-bad-cron")

        # A good one: its wording, its next runs, then the job as stored.
        lab.fill("schedule", "0 3 * * *")
        lab.fill("tz", "UTC")
        expect(dialog.locator(".nbremote-preview")).to_have_text("every day at 03:00")
        expect(dialog.locator(".nbremote-fires li")).to_have_count(3)
        expect(error).to_be_empty()
        dialog.locator(".nbremote-submit").click()
        expect(dialog.locator(".nbremote-result")).to_contain_text("Scheduled job lab-nightly")
        expect(dialog.locator(".nbremote-next li")).to_have_count(3)
        lab.shot("dialog-schedule")
        dialog.locator(".nbremote-close").click()

        # The panel shows both, live; the CLI sees the job too.
        panel = lab.open_panel()
        expect(panel.locator(".nbremote-job[data-name='lab-nightly']")).to_contain_text("0 3 * * *")
        expect(panel.locator(".nbremote-endpoint[data-name='lab-answer']")).to_be_visible()
        expect(panel.locator(".nbremote-session")).to_contain_text("walk.ipynb")
        endpoint = panel.locator(".nbremote-endpoint[data-name='lab-answer']")
        endpoint.get_by_role("button", name="Requests").click()
        expect(endpoint.locator(".nbremote-logs")).to_contain_text("200")  # the call above

        # Run now: the panel follows the run live, and its log is what the cell printed.
        job = panel.locator(".nbremote-job[data-name='lab-nightly']")
        job.get_by_role("button", name="Run now").click()
        expect(job).to_contain_text("last run #1: succeeded", timeout=120_000)
        job.get_by_role("button", name="Runs and log").click()
        expect(job.locator(".nbremote-logs")).to_contain_text("tick 21")
        lab.shot("panel")
        listed = runner.cli("jobs", "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        assert "lab-nightly" in listed.stdout
    finally:
        with runner.client() as client:
            for path in ("/api/v1/jobs/lab-nightly", "/api/v1/endpoints/lab-answer"):
                with contextlib.suppress(NbremoteError):  # already gone if the test got that far
                    client.request("DELETE", path)


def test_without_a_runner_the_status_bar_and_the_dialog_say_so(
    browser: Browser, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"NBREMOTE_URL": nowhere, "NBREMOTE_TOKEN": "unused"}
    with lab_page(browser, tmp_path, env, "last-no-runner") as page:
        lab = Lab(page)
        expect(lab.status).to_have_text("Remote: no runner", timeout=30_000)
        lab.settle()
        dialog = lab.promote_from_toolbar(2)
        lab.fill("name", "lab-nowhere")
        dialog.locator(".nbremote-submit").click()
        error = dialog.locator(".nbremote-error")
        expect(error).to_contain_text(f"cannot reach the runner at {nowhere}", timeout=60_000)
        expect(dialog.locator(".nbremote-result")).to_be_empty()
        lab.shot("dialog-no-runner")
        lab.shot("status-no-runner", lab.status)
