"""A real browser for the tests: Debian's ``chromium`` driven by Playwright, never a downloaded one.

``ASGATE_CHROMIUM`` names the executable (default ``/usr/bin/chromium``; `.ci/run` installs the
package when it is missing). Without it the browser tests are skipped, and the end of the run says
how many and how to provide it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

NO_CHROMIUM = "needs Debian's chromium"  # every such skip says it; the summary counts them


def chromium_path() -> Path | None:
    named = os.environ.get("ASGATE_CHROMIUM")
    found = named or shutil.which("chromium") or "/usr/bin/chromium"
    path = Path(found)
    return path if path.is_file() and os.access(path, os.X_OK) else None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium of its own for one test."""
    path = chromium_path()
    if path is None:
        pytest.skip(
            f"{NO_CHROMIUM}: no chromium executable (apt-get install chromium, or set ASGATE_CHROMIUM)"
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(path), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page_errors() -> list[str]:
    """Console errors and uncaught page errors collected by :func:`watch`; a test asserts it is empty."""
    return []


def watch(context: BrowserContext, errors: list[str]) -> None:
    """Record every console error and uncaught exception of the pages of ``context`` in ``errors``."""

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    def on_page(page: Page) -> None:
        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

    context.on("page", on_page)
