"""Outbound-URI policy for client-supplied URIs (``targetUri``, ``notificationDestination``).

A URI is refused unless its scheme is allowed, it has a host and no user-info, its host matches
no deny entry and, when an allow list is set, matches an allow entry. Entries are CIDR blocks
(``10.0.0.0/8``, ``fe80::/10``) or host-name globs (``*.example.com``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from asgate.problem import Cause, InvalidParam, ProblemError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(entries: Iterable[str]) -> tuple[tuple[IpNetwork, ...], tuple[str, ...]]:
    networks: list[IpNetwork] = []
    globs: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            globs.append(entry.lower())
    return tuple(networks), tuple(globs)


@dataclass(frozen=True)
class UriPolicy:
    schemes: frozenset[str]
    allow_networks: tuple[IpNetwork, ...]
    allow_globs: tuple[str, ...]
    deny_networks: tuple[IpNetwork, ...]
    deny_globs: tuple[str, ...]

    @classmethod
    def build(cls, schemes: Iterable[str], allow: Iterable[str], deny: Iterable[str]) -> UriPolicy:
        allow_networks, allow_globs = _parse(allow)
        deny_networks, deny_globs = _parse(deny)
        return cls(
            frozenset(s.lower() for s in schemes), allow_networks, allow_globs, deny_networks, deny_globs
        )

    @property
    def has_allow_list(self) -> bool:
        return bool(self.allow_networks or self.allow_globs)

    def check(self, uri: str) -> str | None:
        """``None`` if ``uri`` may be called, else the reason it may not."""
        try:
            parts = urlsplit(uri)
            host = parts.hostname
            _ = parts.port  # raises on a bad port
        except ValueError as exc:
            return f"not a valid URI: {exc}"
        if parts.scheme.lower() not in self.schemes:
            allowed = ", ".join(sorted(self.schemes))
            return f"scheme {parts.scheme or '(none)'!r} is not allowed (allowed: {allowed})"
        if not host:
            return "the URI has no host"
        if parts.username is not None or parts.password is not None:
            return "user-info in the URI is not allowed"
        return self.check_host(host)

    def check_host(self, host: str) -> str | None:
        host = host.lower().strip("[]")
        try:
            address: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            if any(address in net for net in self.deny_networks):
                return f"address {host} is in a denied range"
            if (
                self.has_allow_list
                and not any(address in net for net in self.allow_networks)
                and not any(fnmatchcase(host, g) for g in self.allow_globs)
            ):
                return f"address {host} is not in the allow list"
            return None
        if any(fnmatchcase(host, g) for g in self.deny_globs):
            return f"host {host} is denied"
        if self.has_allow_list and not any(fnmatchcase(host, g) for g in self.allow_globs):
            return f"host {host} is not in the allow list"
        return None

    def check_addresses(self, addresses: Iterable[str]) -> str | None:
        """Re-check resolved addresses at send time (a name may resolve into a denied range)."""
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if any(address in net for net in self.deny_networks):
                return f"resolves to {text}, in a denied range"
        return None


def refused(pointer: str, reason: str) -> ProblemError:
    """The answer to a client-supplied URI the policy refuses: schema-valid (TS 29.571 ``Uri`` is any
    string) but not allowed, hence 403 rather than 400."""
    name = pointer.rsplit("/", 1)[-1]
    return ProblemError(
        403,
        Cause.URI_NOT_ALLOWED,
        f"{name} is refused by the outbound URI policy",
        invalid_params=[InvalidParam(param=pointer, reason=reason)],
    )
