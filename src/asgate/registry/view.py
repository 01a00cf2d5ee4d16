"""The registry's in-memory read model for discovery: pools of REGISTERED instances, application
policies and MC user grants. Loaded at start, then kept current by reading the change log, so
changes made by another process or by the administrator CLI show within the watch interval."""

from __future__ import annotations

import asyncio

from asgate.domain.registry import ExternalApp, Grant, ServiceRegistration, Version
from asgate.registry import interfaces
from asgate.store.pools import PoolStore
from asgate.store.registry import InstanceRecord, RegistryStore

Pool = tuple[tuple[str, str], list[ServiceRegistration]]


class RegistryView:
    def __init__(self, store: RegistryStore, approvals: PoolStore) -> None:
        self._store = store
        self._approvals = approvals
        self.pools: dict[tuple[str, str], list[ServiceRegistration]] = {}
        self.apps: dict[str, ExternalApp] = {}
        self.grants: dict[tuple[str, str], Grant] = {}
        self.seq = 0
        self._lock = asyncio.Lock()
        self._started = 0  # refreshes begun: one begun after a caller's write has seen that write
        self._index: dict[str, list[Pool]] | None = None  # lower-case type -> its pools, by name

    def candidates(self, service_type: str | None, service_name: str | None) -> list[Pool]:
        """The pools a discovery query can match, sorted by type and name, found through an index
        rebuilt only after a pool changed (a lookup by type and name costs the same with 10 or
        10,000 instances registered)."""
        if self._index is None:
            index: dict[str, list[Pool]] = {}
            for key in sorted(self.pools):
                index.setdefault(key[0].lower(), []).append((key, self.pools[key]))
            self._index = index
        if service_type is not None:
            pools = self._index.get(service_type.lower(), [])
        else:
            pools = [pool for _, of_type in sorted(self._index.items()) for pool in of_type]
        if service_name is not None:
            return [pool for pool in pools if pool[0][1] == service_name]
        return pools

    async def load(self) -> None:
        seq = await self._store.last_seq()
        pools: dict[tuple[str, str], list[ServiceRegistration]] = {}
        approvals = await self._approvals.interfaces()
        for record in await self._store.instances():
            if record.status == "REGISTERED":
                approval = approvals.get(record.pool)
                registration = interfaces.effective_registration(
                    record.registration, approval.approved if approval else None
                )
                pools.setdefault(record.pool, []).append(registration)
        self.pools = pools
        self._index = None
        self.apps = {app.client_id: app for app in await self._store.apps()}
        self.grants = {(g.app_id, g.mc_service_id): g for g in await self._store.grants()}
        self.seq = seq

    async def refresh(self) -> bool:
        """Apply the changes logged since the last look (each key reloaded once); True if any.

        Concurrent callers share the work: a caller whose write committed before a refresh began
        needs no refresh of its own (without this, every write of a group commit re-read them all)."""
        mine = self._started
        async with self._lock:
            if self._started > mine:
                return False
            self._started += 1
            return await self._apply()

    async def _apply(self) -> bool:
        changed = False
        while changes := await self._store.changed_keys(self.seq):
            keys = {(kind, key) for _, kind, key in changes}
            pools = sorted(_pool(key) for kind, key in keys if kind == "service-pool")
            if pools:  # one query for every pool that changed: a burst of registrations is one read
                approvals = await self._approvals.interfaces(pools)
                for pool, records in (await self._store.pools(pools)).items():
                    approval = approvals.get(pool)
                    self._set_pool(pool, records, approval.approved if approval else None)
            for kind, key in sorted(keys):
                if kind != "service-pool":
                    await self._reload(kind, key)
            self.seq = changes[-1][0]
            changed = True
        return changed

    def _set_pool(  # issue 8 item 1: discovery shows only the approved part of a description
        self, pool: tuple[str, str], records: list[InstanceRecord], approved: list[Version] | None
    ) -> None:
        registered = [
            interfaces.effective_registration(r.registration, approved)
            for r in records
            if r.status == "REGISTERED"
        ]
        if registered:
            self.pools[pool] = registered
        else:
            self.pools.pop(pool, None)
        self._index = None

    async def _reload(self, kind: str, key: str) -> None:
        if kind == "external-app":
            app = await self._store.app(key)
            if app is None:
                self.apps.pop(key, None)
            else:
                self.apps[key] = app
        elif kind == "user-authorization":
            app_id, _, user = key.partition("/")
            grant = await self._store.grant(app_id, user)
            if grant is None:
                self.grants.pop((app_id, user), None)
            else:
                self.grants[(app_id, user)] = grant


def _pool(key: str) -> tuple[str, str]:
    service_type, _, service_name = key.partition("/")
    return service_type, service_name
