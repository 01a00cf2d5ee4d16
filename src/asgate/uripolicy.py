"""Outbound address policy: client-supplied URIs (``targetUri``, ``notificationDestination``) and the
addresses MC service instances register (``ipv4Addr``, ``ipv6Addr``, ``fqdn``).

A URI is refused unless its scheme is allowed, it has a host and no user-info, and its host passes
the host policy. A host is first *normalised*, so that one address written in several ways gets one
answer (the classic SSRF bypasses):

- IPv4-mapped, IPv4-compatible and IPv4-translated IPv6 (``[::ffff:127.0.0.1]``, ``[::127.0.0.1]``,
  RFC 4291 2.5.5, RFC 2765) are the IPv4 address they carry;
- an IPv6 address that embeds an IPv4 address for a translator or tunnel, NAT64 (``64:ff9b::/96``,
  RFC 6052; ``64:ff9b:1::/48``, RFC 8215), 6to4 (``2002::/16``, RFC 3056) or Teredo (``2001::/32``,
  RFC 4380), is refused when the address it carries is;
- a zone id (``fe80::1%25eth0``, RFC 6874) is not part of the address checked;
- names are IDNA-mapped (UTS 46: full-width letters and dots become ASCII), lower-cased, and lose
  one trailing dot (``localhost.``);
- a numeric host that is not a canonical dotted quad (``2852039166``, ``0xa9fea9fe``,
  ``0251.0376.0251.0376``, ``127.1``, leading zeros) is refused outright: inet_aton() reads these as
  addresses, other parsers as names, and no genuine name ends in a numeric label (RFC 3696 2).

Then the host must match no deny entry and, when an allow list is set, an allow entry. Entries are
CIDR blocks (``10.0.0.0/8``, ``fe80::/10``) or host-name globs (``*.example.com``). Names are checked
again, resolved, just before a connection is made (:meth:`HostPolicy.check_addresses`): every
address a name resolves to must pass the deny list (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import idna

from asgate.problem import Cause, InvalidParam, ProblemError

if TYPE_CHECKING:
    from asgate.domain.registry import ServiceRegistration
    from asgate.settings import Settings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What "allow loopback" lifts from the deny list (RFC 6761 6.3 for the names; /etc/hosts aliases).
LOOPBACK_NAMES = ("localhost", "*.localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 2.5.5.1 IPv4-compatible (deprecated)
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


class HostError(ValueError):
    """The host cannot be given one reading (malformed or non-canonical): refused outright."""


@dataclass(frozen=True)
class Host:
    """A host after normalisation: an address (IPv4 for mapped ones) or a name in A-labels."""

    address: IpAddress | None = None
    name: str | None = None
    embedded: tuple[ipaddress.IPv4Address, ...] = ()  # IPv4 carried by NAT64, 6to4, Teredo

    def __str__(self) -> str:
        return str(self.address) if self.address is not None else self.name or ""


def _embedded(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """IPv4 addresses a translator or tunnel would reach for ``address``."""
    packed = address.packed
    if address in _NAT64:
        return (ipaddress.IPv4Address(packed[12:]),)
    if address in _NAT64_LOCAL:
        # RFC 6052 2.2: the prefix is /48, /56, /64 or /96 inside 64:ff9b:1::/48; bits 64-71 are
        # the u octet. Every reading is checked, the network's own prefix length being unknown here;
        # readings in 0.0.0.0/8 are the zero padding of another layout (no translator sends there).
        readings = (packed[6:8] + packed[9:11], packed[7:8] + packed[9:12], packed[9:13], packed[12:])
        return tuple(ipaddress.IPv4Address(raw) for raw in readings if raw[0] != 0)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


def normalise_address(text: str) -> Host:
    """An address literal (IPv6 without brackets, with or without a zone id; canonical IPv4)."""
    literal, _, _zone = text.partition("%")
    try:
        address: IpAddress = ipaddress.ip_address(literal)
    except ValueError:
        raise HostError(f"{text!r} is not a canonical IP address") from None
    if isinstance(address, ipaddress.IPv4Address):
        return Host(address=address)
    if address.ipv4_mapped is not None:
        return Host(address=address.ipv4_mapped)
    if address in _SIIT or (address in _COMPATIBLE and int(address) > 1):
        return Host(address=ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return Host(address=address, embedded=_embedded(address))


def normalise_name(text: str) -> Host:
    """A host written without brackets: a canonical dotted quad, else a DNS name."""
    if not text or any(c in text for c in "%\\@[]") or not text.isprintable() or text != text.strip():
        raise HostError(f"{text!r} is not a valid host name")
    try:
        name = text.encode("ascii").decode().lower() if text.isascii() else _idna(text)
    except (idna.IDNAError, UnicodeError):
        raise HostError(f"{text!r} is not a valid internationalised host name") from None
    bare = name[:-1] if name.endswith(".") else name
    if not _NAME.match(bare):
        raise HostError(f"{text!r} is not a valid host name")
    if _NUMERIC_LABEL.match(bare.rsplit(".", 1)[-1]):
        # An address in disguise unless it is exactly the dotted quad (no trailing dot either).
        try:
            address = ipaddress.IPv4Address(name)
        except ValueError:
            address = None
        if address is None or str(address) != name:
            raise HostError(f"numeric host {text!r} is not a canonical dotted-quad IPv4 address")
        return Host(address=address)
    return Host(name=bare)


def _idna(text: str) -> str:
    # UTS 46 mapping, as yarl (aiohttp) applies it: what we check is the name that gets resolved.
    return idna.encode(text, uts46=True).decode("ascii").lower()


def normalise(text: str) -> Host:
    """Any host as it appears in a URI authority (``[v6]`` in brackets, zone id ``%25``-encoded)."""
    if text.startswith("[") and text.endswith("]"):
        return normalise_address(unquote(text[1:-1]))
    if ":" in text:  # an IPv6 literal given bare (an instance's ipv6Addr, a resolver's answer)
        return normalise_address(text)
    return normalise_name(text)


def _parse(entries: Iterable[str]) -> tuple[tuple[IpNetwork, ...], tuple[str, ...]]:
    networks: list[IpNetwork] = []
    globs: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            globs.append(entry.lower().rstrip("."))
    return tuple(networks), tuple(globs)


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts may be called: deny entries always win; an allow list, when set, restricts;
    ``allow_loopback`` lifts loopback (127.0.0.0/8, ::1, ``localhost``) from the deny list."""

    allow_networks: tuple[IpNetwork, ...]
    allow_globs: tuple[str, ...]
    deny_networks: tuple[IpNetwork, ...]
    deny_globs: tuple[str, ...]
    allow_loopback: bool = False

    @classmethod
    def build(cls, allow: Iterable[str], deny: Iterable[str], *, allow_loopback: bool = False) -> HostPolicy:
        allow_networks, allow_globs = _parse(allow)
        deny_networks, deny_globs = _parse(deny)
        return cls(allow_networks, allow_globs, deny_networks, deny_globs, allow_loopback)

    @property
    def has_allow_list(self) -> bool:
        return bool(self.allow_networks or self.allow_globs)

    def check_host(self, text: str) -> str | None:
        """``None`` if ``text`` (as written in a URI or a registration) may be called, else why not."""
        try:
            host = normalise(text)
        except HostError as exc:
            return str(exc)
        return self.check(host)

    def check(self, host: Host) -> str | None:
        if host.address is None:
            return self._check_name(host.name or "")
        reason = self._denied(host.address, host.embedded)
        if reason is not None:
            return reason
        if self.has_allow_list and not any(host.address in net for net in self.allow_networks):
            return f"address {host.address} is not in the allow list"
        return None

    def _check_name(self, name: str) -> str | None:
        loopback = self.allow_loopback and any(fnmatchcase(name, g) for g in LOOPBACK_NAMES)
        if not loopback and any(fnmatchcase(name, g) for g in self.deny_globs):
            return f"host {name} is denied"
        if self.has_allow_list and not any(fnmatchcase(name, g) for g in self.allow_globs):
            return f"host {name} is not in the allow list"
        return None

    def _denied(self, address: IpAddress, embedded: tuple[ipaddress.IPv4Address, ...] = ()) -> str | None:
        if self.allow_loopback and address.is_loopback:
            return None
        if any(address in net for net in self.deny_networks):
            return f"address {address} is in a denied range"
        for inner in embedded:
            if any(inner in net for net in self.deny_networks):
                return f"address {address} carries {inner}, in a denied range"
        return None

    def check_addresses(self, addresses: Iterable[str]) -> str | None:
        """Re-check the addresses a name resolved to, at connect time: every one must pass the deny
        list (a name may resolve into a denied range, or change its answer: DNS rebinding)."""
        for text in addresses:
            try:
                host = normalise_address(text)
            except HostError as exc:
                return str(exc)
            assert host.address is not None
            reason = self._denied(host.address, host.embedded)
            if reason is not None:
                return f"resolves to {text}: {reason}"
        return None


@dataclass(frozen=True)
class UriPolicy:
    schemes: frozenset[str]
    hosts: HostPolicy

    @classmethod
    def build(
        cls,
        schemes: Iterable[str],
        allow: Iterable[str],
        deny: Iterable[str],
        *,
        allow_loopback: bool = False,
    ) -> UriPolicy:
        hosts = HostPolicy.build(allow, deny, allow_loopback=allow_loopback)
        return cls(frozenset(s.lower() for s in schemes), hosts)

    def check(self, uri: str) -> str | None:
        """``None`` if ``uri`` may be called, else the reason it may not."""
        if not uri.isprintable() or any(c in uri for c in " \\"):
            return "the URI contains spaces, backslashes or control characters"
        try:
            parts = urlsplit(uri)
            _ = parts.port  # raises on a bad port
        except ValueError as exc:
            return f"not a valid URI: {exc}"
        if parts.scheme.lower() not in self.schemes:
            allowed = ", ".join(sorted(self.schemes))
            return f"scheme {parts.scheme or '(none)'!r} is not allowed (allowed: {allowed})"
        if "@" in parts.netloc:
            return "user-info in the URI is not allowed"
        host = _authority_host(parts.netloc)
        if not host:
            return "the URI has no host"
        return self.hosts.check_host(host)

    def check_host(self, host: str) -> str | None:
        return self.hosts.check_host(host)

    def check_addresses(self, addresses: Iterable[str]) -> str | None:
        return self.hosts.check_addresses(addresses)


def _authority_host(netloc: str) -> str:
    """The host of an authority as written (brackets kept): ``host[:port]`` or ``[v6][:port]``."""
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


def refused(pointer: str, reason: str) -> ProblemError:
    """The answer to a client-supplied URI the policy refuses, at the time it is submitted: the
    value is not one this system will call (TS 29.500 5.2.7.2: 400 with the offending IE named)."""
    name = pointer.rsplit("/", 1)[-1]
    return ProblemError(
        400,
        Cause.URI_NOT_ALLOWED,
        f"{name} is refused by the outbound URI policy",
        invalid_params=[InvalidParam(param=pointer, reason=reason)],
    )


def instance_address_refusals(policy: HostPolicy, registration: ServiceRegistration) -> list[InvalidParam]:
    """Every address of a service registration the instance policy refuses (pure; empty: accepted)."""
    refusals: list[InvalidParam] = []
    for index, interface in enumerate(registration.interfaces):
        for field, value in (
            ("ipv4Addr", interface.ipv4_addr),
            ("ipv6Addr", interface.ipv6_addr),
            ("fqdn", interface.fqdn),
        ):
            if value is None:
                continue
            try:
                # The field says which reading applies: an fqdn that is numeric must be canonical.
                host = normalise_name(value) if field != "ipv6Addr" else normalise_address(value)
                if field == "ipv4Addr" and host.address is None:
                    raise HostError(f"{value!r} is not an IPv4 address")
            except HostError as exc:
                refusals.append(InvalidParam(param=f"/interfaces/{index}/{field}", reason=str(exc)))
                continue
            reason = policy.check(host)
            if reason is not None:
                refusals.append(InvalidParam(param=f"/interfaces/{index}/{field}", reason=reason))
    return refusals


def check_instance_addresses(policy: HostPolicy, registration: ServiceRegistration) -> None:
    """Refuse a registration (or update) whose instance addresses the policy does not allow: the
    service access server would connect there for external applications (an instance registered
    at 169.254.169.254 turns the SAS into a window on the cloud metadata service)."""
    refusals = instance_address_refusals(policy, registration)
    if refusals:
        raise ProblemError(
            400,
            Cause.ADDRESS_NOT_ALLOWED,
            "an instance address is refused by the instance address policy",
            invalid_params=refusals,
        )


def outbound_policy(settings: Settings) -> UriPolicy:
    """The policy for URIs the system will call (``targetUri``, ``notificationDestination``)."""
    return UriPolicy.build(
        settings.outbound_schemes,
        settings.outbound_allow_hosts,
        settings.outbound_deny_hosts,
        allow_loopback=settings.outbound_allow_loopback,
    )


def instance_policy(settings: Settings) -> HostPolicy:
    """The policy for the addresses MC service instances register (and the SAS connects to)."""
    return HostPolicy.build(
        settings.instance_allow_hosts,
        settings.instance_deny_hosts,
        allow_loopback=settings.instance_allow_loopback,
    )
