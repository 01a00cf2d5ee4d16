"""The HTML an MC user sees at the authorization endpoint: the login form and error pages.

No external assets and no script; the one inline style sheet is allowed by its hash in the
Content-Security-Policy. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib.resources import files
from string import Template
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

# What a user is asked to allow, in words (TS 33.180 B.4.2.2 scopes).
_SCOPE_WORDS = {
    "openid": "confirm who you are",
    "ptt": "MCPTT",
    "video": "MCVideo",
    "data": "MCData",
    "service": "use {} for you",
    "key_management_service": "get your {} keys",
    "config_management_service": "read your {} configuration",
    "group_management_service": "manage your {} groups",
}


@dataclass(frozen=True)
class LoginForm:
    handle: str
    client_name: str
    scopes: tuple[str, ...]
    redirect_uri: str
    username: str = ""
    error: str | None = None
    token: str = ""  # the per-form token (asgate.idm.csrf)


@cache
def _template() -> tuple[Template, str]:
    text = files("asgate.idm").joinpath("login.html").read_text(encoding="utf-8")
    style = re.search(r"<style>(.*?)</style>", text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    return Template(text), digest


def _headers(form_target: str | None, script: str | None = None) -> dict[str, str]:
    _, style_hash = _template()
    # form-action: Chromium applies it to the redirect that follows the POST too (and reports the
    # block against the form's own URL), so the client's redirect URI, as a source
    # (form_action_source), is allowed besides 'self'.
    targets = "'self'" + (f" {form_target}" if form_target else "")
    scripts = f"script-src '{_sha256(script)}'; " if script else ""
    csp = (
        f"default-src 'none'; style-src 'sha256-{style_hash}'; {scripts}form-action {targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _page(
    title: str, body: str, status: int, form_target: str | None = None, script: str | None = None
) -> HTMLResponse:
    template, _ = _template()
    html = template.substitute(
        title=escape(title), body=body + (f"\n<script>{script}</script>" if script else "")
    )
    return HTMLResponse(html, status, headers=_headers(form_target, script))


# CSP3 2.3.1 source expressions: a scheme-source, and a host-source without path.
_SCHEME_SOURCE = re.compile(r"^[a-z][a-z0-9+.-]*:$")
_HOST_SOURCE = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP ``form-action`` source that lets the browser follow the redirect to ``redirect_uri``
    (registered, already matched) after the form's POST; ``None`` when none can be written (the
    browser then stays on the page: safe, never a wider policy).

    - ``https://app.example/cb`` -> its origin ``https://app.example``;
    - a loopback listener ``http://127.0.0.1:53117/cb`` -> ``http://127.0.0.1:53117`` (the port the
      application asked for, RFC 8252 7.3); ``http://[::1]:53117/cb`` -> ``http://*:53117``: CSP3's
      host-source grammar has no IPv6 literal (Chromium ignores ``http://[::1]:53117`` and then
      blocks the redirect), so the port is what narrows it;
    - a private-use scheme ``com.example.console:/oauth2redirect`` -> the scheme-source
      ``com.example.console:`` (``com.example.console://`` is no valid source: the form was blocked).
    """
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        source = f"{scheme}:"
        return source if _SCHEME_SOURCE.match(source) else None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal (only [::1] is ever registered for http)
        host = "*"
    source = f"{scheme}://{host}" + (f":{port}" if port is not None else "")
    return source if host == "*" or _HOST_SOURCE.match(source) else None


# OIDC Core 5.4 and 11: the standard scopes, in words.
_STANDARD_WORDS = {
    "profile": "see your name",
    "email": "see your e-mail address",
    "phone": "see your phone number",
    "offline_access": "keep access while you are away",
}


def describe_scope(scope: str) -> str:
    if scope == "openid":
        return _SCOPE_WORDS["openid"]
    if scope in _STANDARD_WORDS:
        return _STANDARD_WORDS[scope]
    if scope.startswith("3gpp:mc:"):
        service, _, kind = scope.removeprefix("3gpp:mc:").partition("_")
        if service in _SCOPE_WORDS and kind in _SCOPE_WORDS:
            return _SCOPE_WORDS[kind].format(_SCOPE_WORDS[service])
    return f"use {scope}"


def login_page(form: LoginForm, status: int = 200) -> HTMLResponse:
    items = "".join(f"<li>{escape(describe_scope(s))}</li>" for s in form.scopes)
    error = (
        f'<p class="error" role="alert" id="login-error">{escape(form.error)}</p>'
        if form.error
        else '<p role="status" id="login-error"></p>'
    )
    described = ' aria-describedby="login-error"' if form.error else ""
    body = f"""<h1>Sign in</h1>
<p>to continue to <strong>{escape(form.client_name)}</strong>, which asks to:</p>
<ul>{items}</ul>
{error}
<form method="post" action="authorize">
<input type="hidden" name="handle" value="{escape(form.handle)}">
<input type="hidden" name="csrf" value="{escape(form.token)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false"
 required autofocus value="{escape(form.username)}"{described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{described}>
<button type="submit">Sign in</button>
</form>"""
    return _page("Sign in", body, status, form_action_source(form.redirect_uri))


# The one script asgate's pages run: submit the form_post answer at once (the button stays for
# browsers without script). Allowed by its hash in the Content-Security-Policy, nothing else is.
_SUBMIT = "document.forms[0].submit();"


def form_post_page(redirect_uri: str, params: dict[str, str]) -> HTMLResponse:
    """OAuth 2.0 Form Post Response Mode 2: an auto-submitting form POSTing ``params`` to the
    client's (registered, already matched) redirect URI; ``form-action`` allows only its origin."""
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">\n' for k, v in params.items()
    )
    body = f"""<h1>Returning to the application</h1>
<form method="post" action="{escape(redirect_uri)}">
{fields}<noscript><button type="submit">Continue</button></noscript>
</form>"""
    return _page("Returning to the application", body, 200, form_action_source(redirect_uri), _SUBMIT)


def error_page(message: str, status: int = 400, cause: str | None = None) -> HTMLResponse:
    code = f'\n<p class="muted">Reason: {escape(cause)}</p>' if cause else ""
    body = f"""<h1>This sign-in request cannot be used</h1>
<p class="error" role="alert">{escape(message)}</p>{code}
<p class="muted">Go back to the application and start signing in again.</p>"""
    return _page("Sign-in error", body, status)
