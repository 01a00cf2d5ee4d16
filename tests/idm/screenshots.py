"""Screenshots of the login page on a phone-sized screen (360x740), light and dark, for docs/api.md.

    $ .venv/bin/python -m tests.idm.screenshots            # writes docs/images/login-phone*.png

A live ``asgate up`` in a temporary directory, the console of tests/idm/native.py asking for MCPTT
through its private-use redirect, and Debian's Chromium (tests/browser.py) taking the pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from tests.browser import chromium_path
from tests.idm.native import PRIVATE_USE, Request, provision
from tests.live import live_server

PHONE = {"width": 360, "height": 740}
NAMES = {"light": "login-phone.png", "dark": "login-phone-dark.png"}


async def _shoot(issuer: str, chromium: Path, out: Path) -> list[Path]:
    written = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            for scheme, name in NAMES.items():
                context = await browser.new_context(viewport=PHONE, color_scheme=scheme)  # type: ignore[arg-type]
                page = await context.new_page()
                await page.goto(Request(issuer, PRIVATE_USE).url)
                path = out / name
                await page.screenshot(path=str(path))
                written.append(path)
                await context.close()
        finally:
            await browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("docs/images"), help="directory (default docs/images)"
    )
    args = parser.parse_args(argv)
    chromium = chromium_path()
    if chromium is None:
        print("no chromium executable: apt-get install chromium, or set ASGATE_CHROMIUM", file=sys.stderr)  # noqa: T201
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp) / "data") as server:
        provision(server)
        for path in asyncio.run(_shoot(server.url, chromium, args.out)):
            print(path)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
