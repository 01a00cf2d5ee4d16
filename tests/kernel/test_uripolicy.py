from __future__ import annotations

import ipaddress

import pytest

from asgate.domain.registry import ServiceRegistration
from asgate.kernel.settings import DEFAULT_DENY_HOSTS
from asgate.kernel.uripolicy import HostError, HostPolicy, UriPolicy, instance_address_refusals, normalise

OPEN = UriPolicy.build(["http", "https"], [], DEFAULT_DENY_HOSTS)
LAB = UriPolicy.build(["http", "https"], [], DEFAULT_DENY_HOSTS, allow_loopback=True)
STRICT = UriPolicy.build(
    ["https"], ["*.example.com", "10.1.0.0/16"], [*DEFAULT_DENY_HOSTS, "bad.example.com"]
)


@pytest.mark.parametrize(
    ("written", "address", "name"),
    [
        # IPv4-mapped, IPv4-compatible, IPv4-translated IPv6: the IPv4 address they carry.
        ("[::ffff:127.0.0.1]", "127.0.0.1", None),
        ("[::FFFF:7F00:1]", "127.0.0.1", None),
        ("[::ffff:a9fe:a9fe]", "169.254.169.254", None),
        ("[::127.0.0.1]", "127.0.0.1", None),
        ("[::ffff:0:7f00:1]", "127.0.0.1", None),
        ("[::1]", "::1", None),
        ("[::]", "::", None),
        # Zone ids (RFC 6874, %25-encoded in a URI) are not part of the address.
        ("[fe80::1%25eth0]", "fe80::1", None),
        ("fe80::1%eth0", "fe80::1", None),
        ("[2001:DB8::0001]", "2001:db8::1", None),
        # Names: case, one trailing dot, IDNA (UTS 46 maps full-width forms to ASCII).
        ("LocalHost.", None, "localhost"),
        ("Metadata.Google.Internal.", None, "metadata.google.internal"),
        ("ｌｏｃａｌｈｏｓｔ", None, "localhost"),
        ("пример.рф", None, "xn--e1afmkfd.xn--p1ai"),
        ("１２７．０．０．１", "127.0.0.1", None),
        ("10.0.0.1", "10.0.0.1", None),
        ("gms-1.mc.example", None, "gms-1.mc.example"),
    ],
)
def test_hosts_are_normalised(written: str, address: str | None, name: str | None) -> None:
    host = normalise(written)
    assert (str(host.address) if host.address else None, host.name) == (address, name)


@pytest.mark.parametrize(
    "written",
    [
        "2852039166",  # 169.254.169.254 as one decimal number
        "0xa9fea9fe",  # ... in hexadecimal
        "0251.0376.0251.0376",  # ... in octal
        "127.1",  # short forms
        "0x7f.1",
        "127.000.000.001",  # leading zeros
        "010.0.0.1",
        "127.0.0.1.",  # a trailing dot on an address
        "0",
        "1.2.3.4.5",
        "%6cocalhost",  # percent-encoded
        "local host",
        "a..b",
        "[v1.x]",  # IPvFuture
        "[::ffff:0127.0.0.1]",
        "",
    ],
)
def test_non_canonical_hosts_are_refused_outright(written: str) -> None:
    with pytest.raises(HostError):
        normalise(written)
    assert OPEN.hosts.check_host(written) is not None
    assert LAB.hosts.check_host(written) is not None  # allowing loopback allows no odd spelling of it


@pytest.mark.parametrize(
    ("written", "carried"),
    [
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 well-known prefix (RFC 6052)
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b:1:a9fe:a9:fe00::", "169.254.169.254"),  # local-use NAT64 (RFC 8215), /48 layout
        ("64:ff9b:1::a9fe:a9fe", "169.254.169.254"),  # ... /96 layout
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
        ("2002:7f00:1::", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo (client address inverted)
    ],
)
def test_embedded_ipv4_addresses_are_checked(written: str, carried: str) -> None:
    host = normalise(f"[{written}]")
    assert ipaddress.IPv4Address(carried) in host.embedded
    reason = OPEN.check(f"http://[{written}]/cb")
    assert reason is not None and f"carries {carried}" in reason
    # The same prefixes carrying an ordinary address pass.
    assert OPEN.check("http://[64:ff9b::a00:1]/cb") is None
    assert OPEN.check("http://[2002:a00:1::1]/cb") is None
    assert OPEN.check("http://[64:ff9b:1::a00:1]/cb") is None


@pytest.mark.parametrize(
    ("policy", "uri", "refused_because"),
    [
        (OPEN, "https://as.example.org/x?y=1", None),
        (OPEN, "http://10.0.0.1:9200/cb", None),  # private ranges: MC networks are private
        (OPEN, "http://172.16.5.4/cb", None),
        (OPEN, "http://192.168.1.1/cb", None),
        (OPEN, "http://100.64.0.1/cb", None),
        (OPEN, "http://[fd12::1]/cb", None),
        (OPEN, "http://127.0.0.1:9200/cb", "denied range"),
        (OPEN, "http://127.8.9.10/cb", "denied range"),
        (OPEN, "http://[::1]:8080/cb", "denied range"),
        (OPEN, "http://[::ffff:127.0.0.1]/cb", "address 127.0.0.1 is in a denied range"),
        (OPEN, "http://localhost:8080/cb", "host localhost is denied"),
        (OPEN, "http://localhost./cb", "host localhost is denied"),
        (OPEN, "http://app.localhost/cb", "denied"),
        (OPEN, "http://169.254.169.254/latest", "denied range"),
        (OPEN, "http://[::ffff:a9fe:a9fe]/latest", "169.254.169.254 is in a denied range"),
        (OPEN, "http://[fd00:ec2::254]/latest", "denied range"),
        (OPEN, "http://100.100.100.200/latest", "denied range"),
        (OPEN, "http://192.0.0.192/opc", "denied range"),
        (OPEN, "http://metadata.google.internal/x", "denied"),
        (OPEN, "http://METADATA/x", "denied"),
        (OPEN, "http://[fe80::1]/x", "denied range"),
        (OPEN, "http://[fe80::1%25eth0]/x", "denied range"),
        (OPEN, "http://0.0.0.0/x", "denied range"),
        (OPEN, "http://[::]/x", "denied range"),
        (OPEN, "http://224.0.0.1/x", "denied range"),
        (OPEN, "http://[ff02::1]/x", "denied range"),
        (OPEN, "http://255.255.255.255/x", "denied range"),
        (OPEN, "http://2852039166/x", "not a canonical dotted-quad"),
        (OPEN, "ftp://as.example.org/", "scheme 'ftp'"),
        (OPEN, "as.example.org/cb", "scheme '(none)'"),
        (OPEN, "http:///nohost", "no host"),
        (OPEN, "http://user:pw@as.example.org/", "user-info"),
        (OPEN, "http://as.example.org\\@127.0.0.1/", "backslash"),
        (OPEN, "http://as.example.org:99999/", "not a valid URI"),
        (LAB, "http://127.0.0.1:9200/cb", None),
        (LAB, "http://[::1]:9200/cb", None),
        (LAB, "http://[::ffff:127.0.0.1]:9200/cb", None),
        (LAB, "http://localhost:9200/cb", None),
        (LAB, "http://169.254.169.254/latest", "denied range"),
        (LAB, "http://[::ffff:a9fe:a9fe]/latest", "denied range"),
        (LAB, "http://metadata.google.internal/x", "denied"),
        (STRICT, "https://api.example.com/cb", None),
        (STRICT, "https://API.Example.COM./cb", None),
        (STRICT, "https://10.1.2.3/cb", None),
        (STRICT, "https://[::ffff:10.1.2.3]/cb", None),
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
        == "resolves to 169.254.169.254: address 169.254.169.254 is in a denied range"
    )
    assert OPEN.check_addresses(["10.0.0.1", "::ffff:127.0.0.1"]) is not None
    assert OPEN.check_addresses(["10.0.0.1", "fd12::1"]) is None
    assert LAB.check_addresses(["127.0.0.1", "::1"]) is None


def _registration(**address: str) -> ServiceRegistration:
    interface = {"referencePoint": "CSC-1", "protocol": "HTTP", "port": 9101, **address}
    return ServiceRegistration.model_validate(
        {"serviceType": "GM", "serviceName": "gm", "interfaces": [interface]}
    )


@pytest.mark.parametrize(
    ("address", "refused_because"),
    [
        ({"ipv4Addr": "10.2.3.4"}, None),
        ({"ipv6Addr": "fd12::1"}, None),
        ({"fqdn": "gms-1.mc.example"}, None),
        ({"ipv4Addr": "169.254.169.254"}, "denied range"),
        ({"ipv4Addr": "127.0.0.1"}, "denied range"),
        ({"ipv6Addr": "::ffff:169.254.169.254"}, "169.254.169.254 is in a denied range"),
        ({"ipv6Addr": "fe80::1%eth0"}, "denied range"),
        ({"ipv6Addr": "64:ff9b::a9fe:a9fe"}, "carries 169.254.169.254"),
        ({"fqdn": "metadata.google.internal."}, "denied"),
        ({"fqdn": "LOCALHOST"}, "denied"),
        ({"fqdn": "169.254.169.254"}, "denied range"),
        ({"fqdn": "2852039166"}, "not a canonical dotted-quad"),
        ({"fqdn": "0x7f.1"}, "not a canonical dotted-quad"),
    ],
)
def test_instance_addresses(address: dict[str, str], refused_because: str | None) -> None:
    policy = HostPolicy.build([], DEFAULT_DENY_HOSTS)
    refusals = instance_address_refusals(policy, _registration(**address))
    if refused_because is None:
        assert refusals == []
    else:
        (refusal,) = refusals
        assert refusal.param == f"/interfaces/0/{next(iter(address))}"
        assert refusal.reason is not None and refused_because in refusal.reason


def test_instances_on_loopback_only_when_allowed() -> None:
    lab = HostPolicy.build([], DEFAULT_DENY_HOSTS, allow_loopback=True)
    assert instance_address_refusals(lab, _registration(ipv4Addr="127.0.0.1")) == []
    assert instance_address_refusals(lab, _registration(fqdn="localhost")) == []
    assert instance_address_refusals(lab, _registration(ipv4Addr="169.254.169.254")) != []
