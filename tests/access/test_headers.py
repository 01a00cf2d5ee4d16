"""Pure header and target rules (the network tests show them end to end)."""

from __future__ import annotations

import pytest

from asgate.access.errors import Refusal
from asgate.access.headers import rewrite_location
from asgate.access.validate import check_path, scan_headers, split_target

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
    ["/1/groups", "/1/groups/", "/1/a%20b", "/1/.well-known/x", "/1/a..b", "/1/%41", "/1/a.", "/"],
)
def test_paths_that_mean_what_they_say_pass(path: str) -> None:
    check_path(path)


@pytest.mark.parametrize(
    "path", ["/1/../x", "/1/%2E%2E/x", "/1/a%2f", "/1/%5C", "/1/a\\b", "/1/%00", "/1//x", "/1/%g0"]
)
def test_paths_that_could_be_read_otherwise_are_refused(path: str) -> None:
    with pytest.raises(Refusal) as refused:
        check_path(path)
    assert refused.value.status == 400


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
