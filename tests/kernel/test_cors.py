"""Allowed origins are stored as a browser serializes them, and the CORS answers name only what is
allowed (asgate.kernel.cors, pure)."""

from __future__ import annotations

import pytest

from asgate.kernel import cors


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://console.example", "https://console.example"),
        ("HTTPS://Console.EXAMPLE", "https://console.example"),  # a browser sends lower case
        ("https://console.example:443", "https://console.example"),  # and no default port
        ("http://console.example:80", "http://console.example"),
        ("https://console.example:8443", "https://console.example:8443"),
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[0:0::1]", "http://[::1]"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),  # IDNA, as the Origin header has it
    ],
)
def test_an_origin_is_stored_in_its_serialized_form(given: str, stored: str) -> None:
    assert cors.normalise_origin(given) == stored


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("*", "'*' is not allowed"),
        ("null", "'null' origin"),
        ("https://console.example/", "no path"),
        ("https://console.example/app", "no path"),
        ("https://console.example?x=1", "no path"),
        ("https://console.example#top", "no path"),
        ("https://user@console.example", "no user-info"),
        ("https://user:pw@console.example", "no user-info"),
        ("console.example", "scheme is http or https"),
        ("file:///etc/passwd", "scheme is http or https"),
        ("javascript:alert(1)", "scheme is http or https"),
        ("https://", "has a host"),
        ("https://console.example:99999", "not a valid origin"),
        ("https://console.example:0", "port 0"),
        ("https://console .example", "no spaces"),
        ("https://console.example\r\nSet-Cookie: x", "no spaces"),
        ("https://2852039166", "numeric host"),
        ("https://*.example", "not a valid host name"),
        ("https://" + "a" * 300, "1 to 300"),
    ],
)
def test_what_is_not_an_origin_is_refused_with_the_reason(given: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        cors.normalise_origin(given)
    assert reason in str(refused.value)


def test_a_preflight_grants_only_the_allowed_request_headers() -> None:
    headers = dict(
        cors.preflight_headers(b"https://c.example", b"PUT", b"Authorization, X-Evil,content-type")
    )
    assert headers[b"access-control-allow-headers"] == b"authorization, content-type"
    assert headers[b"access-control-allow-methods"] == b"PUT"
    assert headers[b"access-control-allow-origin"] == b"https://c.example"
    asserted = [b"asgate-mc-service-id", b"asgate-application", b"asgate-assertion"]
    assert cors.allowed_headers(b", ".join(asserted)) == b""  # the SAS's own identity headers: never
    assert cors.preflight_method(b"TRACE") is None and cors.preflight_method(b"get") is None
