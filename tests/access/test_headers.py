"""Pure header and target rules (the network tests show them end to end)."""

from __future__ import annotations

import pytest

from asgate.access.errors import Refusal
from asgate.access.gate import ASSERTED
from asgate.access.headers import request_head, response_head, rewrite_location
from asgate.access.types import Admit
from asgate.access.upstream import UpstreamPool
from asgate.access.validate import check_path, scan_headers, split_target
from asgate.kernel import cors

BACKENDS = frozenset({"10.0.0.7:9101", "gms-1.internal:8080"})


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://10.0.0.7:9101/gm/groups/g1", "/1/groups/g1"),
        ("https://GMS-1.internal:8080/gm/groups?x=1", "/1/groups?x=1"),
        ("http://10.0.0.7:9101/gm", "/1"),
        ("http://user@10.0.0.7:9101/gm/a#f", "/1/a#f"),
        ("/gm/groups/g1", "/1/groups/g1"),
        ("/gmx/groups", "/gmx/groups"),  # not under the prefix: "/gm" is not "/gmx"
        ("http://10.0.0.7:9101/other", "/other"),  # the backend's address goes in any case
        ("https://idm.example/authorize", "https://idm.example/authorize"),  # another server: as is
        ("groups/g1", "groups/g1"),  # relative references are relative to the public URI already
    ],
)
def test_location_rewrite(location: str, expected: str) -> None:
    assert rewrite_location(location.encode(), ("/gm", "/1"), BACKENDS) == expected.encode()


@pytest.mark.parametrize(
    "path",
    [
        "/1/groups",
        "/1/groups/",
        "/1/a%20b",
        "/1/.well-known/x",
        "/1/a..b",
        "/1/%41",
        "/1/a.",
        "/",
        "/1/%C3%A9t%C3%A9",  # UTF-8 "été"
        "/1/100%25",  # a literal "%"
        "/1/%2541",  # "%41" once decoded, "A" twice: harmless
        "/1/x;v=1",  # path parameters on an ordinary segment
        "/1/.x;y",
    ],
)
def test_paths_that_mean_what_they_say_pass(path: str) -> None:
    check_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/1/../x",
        "/1/%2E%2E/x",
        "/1/a%2f",
        "/1/%5C",
        "/1/a\\b",
        "/1/%00",
        "/1//x",
        "/1/%g0",
        # overlong UTF-8 (RFC 3629 3) for ".", "/" and "\\", and other invalid UTF-8
        "/1/%c0%ae%c0%ae/x",
        "/1/%e0%80%ae",
        "/1/%f0%80%80%ae",
        "/1/a%c0%afb",
        "/1/a%e0%80%afb",
        "/1/%c1%9c",
        "/1/%c0%80",
        "/1/%ff",
        # decoded twice or three times
        "/1/%252e%252e/x",
        "/1/%25%32%65%25%32%65/x",
        "/1/a%252fb",
        "/1/%25252e%25252e",
        # path parameters on dot segments (Tomcat, Jetty) and on empty ones
        "/1/..;/x",
        "/1/.;/x",
        "/1/..;jsessionid=1/x",
        "/1/%2e%2e%3b/x",
        "/1/;x/a",
        # compatibility forms (NFKC) and dots-only or dot-and-space segments
        "/1/%ef%bc%8e%ef%bc%8e/x",
        "/1/a%ef%bc%8fb",
        "/1/a%ef%b9%a8b",
        "/1/...",
        "/1/..%20",
    ],
)
def test_paths_that_could_be_read_otherwise_are_refused(path: str) -> None:
    with pytest.raises(Refusal) as refused:
        check_path(path)
    assert (refused.value.status, refused.value.cause) == (400, "INVALID_MSG_FORMAT")


def test_the_target_splitter_checks_paths_with_path_parameters() -> None:
    with pytest.raises(Refusal):
        split_target(b"/1/;x/a", frozenset())


def test_request_head_drops_asserted_and_framing_fields_in_any_spelling() -> None:
    admit = Admit(
        UpstreamPool("GM/gm"),
        "/gm/groups",
        set_request_headers=[(b"asgate-mc-service-id", b"alice@mc.example")],
        drop_request_headers=ASSERTED | {b"authorization"},
    )
    client = [
        (b"asgate_mc_service_id", b"mallory"),
        (b"asgate-mc-service-id", b"mallory"),
        (b"asgate_application", b"evil"),
        (b"asgate_assertion", b"forged"),
        (b"resource_priority", b"mcpttp.15"),
        (b"transfer_encoding", b"chunked"),
        (b"content_length", b"5"),
        (b"x_forwarded_for", b"6.6.6.6"),
        (b"x-forwarded-host", b"admin.internal"),
        (b"x_real_ip", b"6.6.6.6"),
        (b"authorization", b"Bearer user-token"),
        (b"x_custom_id", b"kept"),
        (b"host", b"sas"),
    ]
    head = request_head(
        "GET", admit, client, (), client_ip="10.0.0.1", scheme="http", length=None, chunked=False
    )
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /gm/groups HTTP/1.1"
    assert sorted(lines[1:-2]) == sorted(
        [
            "x_custom_id: kept",  # "_" in other names is left alone
            "host: sas",
            "asgate-mc-service-id: alice@mc.example",
            "x-forwarded-for: 10.0.0.1",
            "x-forwarded-proto: http",
        ]
    )


def test_two_authorization_headers_are_refused() -> None:
    headers = [(b"host", b"s"), (b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]
    with pytest.raises(Refusal) as refused:
        scan_headers(headers, http11=True)
    assert (refused.value.status, refused.value.cause) == (400, "INVALID_MSG_FORMAT")
    assert "Authorization" in refused.value.detail
    assert scan_headers(headers[:2], http11=True).length is None  # one is fine


def test_targets_split_into_path_and_query() -> None:
    assert split_target(b"/1/x?a=1&b=%2F", frozenset()) == ("/1/x", "a=1&b=%2F")
    assert split_target(b"http://sas:7481/1/x?q", frozenset({"sas:7481"})) == ("/1/x", "q")


def test_framing_of_a_plain_request() -> None:
    framing = scan_headers(
        [(b"host", b"s"), (b"content-length", b"12"), (b"connection", b"close")], http11=True
    )
    assert (framing.length, framing.chunked, framing.close) == (12, False, True)
    websocket = scan_headers(
        [(b"host", b"s"), (b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, Upgrade")], True
    )
    assert websocket.websocket and not websocket.close
    with pytest.raises(Refusal) as refused:
        scan_headers([(b"host", b"s"), (b"expect", b"magic")], http11=True)
    assert refused.value.status == 417


def test_the_services_own_cors_fields_never_reach_the_browser_and_its_vary_stays() -> None:
    admit = Admit(
        UpstreamPool("p"), "/x", set_response_headers=cors.actual_headers(b"https://console.example")
    )
    upstream = [
        (b"Access-Control-Allow-Origin", b"*"),
        (b"access-control-allow-credentials", b"true"),
        (b"Access-Control-Expose-Headers", b"X-Secret"),
        (b"Vary", b"Accept-Encoding"),
        (b"Content-Type", b"application/json"),
    ]
    parts, _ = response_head(200, upstream, admit, BACKENDS)
    head = b"".join(parts).decode().lower()
    assert head.count("access-control-allow-origin") == 1 and "access-control-allow-origin: *" not in head
    assert "x-secret" not in head
    assert "vary: accept-encoding\r\n" in head and "vary: origin\r\n" in head
