"""A page object for the browser tests: JupyterLab in Debian's Chromium, driven by Playwright.

Chromium comes from the machine's packages (`make test` installs it with apt where it is missing);
Playwright never downloads a browser of its own. Screenshots go under the test's output folder,
``tests/browser/output/`` (or ``$NBREMOTE_BROWSER_OUTPUT``), to be looked at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """Debian's Chromium; skipped where it is missing, except in CI, which must run these."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "Chromium is missing: `make test` installs it (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def output_dir() -> Path:
    folder = Path(os.environ.get("NBREMOTE_BROWSER_OUTPUT", ROOT / "tests" / "browser" / "output"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Lab:
    """JupyterLab in one page: a notebook's cells, the Promote dialog, the panel, the status bar."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def shot(self, name: str, target: Locator | None = None) -> Path:
        path = output_dir() / f"{name}.png"
        (target or self.page).screenshot(path=str(path))
        return path

    def cell(self, index: int) -> Locator:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def select(self, index: int) -> Locator:
        cell = self.cell(index)
        cell.locator(".jp-InputPrompt").click()  # selects without entering edit mode
        expect(cell).to_have_class(re.compile(r"jp-mod-active"))
        return cell

    def run(self, index: int) -> None:
        self.select(index)
        self.page.keyboard.press("Shift+Enter")

    def settle(self) -> None:
        """Past what JupyterLab asks on opening: the kernel to start (when it asks, which it does
        by a race with the session's start), and whether to get Jupyter news."""
        accept = self.page.locator(".jp-Dialog .jp-mod-accept")
        try:
            accept.wait_for(state="visible", timeout=5_000)
        except PlaywrightTimeout:
            pass
        else:
            accept.click()
        news = self.page.locator(".jp-Notification-Toast-Close")
        if news.count():
            news.first.click()
        self.wait_idle()

    def wait_idle(self) -> None:
        expect(
            self.page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
        ).to_be_visible(timeout=60_000)

    @property
    def status(self) -> Locator:
        return self.page.locator(".nbremote-status")

    @property
    def dialog(self) -> Locator:
        return self.page.locator(".nbremote-dialog")

    def promote_from_toolbar(self, index: int) -> Locator:
        cell = self.select(index)
        cell.locator(".jp-cell-toolbar [data-command='nbremote:promote']").click()
        expect(self.dialog).to_be_visible()
        return self.dialog

    def promote_from_context_menu(self, index: int) -> Locator:
        cell = self.select(index)
        cell.locator(".jp-InputArea-editor").click(button="right")
        self.page.locator(".lm-Menu-item[data-command='nbremote:promote']").click()
        expect(self.dialog).to_be_visible()
        return self.dialog

    def fill(self, field: str, value: str) -> None:
        self.dialog.locator(f"[name='{field}']").fill(value)

    def open_panel(self) -> Locator:
        self.status.click()
        panel = self.page.locator("#nbremote-panel")
        expect(panel).to_be_visible()
        return panel
