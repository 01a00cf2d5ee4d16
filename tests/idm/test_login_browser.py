"""The login page in a real browser (Debian's Chromium through Playwright) against a live server:
a native application's three redirect kinds (RFC 8252 7.1-7.3) complete sign-in with the keyboard
alone and the Content-Security-Policy intact; the page fits every width from 320 px and meets
WCAG 2.2 AA contrast in light and dark mode."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser import NO_CHROMIUM, chromium_path, watch
from tests.idm import screenshots
from tests.idm.native import (
    CLAIMED_HTTPS,
    LONG_NAME,
    LONG_NAME_CLIENT,
    PASSWORD,
    PRIVATE_USE,
    USER,
    Request,
    loopback_listener,
    provision,
    query,
)
from tests.live import LiveServer, live_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]

# Every CSP violation the page sees, also when the browser does not log one (init scripts run
# outside the page's policy).
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("native") / "data") as running:
        provision(running)
        yield running


async def _context(browser: Browser, errors: list[str], **options: Any) -> BrowserContext:
    context = await browser.new_context(**options)
    watch(context, errors)
    await context.add_init_script(_REPORT_VIOLATIONS)
    return context


async def _keyboard_sign_in(page: Page, password: str = PASSWORD) -> None:
    """Tab between the fields, Enter submits: no mouse."""
    assert await page.evaluate("document.activeElement.id") == "username"  # autofocus
    await page.keyboard.type(USER)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "password"
    await page.keyboard.type(password)
    await page.keyboard.press("Enter")


def _assert_redeemed(request: Request, url: str, server: LiveServer) -> None:
    answer = query(url)
    assert answer["state"] == request.state and answer["iss"] == server.url  # RFC 9207
    tokens = request.redeem(answer["code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert (
        body["token_type"] == "Bearer" and body["id_token"] and body["scope"] == "openid 3gpp:mc:ptt_service"
    )
    # The code is single-use: a second redemption (a stolen copy) gets nothing.
    assert request.redeem(answer["code"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("redirect_uri", [PRIVATE_USE, CLAIMED_HTTPS], ids=["private-use", "claimed-https"])
async def test_sign_in_sends_the_browser_to_the_apps_redirect(
    browser: Browser, page_errors: list[str], server: LiveServer, redirect_uri: str
) -> None:
    request = Request(server.url, redirect_uri)
    context = await _context(browser, page_errors)
    page = await context.new_page()
    await page.goto(request.url)
    # The browser follows the 303 to the app (the OS would hand a private-use URI to the app; a
    # claimed https URI opens it, RFC 8252 7.2): the attempted navigation is the proof.
    async with page.expect_request(lambda r: r.url.startswith(redirect_uri + "?")) as sent:
        await _keyboard_sign_in(page)
    url = (await sent.value).url
    assert page_errors == []  # no CSP violation: form-action allowed the redirect
    _assert_redeemed(request, url, server)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_sign_in_reaches_a_loopback_listener_on_its_own_port(
    browser: Browser, page_errors: list[str], server: LiveServer, host: str
) -> None:
    # Registered without a port (http://127.0.0.1/cb, http://[::1]/cb): the listener's is ephemeral.
    with loopback_listener(host) as listener:
        request = Request(server.url, listener.redirect_uri())
        context = await _context(browser, page_errors)
        page = await context.new_page()
        await page.goto(request.url)
        await _keyboard_sign_in(page)
        await page.wait_for_url(lambda url: url.startswith(request.redirect_uri + "?"))
        assert await page.text_content("p") == "You can close this window."
        answers = [path for path in listener.seen if path.startswith("/cb?")]  # not /favicon.ico
        assert page_errors == [] and len(answers) == 1
        _assert_redeemed(request, request.redirect_uri + answers[0].removeprefix("/cb"), server)


async def test_a_wrong_password_shows_the_error_and_keeps_the_keyboard_flow(
    browser: Browser, page_errors: list[str], server: LiveServer
) -> None:
    request = Request(server.url, PRIVATE_USE)
    context = await _context(browser, page_errors)
    page = await context.new_page()
    await page.goto(request.url)
    await _keyboard_sign_in(page, "not-her-password")
    await page.wait_for_selector(".error")
    assert await page.text_content("[role=alert]") == "Wrong user name or password."
    # The form is back with the user name kept; focus lands in it again, Enter still signs in.
    assert await page.input_value("#username") == USER
    await page.focus("#password")
    await page.keyboard.type(PASSWORD)
    async with page.expect_request(lambda r: r.url.startswith(PRIVATE_USE + "?")) as sent:
        await page.keyboard.press("Enter")
    assert page_errors == []
    _assert_redeemed(request, (await sent.value).url, server)


async def _show_error(page: Page) -> None:
    await _keyboard_sign_in(page, "not-her-password")
    await page.wait_for_selector(".error")


@pytest.mark.parametrize("width", [320, 360, 768])
async def test_the_page_never_scrolls_sideways(
    browser: Browser, page_errors: list[str], server: LiveServer, width: int
) -> None:
    context = await _context(browser, page_errors, viewport={"width": width, "height": 740})
    page = await context.new_page()
    await page.goto(Request(server.url, PRIVATE_USE, LONG_NAME_CLIENT).url)
    assert LONG_NAME in await page.text_content("strong")  # type: ignore[operator]
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    assert await page.evaluate(fits), await page.evaluate("document.documentElement.scrollWidth")
    await _show_error(page)
    assert await page.evaluate(fits), await page.evaluate("document.documentElement.scrollWidth")
    assert page_errors == []


# WCAG 2.2 relative luminance and contrast ratio, over what getComputedStyle says. A colour with
# alpha (or an ancestor's opacity) is blended over the first opaque background behind it.
_CONTRAST = Path(__file__).with_name("contrast.js").read_text(encoding="utf-8")


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_text_and_controls_meet_wcag_aa_contrast(
    browser: Browser, page_errors: list[str], server: LiveServer, scheme: str
) -> None:
    context = await _context(browser, page_errors, viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    await page.goto(Request(server.url, PRIVATE_USE).url)
    await _show_error(page)  # the error text is measured too
    await page.keyboard.press("Tab")  # from the user name to the password: a visible focus ring
    assert await page.evaluate("document.activeElement.id") == "password"
    found = await page.evaluate(_CONTRAST)
    texts = {t["text"]: t["ratio"] for t in found["texts"]}
    assert "Wrong user name or password." in texts and "Sign in" in texts and "User name" in texts
    low = {text: ratio for text, ratio in texts.items() if ratio < 4.5}
    assert low == {}, f"{scheme}: text below 4.5:1"
    ui = {c["what"]: c["ratio"] for c in found["components"]}
    assert set(ui) == {"input border", "button", "focus outline", "error bar"}
    assert {what: ratio for what, ratio in ui.items() if ratio < 3} == {}, f"{scheme}: UI below 3:1"
    assert page_errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_error_page_meets_wcag_aa_contrast_too(
    browser: Browser, page_errors: list[str], server: LiveServer, scheme: str
) -> None:
    context = await _context(browser, page_errors, viewport={"width": 320, "height": 740})
    page = await context.new_page()
    await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
    # An unregistered redirect URI: a page, never a redirect (RFC 6749 4.1.2.1).
    response = await page.goto(Request(server.url, "com.example.other:/cb").url)
    assert response is not None and response.status == 400
    found = await page.evaluate(_CONTRAST)
    texts = {t["text"]: t["ratio"] for t in found["texts"]}
    assert "the redirect_uri is not registered for this application" in texts
    assert {text: ratio for text, ratio in texts.items() if ratio < 4.5} == {}, f"{scheme}: text below 4.5:1"
    assert [c for c in found["components"] if c["ratio"] < 3] == []
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Chromium logs the document's own 400 as a console error; nothing else may appear.
    assert [e for e in page_errors if "status of 400" not in e] == []


async def test_the_page_can_be_zoomed_and_names_its_language_and_fields(
    browser: Browser, page_errors: list[str], server: LiveServer
) -> None:
    context = await _context(browser, page_errors)
    page = await context.new_page()
    await page.goto(Request(server.url, PRIVATE_USE).url)
    viewport = await page.get_attribute("meta[name=viewport]", "content")
    assert viewport == "width=device-width, initial-scale=1"  # no maximum-scale, no user-scalable=no
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.get_attribute("#username", "autocomplete") == "username"
    assert await page.get_attribute("#password", "autocomplete") == "current-password"
    # Every field has its label (the accessible name a screen reader reads).
    assert await page.get_by_label("User name").get_attribute("id") == "username"
    assert await page.get_by_label("Password").get_attribute("id") == "password"
    # Tab order: user name, password, the button.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Sign in"
    assert page_errors == []


def test_the_screenshot_script_renders_both_schemes_at_phone_size(tmp_path: Path) -> None:
    """`python -m tests.idm.screenshots` keeps working (docs/images/login-phone*.png come from it)."""
    if chromium_path() is None:
        pytest.skip(
            f"{NO_CHROMIUM}: no chromium executable (apt-get install chromium, or set ASGATE_CHROMIUM)"
        )
    assert screenshots.main(["--out", str(tmp_path)]) == 0
    for name in ("login-phone.png", "login-phone-dark.png"):
        png = (tmp_path / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (360, 740)  # IHDR width, height
    # Light and dark are different pictures.
    assert (tmp_path / "login-phone.png").read_bytes() != (tmp_path / "login-phone-dark.png").read_bytes()
