"""The service access server as a role of ``asgate up`` / ``asgate serve access``: the CSC-15 server
on the control plane, the data plane on ``sas_listen``, the snapshot puller, the registration with a
registry elsewhere (and its heartbeat), and the tasks that save the state and write the audit rows of
refusals."""

from __future__ import annotations

import ssl

from starlette.routing import BaseRoute

from asgate.access.csc15 import SCOPE, Csc15Server, ProfileFetcher, SnapshotPuller
from asgate.access.gate import AuditBuffer, SasGate
from asgate.access.metrics import SasMetrics
from asgate.access.options import EngineOptions, PoolOptions
from asgate.access.registrar import Registrar
from asgate.access.revocations import RevocationPuller
from asgate.access.server import AccessServer
from asgate.access.state import AccessState
from asgate.access.workers import WorkerProcesses
from asgate.idm.internal import InternalTokens
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.store.tx import Tx
from asgate.system.runtime import Runtime

_log = logs.get("asgate.access")


class AccessRole:
    name = "access"
    apis = ("mcx-access-profiles",)

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        self.state = AccessState(
            pool_options=PoolOptions.from_settings(s), path=s.data_dir / "sas-state.json"
        )
        self.audit = AuditBuffer()
        # sas_workers > 1: the workers serve and count; /metrics shows their sum (WorkerMetrics), so
        # this process's unused data-plane metrics stay off the runtime's registry.
        workers = s.sas_workers > 1
        self.metrics = SasMetrics(None if workers else rt.metrics.registry)
        self.gate = SasGate.configured(
            s, self.state, rt.validator, keyring=rt.keyring, metrics=self.metrics, audit=self.audit.add
        )
        self.redis = self.gate.redis
        tokens = InternalTokens(
            rt.keyring, issuer=s.token_issuer, audience=s.token_audience, subject="asgate-access", scope=SCOPE
        )
        registry_url = s.sas_registry_url or s.public_root
        self.puller = SnapshotPuller(self.state, rt.http, registry_url, tokens)
        # Issue 14: a profile or grant the registry has told an application about, not pushed yet.
        self.gate.misses = ProfileFetcher(
            self.state,
            rt.http,
            registry_url,
            tokens,
            rate=s.sas_profile_fetch_rate,
            negative_ttl=s.sas_profile_fetch_negative_ttl,
        )
        self.csc15 = Csc15Server(
            self.state,
            rt.authenticate,
            s.sas_csc15_max_body_bytes,
            self.puller.request,
            clients=frozenset(s.sas_csc15_clients),
            issuer=s.token_issuer,
            audit=self.audit.add,
        )
        self.server = AccessServer(self.gate, EngineOptions.from_settings(s), self.metrics)
        # A registry elsewhere (split deployment, a database of its own): revoked access tokens
        # come from there too. Sharing the database (``asgate up``), the store has them already.
        self.revocations = (
            RevocationPuller(rt.validator.revocations, rt.store, rt.http, s.sas_registry_url, tokens)
            if s.sas_registry_url
            else None
        )
        # Issue 10: a registry elsewhere learns from the access server itself where to push CSC-15.
        self.registrar = (
            Registrar(
                rt.http,
                s.sas_registry_url,
                s.sas_identity,
                s.sas_csc15_url or s.public_root,
                InternalTokens(
                    rt.keyring,
                    issuer=s.token_issuer,
                    audience=s.token_audience,
                    subject=f"asgate-access-{s.sas_identity}",
                    scope=SCOPE,
                ),
                interval=s.sas_heartbeat_interval,
            )
            if s.sas_register and s.sas_registry_url and "registry" not in rt.role_names
            else None
        )
        # sas_workers > 1: separate data-plane processes follow the state file this process writes.
        self.workers = (
            WorkerProcesses(s, s.sas_workers, s.config_file, rt.metrics.registry) if workers else None
        )
        self.background = Background()

    def routes(self) -> list[BaseRoute]:
        return self.csc15.routes()

    async def start(self) -> None:
        s = self.rt.settings
        if self.state.restore():
            _log.info("access state restored", sequence=self.state.seq, profiles=len(self.state.profiles))
        self.puller.request()  # seed 10.X.5 pre-condition 2: the profiles, from the registry
        self.background.spawn(self.puller.run(self.background), "sas-snapshot")
        self.background.spawn(self._keep(0.05 if self.workers else 1.0), "sas-keeper")
        if self.revocations is not None:
            self.background.spawn(self.revocations.run(self.background), "sas-revocations")
        if self.registrar is not None:
            self.background.spawn(self.registrar.run(self.background), "sas-registrar")
        if self.workers is not None:
            self.state.save()
            await self.workers.start()
        else:
            await self.server.start(s.sas_listen.host, s.sas_listen.port, ssl=_tls(self.rt))
        _log.info("service access server listening", address=str(s.sas_listen), workers=s.sas_workers)

    async def stop(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
        await self.server.stop()
        await self.background.stop()
        await self._flush()
        self.state.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def _keep(self, interval: float) -> None:
        """Save the state when it changed (at most every ``interval`` s) and write queued audit rows."""
        while await self.background.pause(interval):
            try:
                await self._flush()
            except Exception:  # noqa: BLE001 - the data plane must outlive a failed save
                _log.exception("saving the access state or its audit rows failed")

    async def _flush(self) -> None:
        if self.state.dirty:
            self.state.save()
        rows = self.audit.take()
        if rows:
            await self.rt.store.write(lambda tx: _audit_rows(tx, rows=rows))


def _audit_rows(tx: Tx, *, rows: list[dict[str, object]]) -> None:
    from datetime import UTC, datetime

    tx.audit.append_rows([{"at": datetime.now(UTC), "details": None, **row} for row in rows])


def _tls(rt: Runtime) -> ssl.SSLContext | None:
    s = rt.settings
    if s.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(s.tls_cert), str(s.tls_key))
    # RFC 7301: the client picks; HTTP/2 (RFC 9113 3.2) when it offers "h2", else HTTP/1.1.
    context.set_alpn_protocols(["h2", "http/1.1"] if s.sas_http2 else ["http/1.1"])
    return context
