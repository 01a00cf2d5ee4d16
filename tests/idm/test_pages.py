"""The IdM's HTML pages without an app: the Content-Security-Policy source that lets the browser
follow the redirect to the application (RFC 8252 redirect kinds), escaping."""

from __future__ import annotations

import pytest

from asgate.idm.pages import LoginForm, form_action_source, form_post_page, login_page


@pytest.mark.parametrize(
    ("redirect_uri", "source"),
    [
        ("com.example.console:/oauth2redirect", "com.example.console:"),  # RFC 8252 7.1
        ("com.example.console://callback/x", "com.example.console:"),
        ("https://console.example/oauth2redirect", "https://console.example"),  # 7.2
        ("https://console.example:8443/cb?x=1", "https://console.example:8443"),
        ("http://127.0.0.1:53117/cb", "http://127.0.0.1:53117"),  # 7.3: the port asked for
        ("http://127.0.0.1/cb", "http://127.0.0.1"),
        # CSP3 has no IPv6 literal host-source (Chromium ignores one and blocks the redirect).
        ("http://[::1]:53117/cb", "http://*:53117"),
        ("http://[::1]/cb", "http://*"),
        # Nothing that is not a valid source, so no header injection and never a wider policy.
        ("https://a.example;script-src */cb", None),
        ("https://a.example:99999/cb", None),
        ("bad scheme:/x", None),
        ("'none':x", None),
    ],
)
def test_form_action_source(redirect_uri: str, source: str | None) -> None:
    assert form_action_source(redirect_uri) == source


def _csp(redirect_uri: str) -> str:
    page = login_page(LoginForm("h", "Console", ("openid",), redirect_uri))
    return page.headers["content-security-policy"]


def test_the_login_page_allows_the_redirect_to_a_private_use_scheme() -> None:
    assert "form-action 'self' com.example.console:;" in _csp("com.example.console:/oauth2redirect")


def test_without_a_valid_source_only_self_is_allowed() -> None:
    assert "form-action 'self';" in _csp("https://a.example;script-src */cb")


def test_a_form_post_page_allows_its_own_target_only() -> None:
    page = form_post_page("https://console.example/cb", {"code": "c&<", "state": "s"})
    assert "form-action 'self' https://console.example;" in page.headers["content-security-policy"]
    html = bytes(page.body).decode()
    assert 'action="https://console.example/cb"' in html and 'value="c&amp;&lt;"' in html
