"""Connect-time address checks: resolve a name, apply the policy to every answer, and connect to an
address that was checked, never to a second resolution of the name (DNS rebinding: a name that
answers a harmless address when the URI is stored and 127.0.0.1 when it is called).

Two outbound paths call addresses that others chose: the registry's notifications (aiohttp, through
:class:`PolicyResolver`) and the service access server's connections to MC service instances
(:func:`connect_address`). The decisions are :mod:`asgate.kernel.uripolicy`'s; this module is the I/O.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from asgate.kernel import logs
from asgate.kernel.uripolicy import HostError, HostPolicy, normalise

_log = logs.get("asgate.kernel.resolver")


class AddressRefused(OSError):
    """A host, or an address it resolved to, is refused by the policy (nothing was sent)."""


def proxy_hosts() -> frozenset[str]:
    """Hosts of the HTTP(S) proxies the environment configures: the callback session connects to them
    (an operator's choice) and the proxy resolves the destination."""
    hosts = (urlsplit(url).hostname for key, url in urllib.request.getproxies().items() if key != "no")
    return frozenset(h.lower() for h in hosts if h)


class PolicyResolver(AbstractResolver):
    """aiohttp resolver that refuses a name when any address it resolves to is denied; aiohttp then
    connects to the very addresses returned here. (IP literals never reach a resolver: the caller
    checks the URI's host first, see ``Notifier._post``.)"""

    def __init__(
        self, policy: HostPolicy, inner: AbstractResolver | None = None, exempt: Iterable[str] = ()
    ) -> None:
        self._policy = policy
        self._inner = inner
        self._exempt = frozenset(exempt)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        if host.lower() not in self._exempt:
            reason = self._policy.check_addresses(str(r["host"]) for r in results)
            if reason is not None:
                raise AddressRefused(reason)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


async def connect_address(policy: HostPolicy, host: str, port: int) -> str:
    """The address to connect to for an instance at ``host``: the host itself when it is an address
    the policy allows, else the first address the name resolves to once every one of them passed.
    Raises :class:`AddressRefused` (an ``OSError``, so a caller counts it as a failed connect)."""
    try:
        literal = normalise(host).address is not None
    except HostError as exc:
        raise AddressRefused(str(exc)) from None
    reason = policy.check_host(host)
    if reason is None and not literal:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise AddressRefused(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = [str(info[4][0]) for info in infos]
        reason = policy.check_addresses(addresses)
        if reason is None and addresses:
            return addresses[0]
        reason = reason or f"{host} resolves to no address"
    if reason is not None:
        _log.warning("instance address refused", host=host, reason=reason)
        raise AddressRefused(reason)
    return host
