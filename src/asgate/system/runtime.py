"""Everything long-lived that the roles share, opened once per process and closed on shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
from starlette.types import Scope

from asgate.auth import Authenticator, TokenValidator
from asgate.auth.revocation import Revocations
from asgate.idm.keys import KeyRing
from asgate.idm.keystore import StoredKeys
from asgate.kernel.atrest import private_dir
from asgate.kernel.background import Background
from asgate.kernel.metrics import Metrics
from asgate.kernel.resolver import PolicyResolver, proxy_hosts
from asgate.kernel.settings import Settings
from asgate.kernel.uripolicy import HostPolicy, UriPolicy, instance_policy, outbound_policy
from asgate.store import Store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    keyring: KeyRing  # the signing keys, as this process last read them from the store
    signing_keys: StoredKeys  # rotates and retires them (in the store, for every process)
    validator: TokenValidator
    authenticate: Authenticator
    metrics: Metrics
    http: httpx.AsyncClient
    uri_policy: UriPolicy
    instance_policy: HostPolicy
    role_names: tuple[str, ...] = ()
    # How callback sessions are made (see :meth:`callback_session`); the demo records through them.
    callback_traces: list[aiohttp.TraceConfig] = field(default_factory=list)
    callback_keep_alive: bool = True
    # Where callback sessions resolve names before the policy looks at the answers (None: the
    # system's resolver); a test puts a resolver whose answers it controls here.
    callback_resolver: AbstractResolver | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Runtime]:
        private_dir(settings.data_dir)
        metrics = Metrics()
        store = await Store.open(
            settings.db_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
            observe=metrics.observe_commit,
        )
        try:
            signing_keys = await StoredKeys.open(settings, store)
        except BaseException:
            await store.close()
            raise
        keyring = signing_keys.ring
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)
        # Every process that checks bearer tokens follows the revoked ones (RFC 7009).
        revocations = Revocations()
        background = Background()
        background.spawn(revocations.follow(store.oidc, background), "revocations")
        # Every process publishes and signs with the keys of the store, rotations included.
        background.spawn(signing_keys.follow(background), "signing-keys")
        try:
            validator = TokenValidator(
                issuer=settings.token_issuer,
                audience=settings.token_audience,
                keyring=keyring,
                trusted=settings.trusted_issuers,
                http=http,
                revocations=revocations,
            )
            yield cls(
                settings=settings,
                store=store,
                keyring=keyring,
                signing_keys=signing_keys,
                validator=validator,
                authenticate=Authenticator(validator),
                metrics=metrics,
                http=http,
                uri_policy=outbound_policy(settings),
                instance_policy=instance_policy(settings),
            )
        finally:
            await background.stop()
            await http.aclose()
            await store.close()

    def callback_session(self, limit: int) -> aiohttp.ClientSession:
        """An aiohttp session for high-volume callbacks (profile notifications): up to ``limit``
        connections. The caller closes it."""
        # Every name is resolved through the outbound policy and aiohttp connects to the addresses
        # it checked (DNS rebinding); a configured proxy resolves the destination itself.
        resolver = PolicyResolver(self.uri_policy.hosts, self.callback_resolver, exempt=proxy_hosts())
        connector = aiohttp.TCPConnector(
            limit=limit, ttl_dns_cache=60, force_close=not self.callback_keep_alive, resolver=resolver
        )
        # trust_env: HTTP(S)_PROXY and NO_PROXY apply, as they do to the httpx clients.
        return aiohttp.ClientSession(
            connector=connector, trace_configs=self.callback_traces or None, trust_env=True
        )

    def api_root(self, scope: Scope) -> str:
        """``{apiRoot}`` (TS 29.501 4.4.1) for Location headers: configured, else as the client called us."""
        if self.settings.api_root:
            return self.settings.api_root
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        if host is None:
            server = scope.get("server") or ("127.0.0.1", self.settings.listen.port)
            return f"{scope['scheme']}://{server[0]}:{server[1]}"
        return f"{scope['scheme']}://{host.decode('latin-1')}"
