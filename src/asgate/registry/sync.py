"""CSC-15 client (seed 7.5.2.15, Tables 10.X.2.5/6): every application profile, MC user
authorization and service pool change goes to every configured service access server, in order.

The change log *is* the outbox: each change has a sequence number, and each access server has a
cursor (the last sequence it acknowledged) stored in ``sas_targets``. The pusher sends the changes
after the cursor — one as ``PUT``/``DELETE`` on the resource, several as one ordered batch — with the
previous sequence number, and advances the cursor on a 2xx. A failure is retried with backoff and
never skipped. An access server that finds a gap (it restarted, or lost a change) pulls a snapshot
from ``GET /mcx-registry-sync/v1/snapshot`` and carries on from its sequence number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Connection, func, select

from asgate import logs
from asgate.background import Background
from asgate.client._http import TokenSource
from asgate.registry.notify import backoff
from asgate.registry.scripts import CSC15_KINDS, grant_payload, pool_payload
from asgate.store import Store
from asgate.store import registry as db
from asgate.store.schema_registry import change_log

_log = logs.get("asgate.registry.sync")
API = "/mcx-access-profiles/v1"
SEQUENCE = "Asgate-Sequence"
PREVIOUS = "Asgate-Previous-Sequence"


def resource_path(kind: str, key: str) -> str:
    """Where one change goes on the access server's ``mcx-access-profiles`` API."""
    if kind == "app-profile":
        return f"{API}/app-profiles/{quote(key, safe='')}"
    if kind == "user-authorization":
        app_id, _, user = key.partition("/")
        return f"{API}/user-authorizations/{quote(app_id, safe='')}/{quote(user, safe='')}"
    service_type, _, service_name = key.partition("/")
    return f"{API}/service-pools/{quote(service_type, safe='')}/{quote(service_name, safe='')}"


def change_body(change: db.Change) -> dict[str, Any]:
    return {
        "sequence": change.seq,
        "kind": change.kind,
        "key": change.key,
        "op": change.op,
        "payload": change.payload,
    }


class Pusher:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        targets: Sequence[str],
        tokens: TokenSource,
        *,
        batch: int = 500,
        timeout: float = 10.0,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._http = http
        self._targets = [t.rstrip("/") for t in targets]
        self._tokens = tokens
        self._batch = batch
        self._timeout = timeout
        self._retry = (retry_base, retry_max)
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, background: Background) -> None:
        """Push to every target until the role stops."""
        if not self._targets:
            return
        start = await last_csc15_seq(self._store)
        for url in self._targets:
            await self._store.transact(_ensure, (url, start))
        await asyncio.gather(*(self._run_target(url, background) for url in self._targets))

    async def _run_target(self, url: str, background: Background) -> None:
        state = next(t for t in await self._store.registry.targets() if t.url == url)
        acked, attempts, not_before = state.acked_seq, state.attempts, state.next_attempt_at
        while background.running:
            wait = not_before - self._clock()
            if wait > 0 and not await background.pause(wait):
                return
            try:
                changes = await self._store.registry.changes(acked, limit=self._batch, kinds=CSC15_KINDS)
            except Exception:  # noqa: BLE001 - keep pushing after a database hiccup
                _log.exception("reading the change log failed")
                await background.pause(1.0)
                continue
            if not changes:
                self._wake.clear()
                await background.pause(1.0, self._wake)
                continue
            error = await self._send(url, acked, changes)
            if error is None:
                acked, attempts, not_before = changes[-1].seq, 0, 0.0
                await self._store.transact(_acked, (url, acked))
            else:
                attempts += 1
                not_before = self._clock() + backoff(attempts, *self._retry)
                await self._store.transact(_failed, (url, not_before, error))
                _log.info("CSC-15 push failed", target=url, error=error, attempt=attempts)

    async def _send(self, url: str, previous: int, changes: list[db.Change]) -> str | None:
        try:
            headers = {"Authorization": f"Bearer {await self._tokens.token(self._http)}"}
            if len(changes) == 1:
                change = changes[0]
                headers |= {SEQUENCE: str(change.seq), PREVIOUS: str(previous)}
                target = f"{url}{resource_path(change.kind, change.key)}"
                if change.op == "DELETE":
                    response = await self._http.delete(target, headers=headers, timeout=self._timeout)
                else:
                    response = await self._http.put(
                        target, json=change.payload, headers=headers, timeout=self._timeout
                    )
            else:
                body = {"previousSequence": previous, "changes": [change_body(c) for c in changes]}
                response = await self._http.post(
                    f"{url}{API}/changes", json=body, headers=headers, timeout=self._timeout
                )
        except Exception as exc:  # noqa: BLE001 - network errors, token errors: retry later
            return f"{type(exc).__name__}: {exc}"[:300]
        return None if response.is_success else f"HTTP {response.status_code}: {response.text[:200]}"


async def last_csc15_seq(store: Store) -> int:
    async with store.engine.connect() as conn:
        query = select(func.max(change_log.c.seq)).where(change_log.c.kind.in_(CSC15_KINDS))
        return int((await conn.execute(query)).scalar() or 0)


def snapshot_tx(conn: Connection, _arg: None) -> dict[str, Any]:
    """Everything an access server needs, consistent with the sequence number it carries."""
    sequence = conn.execute(
        select(func.max(change_log.c.seq)).where(change_log.c.kind.in_(CSC15_KINDS))
    ).scalar()
    pools: dict[tuple[str, str], list[db.InstanceRecord]] = {}
    for record in db.all_instances_tx(conn):
        pools.setdefault(record.pool, []).append(record)
    return {
        "sequence": int(sequence or 0),
        "appProfiles": [r.profile.dump() for r in db.profiles_tx(conn)],
        "userAuthorizations": [grant_payload(g) for g in db.all_grants_tx(conn)],
        "servicePools": [pool_payload(pool, records) for pool, records in sorted(pools.items())],
    }


def _ensure(conn: Connection, arg: tuple[str, int]) -> None:
    db.target_ensure_tx(conn, *arg)


def _acked(conn: Connection, arg: tuple[str, int]) -> None:
    db.target_acked_tx(conn, arg[0], arg[1], datetime.now(UTC))


def _failed(conn: Connection, arg: tuple[str, float, str]) -> None:
    db.target_failed_tx(conn, *arg)
