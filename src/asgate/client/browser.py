"""A scripted user at a browser: reads the real login page, fills in its form, follows the redirect.

It goes through the same HTML form a person uses (no side door), so tests and the non-interactive
demo exercise the real login path: the page, its single-use handle, the credential check and the
redirect to the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from asgate.kernel.problem import Cause, ProblemError


@dataclass
class LoginPage:
    """What a browser sees of a login page: its first form and the error message shown, if any."""

    action: str
    method: str
    fields: dict[str, str]
    error: str | None


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self.error: str | None = None
        self._in_form = self._done = self._in_alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._in_form = True
            self.action, self.method = attr.get("action", ""), attr.get("method", "get").lower()
        elif tag == "input" and self._in_form and attr.get("name"):
            self.fields[attr["name"]] = attr.get("value", "")
        elif attr.get("role") == "alert":
            self._in_alert, self.error = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True
        elif self._in_alert and tag in ("p", "div"):
            self._in_alert = False

    def handle_data(self, data: str) -> None:
        if self._in_alert and self.error is not None:
            self.error += data


def parse_login_page(html: str) -> LoginPage:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    error = parser.error.strip() if parser.error else None
    if parser.action is None:
        return LoginPage("", "get", {}, error or "the page has no form")
    return LoginPage(parser.action, parser.method, parser.fields, error)


class ScriptedBrowser:
    """Signs ``username`` in at the authorization URL it is given, like a person at a browser.

    ``http`` reaches the IdM (an in-process ASGI transport works); the final redirect to the
    application is delivered with a plain client over the network (the loopback listener of
    :class:`~asgate.client.login.UserLogin`). Use an instance as ``UserLogin.login``'s browser.
    """

    def __init__(self, username: str, password: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.username = username
        self._password = password
        self._http = http

    async def __call__(self, url: str) -> None:
        location = await self.sign_in(url)
        async with httpx.AsyncClient(timeout=10.0) as network:
            await network.get(location)

    async def sign_in(self, url: str) -> str:
        """GET the authorization URL, POST the credentials through its form; return the URL the
        IdM redirects to (the application's redirect URI with ``code`` or ``error``). Raises
        :class:`ProblemError` when the IdM answers with a page instead (wrong password, 429, ...)."""
        http = self._http or httpx.AsyncClient(timeout=10.0)
        try:
            page = await http.get(url)
            if page.is_redirect:  # an error answered by redirect (RFC 6749 4.1.2.1)
                return urljoin(url, page.headers["location"])
            form = _read_form(page)
            fields = {**form.fields, "username": self.username, "password": self._password}
            answer = await http.request(form.method.upper(), urljoin(url, form.action), data=fields)
            if answer.is_redirect:
                return urljoin(url, answer.headers["location"])
            raise _page_problem(answer, parse_login_page(answer.text).error)
        finally:
            if self._http is None:
                await http.aclose()


def _read_form(page: httpx.Response) -> LoginPage:
    form = parse_login_page(page.text) if "html" in page.headers.get("content-type", "") else None
    if page.status_code != 200 or form is None or not form.action:
        raise _page_problem(page, form.error if form else None)
    return form


def _page_problem(page: httpx.Response, message: str | None) -> ProblemError:
    status = page.status_code if page.status_code >= 400 else 401
    cause = Cause.ACCESS_TOKEN_DENIED if status in (401, 403) else Cause.UNSPECIFIED_MSG_FAILURE
    if status == 429:
        cause = Cause.NF_CONGESTION
    return ProblemError(status, cause, f"sign-in failed: {message or page.reason_phrase}")
