from __future__ import annotations

import pytest

from asgate.settings import DEFAULT_DENY_HOSTS
from asgate.uripolicy import UriPolicy

OPEN = UriPolicy.build(["http", "https"], [], DEFAULT_DENY_HOSTS)
STRICT = UriPolicy.build(
    ["https"], ["*.example.com", "10.1.0.0/16"], [*DEFAULT_DENY_HOSTS, "bad.example.com"]
)


@pytest.mark.parametrize(
    ("policy", "uri", "refused_because"),
    [
        (OPEN, "http://127.0.0.1:9200/cb", None),
        (OPEN, "https://as.example.org/x?y=1", None),
        (OPEN, "http://[::1]:8080/cb", None),
        (OPEN, "http://169.254.169.254/latest", "denied range"),
        (OPEN, "http://[fe80::1]/x", "denied range"),
        (OPEN, "http://0.0.0.0/x", "denied range"),
        (OPEN, "http://224.0.0.1/x", "denied range"),
        (OPEN, "ftp://as.example.org/", "scheme 'ftp'"),
        (OPEN, "as.example.org/cb", "scheme '(none)'"),
        (OPEN, "http:///nohost", "no host"),
        (OPEN, "http://user:pw@as.example.org/", "user-info"),
        (OPEN, "http://as.example.org:99999/", "not a valid URI"),
        (STRICT, "https://api.example.com/cb", None),
        (STRICT, "https://API.Example.COM/cb", None),
        (STRICT, "https://10.1.2.3/cb", None),
        (STRICT, "http://api.example.com/cb", "scheme 'http'"),
        (STRICT, "https://bad.example.com/cb", "denied"),
        (STRICT, "https://example.org/cb", "not in the allow list"),
        (STRICT, "https://10.2.0.1/cb", "not in the allow list"),
    ],
)
def test_check(policy: UriPolicy, uri: str, refused_because: str | None) -> None:
    reason = policy.check(uri)
    if refused_because is None:
        assert reason is None
    else:
        assert reason is not None and refused_because in reason


def test_resolved_addresses_are_checked_too() -> None:
    assert (
        OPEN.check_addresses(["93.184.216.34", "169.254.169.254"])
        == "resolves to 169.254.169.254, in a denied range"
    )
    assert OPEN.check_addresses(["127.0.0.1", "::1"]) is None
