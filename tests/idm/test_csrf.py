"""Login CSRF decision (issue 8 item 11): browser signals first, then the per-form token."""

from __future__ import annotations

from typing import Any

import pytest

from asgate.idm import csrf

OWN = ("https://idm.example", "http://10.0.0.5:7480")
KEY = "k" * 43
HANDLE = "h" * 43
TOKEN = csrf.form_token(KEY, HANDLE)


def _refusal(**kw: Any) -> str | None:
    values: dict[str, Any] = {
        "fetch_site": None,
        "origin": None,
        "referer": None,
        "own_origins": OWN,
        "cookie": None,
        "handle": HANDLE,
        "token": "",
    }
    return csrf.refusal(**{**values, **kw})


@pytest.mark.parametrize(
    ("signals", "refused"),
    [
        ({"fetch_site": "same-origin"}, None),
        ({"fetch_site": "Same-Origin"}, None),
        ({"origin": "https://idm.example"}, None),
        ({"origin": "https://IDM.example:443"}, None),
        ({"origin": "http://10.0.0.5:7480"}, None),
        ({"referer": "https://idm.example/oauth2/authorize?x=1"}, None),
        ({"cookie": KEY, "token": TOKEN}, None),  # a non-browser client: the form's token
        ({"origin": "null", "cookie": KEY, "token": TOKEN}, None),
        ({"fetch_site": "none", "cookie": KEY, "token": TOKEN}, None),
        ({"fetch_site": "cross-site", "cookie": KEY, "token": TOKEN}, "another site"),
        ({"fetch_site": "same-site"}, "another site"),
        ({"origin": "https://evil.example", "cookie": KEY, "token": TOKEN}, "another site"),
        ({"origin": "https://idm.example.evil.example"}, "another site"),
        ({"origin": "http://idm.example"}, "another site"),  # another scheme is another origin
        ({"origin": "https://idm.example:8443"}, "another site"),
        ({"origin": "not a url"}, "another site"),
        ({"referer": "https://evil.example/https://idm.example"}, "another site"),
        ({"fetch_site": "same-origin", "origin": "https://evil.example"}, "another site"),
        ({}, "missing"),
        ({"origin": "null"}, "missing"),
        ({"cookie": KEY}, "missing"),
        ({"token": TOKEN}, "missing"),
        ({"cookie": "short", "token": TOKEN}, "missing"),
        ({"cookie": KEY, "token": csrf.form_token(KEY, "another-handle")}, "does not match"),
        ({"cookie": "j" * 43, "token": TOKEN}, "does not match"),
    ],
)
def test_refusal(signals: dict[str, Any], refused: str | None) -> None:
    answer = _refusal(**signals)
    assert answer is None if refused is None else refused in (answer or "")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://idm.example/", "https://idm.example"),
        ("https://idm.example:443/x", "https://idm.example"),
        ("http://idm.example:80", "http://idm.example"),
        ("http://127.0.0.1:7480/", "http://127.0.0.1:7480"),
        ("http://[::1]:7480/", "http://[::1]:7480"),
        ("ftp://idm.example", None),
        ("https://idm.example:99999", None),
        ("//idm.example", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert csrf.origin_of(url) == origin


def test_a_browser_keeps_its_key_and_a_bad_cookie_gets_a_new_one() -> None:
    assert csrf.browser_key(KEY) == KEY
    fresh = csrf.browser_key("<script>")
    assert fresh != "<script>" and len(fresh) == 43 and csrf.browser_key(None) != fresh
