"""CSC-15 client (seed 7.5.2.15, Tables 10.X.2.5/6): every application profile, MC user
authorization and service pool change goes to every configured service access server, in order.

The change log *is* the outbox: each change has a sequence number, and each access server has a
cursor (the last sequence it acknowledged) stored in ``sas_targets``. The pusher sends the changes
after the cursor — one as ``PUT``/``DELETE`` on the resource, several as one ordered batch — with the
previous sequence number, and advances the cursor on a 2xx. A failure is retried with backoff and
never skipped.

An access server applies a push only if it continues its sequence exactly, and otherwise answers 409
with the sequence it holds. Every answer (and, while idle, ``GET /sequence`` every
``registry_sas_check_interval``) is compared with the cursor by :func:`repair`: an access server
holding a sequence this registry issued is resumed from there (it lost changes, or got them from a
snapshot); one holding a sequence this registry never issued (a forged push, a registry restored from
a backup) is told to ``POST /resync``: it pulls ``GET /mcx-registry-sync/v1/snapshot`` and adopts its
sequence, even a lower one, because the snapshot is authoritative.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal
from urllib.parse import quote

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from asgate.client._http import TokenSource
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.backoff import backoff
from asgate.registry.scripts import CSC15_KINDS, grant_payload, pool_payload
from asgate.store import Store
from asgate.store.registry import Change, InstanceRecord, TargetState
from asgate.store.tx import Tx

_log = logs.get("asgate.registry.sync")
API = "/mcx-access-profiles/v1"
SEQUENCE = "Asgate-Sequence"
PREVIOUS = "Asgate-Previous-Sequence"
MAX_SEQUENCE = 2**63 - 1
PUSH_MAX_BYTES = 4 * 1_048_576  # a batch's payloads stop growing past this (the SAS takes 8 MiB)

Repair = Literal["in-step", "resume", "resync"]


def repair(reported: int, cursor: int, issued: bool) -> Repair:
    """What to do when an access server reports ``reported`` while the cursor says ``cursor``.

    ``issued``: whether ``reported`` is 0 or the sequence of a CSC-15 change in this registry's log.
    An access server behind the cursor lost changes (a restart from an older saved state), one ahead
    got them another way (a snapshot, another registry process): both resume from what they hold.
    A sequence never issued means the access server's state did not come from this registry: only a
    snapshot can repair it.
    """
    if reported == cursor:
        return "in-step"
    return "resume" if issued else "resync"


@dataclass(frozen=True)
class Answer:
    """An access server's answer to a push or a check: its sequence, if it said one."""

    ok: bool
    reported: int | None = None
    error: str | None = None


def resource_path(kind: str, key: str) -> str:
    """Where one change goes on the access server's ``mcx-access-profiles`` API."""
    if kind == "app-profile":
        return f"{API}/app-profiles/{quote(key, safe='')}"
    if kind == "user-authorization":
        app_id, _, user = key.partition("/")
        return f"{API}/user-authorizations/{quote(app_id, safe='')}/{quote(user, safe='')}"
    service_type, _, service_name = key.partition("/")
    return f"{API}/service-pools/{quote(service_type, safe='')}/{quote(service_name, safe='')}"


def change_body(change: Change) -> dict[str, Any]:
    return {
        "sequence": change.seq,
        "kind": change.kind,
        "key": change.key,
        "op": change.op,
        "payload": change.payload,
    }


@dataclass(eq=False)
class _Loop:
    """One target's push loop: woken by every change, stopped when the target leaves the set."""

    url: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def stopped(self) -> bool:
        return self.halt.is_set()

    def stop(self) -> None:
        self.halt.set()
        self.wake.set()


class Pusher:
    """Pushes the change log to every target: the static ``targets`` (``registry_sas_push_urls``)
    and, when ``registered`` is given, the URLs it returns (the live access servers that registered
    themselves, issue 10), read again every ``refresh_interval`` s or on :meth:`refresh`.

    Several registry processes share the targets' cursors in the database: a process pushes to a
    target only while it holds the target's lease (``lease`` s, renewed at half-life, released on a
    clean stop), so one process at a time pushes to each access server and another takes over
    within a lease when it dies. A target that leaves the set keeps its cursor: when it comes back
    the push resumes from there (or the access server is repaired as below).
    """

    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        targets: Sequence[str],
        tokens: TokenSource,
        *,
        registered: Callable[[], Awaitable[list[str]]] | None = None,
        refresh_interval: float = 1.0,
        lease: float = 15.0,
        batch: int = 500,
        timeout: float = 10.0,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        check_interval: float = 10.0,
        metrics: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._http = http
        self._static = list(dict.fromkeys(t.rstrip("/") for t in targets))
        self._registered = registered
        self._refresh_interval = refresh_interval
        self._lease = lease
        self.holder = secrets.token_hex(8)  # this process, in the targets' leases
        self._tokens = tokens
        self._batch = batch
        self._timeout = timeout
        self._retry = (retry_base, retry_max)
        self._check_interval = check_interval
        self._clock = clock
        self._targets = list(self._static)
        self._loops: dict[str, _Loop] = {}
        self._retiring: dict[str, asyncio.Task[None]] = {}
        self._refresh = asyncio.Event()
        self._held: set[str] = set()
        self._acked: dict[str, int] = {}
        self._live: dict[str, bool] = dict.fromkeys(self._targets, True)
        self._progress = asyncio.Condition()
        registry = metrics or CollectorRegistry()
        self._repairs = Counter(
            "asgate_csc15_repairs",
            "Access servers found out of step with the registry, by what was done",
            ["target", "action"],
            registry=registry,
        )
        self._reported = Gauge(
            "asgate_csc15_sas_sequence", "The sequence each access server last reported", ["target"],
            registry=registry,
        )  # fmt: skip

    @property
    def targets(self) -> list[str]:
        """Where the changes go now: the static targets and the live registered access servers."""
        return self._targets

    @property
    def held(self) -> frozenset[str]:
        """The targets this process pushes to now (it holds their lease)."""
        return frozenset(self._held)

    def wake(self) -> None:
        for loop in self._loops.values():
            loop.wake.set()

    def refresh(self) -> None:
        """The set of registered access servers changed: read it again now."""
        self._refresh.set()

    async def delivered(self, sequence: int, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every live access server acknowledged ``sequence``;
        an access server that is failing is not waited for (it gets the change once it answers).
        Targets another registry process pushes to are followed through their cursors."""
        self.wake()

        def done() -> bool:
            return all(self._acked.get(u, -1) >= sequence for u in self._targets if self._live.get(u, True))

        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            remote = [u for u in self._targets if u not in self._held]
            try:
                async with asyncio.timeout(min(remaining, 0.05) if remote else remaining), self._progress:
                    await self._progress.wait_for(done)
            except TimeoutError:
                if remote:
                    await self._follow(remote)
        return True

    async def _follow(self, urls: list[str]) -> None:
        """Where the cursors of targets pushed to by another process stand."""
        try:
            states = await self._store.registry.targets()
        except Exception:  # noqa: BLE001 - the wait is bounded; the next round tries again
            return
        for state in states:
            if state.url in urls and state.url not in self._held:
                self._acked[state.url], self._live[state.url] = state.acked_seq, state.attempts == 0

    async def _advance(self, url: str, acked: int, live: bool) -> None:
        self._acked[url], self._live[url] = acked, live
        async with self._progress:
            self._progress.notify_all()

    async def run(self, background: Background) -> None:
        """Push to every target until the role stops."""
        if not self._static and self._registered is None:
            return
        try:
            while background.running:
                self._refresh.clear()
                try:
                    wanted = await self._wanted()
                except Exception:  # noqa: BLE001 - keep pushing to the targets known
                    _log.exception("reading the registered access servers failed")
                    wanted = list(self._loops)
                await self._adopt(wanted, background)
                await background.pause(self._refresh_interval, self._refresh)
        finally:
            loops = list(self._loops.values())
            for loop in loops:
                loop.stop()
            tasks = [t for t in [*(x.task for x in loops), *self._retiring.values()] if t is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._held:
                try:
                    await self._store.write(partial(_release, holder=self.holder))
                except Exception:  # noqa: BLE001 - the leases expire by themselves
                    _log.exception("releasing the CSC-15 leases failed")

    async def _wanted(self) -> list[str]:
        urls = list(self._static)
        if self._registered is not None:
            urls += [u for u in (x.rstrip("/") for x in await self._registered()) if u not in urls]
        return urls

    async def _adopt(self, wanted: list[str], background: Background) -> None:
        """Start a loop for every new target, stop those of targets that left (cursors kept)."""
        self._retiring = {u: t for u, t in self._retiring.items() if not t.done()}
        for url, loop in list(self._loops.items()):
            if loop.task is not None and loop.task.done():  # it failed (a database error): start again
                del self._loops[url]
                self._held.discard(url)
        for url in [u for u in self._loops if u not in wanted]:
            loop = self._loops.pop(url)
            loop.stop()
            if loop.task is not None:
                self._retiring[url] = loop.task
            self._live.pop(url, None)
            self._acked.pop(url, None)
            self._held.discard(url)
            _log.info("CSC-15 target dropped (its cursor is kept)", target=url)
        new = [u for u in wanted if u not in self._loops and u not in self._retiring]
        if new:
            start = await last_csc15_seq(self._store)
            for url in new:
                await self._store.write(partial(_ensure, url=url, start=start))
                loop = self._loops[url] = _Loop(url)
                loop.task = asyncio.create_task(self._run_target(loop, background), name=f"csc15 {url}")
                loop.task.add_done_callback(_report)
                if self._targets and url not in self._static:
                    _log.info("CSC-15 target added", target=url)
        self._targets = [u for u in wanted if u in self._loops]
        async with self._progress:
            self._progress.notify_all()

    async def _state(self, url: str) -> TargetState:
        return next(t for t in await self._store.registry.targets() if t.url == url)

    async def _hold(self, url: str) -> bool:
        """Take or renew this process's lease on pushing to ``url``."""
        now = self._clock()
        try:
            return await self._store.write(
                partial(_claim, url=url, holder=self.holder, now=now, until=now + self._lease)
            )
        except Exception:  # noqa: BLE001 - a database hiccup: not holding it, try again later
            _log.exception("claiming a CSC-15 target failed", target=url)
            return False

    async def _keep_lease(self, loop: _Loop, background: Background) -> float:
        """Take or renew the lease on ``loop``'s target: until when it is held, or 0.0 when another
        process holds it (after waiting a while before the next try)."""
        url = loop.url
        if await self._hold(url):
            self._held.add(url)
            return self._clock() + self._lease
        if url in self._held:
            _log.info("another registry process pushes to this access server now", target=url)
            self._held.discard(url)
        await background.pause(min(self._lease / 3, 5.0), loop.halt)
        return 0.0

    async def _run_target(self, loop: _Loop, background: Background) -> None:
        url = loop.url
        acked, attempts, not_before = 0, 0, 0.0
        checked, held_until = self._clock(), 0.0
        while background.running and not loop.stopped:
            if held_until - self._clock() < self._lease / 2:
                taken = url not in self._held
                held_until = await self._keep_lease(loop, background)
                if held_until and taken:  # the cursor as the previous holder (or a restart) left it;
                    state = await self._state(url)  # the first try at once (it may have come back)
                    acked, attempts, not_before = state.acked_seq, state.attempts, 0.0
                    await self._advance(url, acked, attempts == 0)
                continue
            wait = not_before - self._clock()
            if wait > 0:
                await background.pause(min(wait, self._lease / 2), loop.halt)
                continue
            try:
                changes = await self._store.registry.changes(acked, limit=self._batch, kinds=CSC15_KINDS)
            except Exception:  # noqa: BLE001 - keep pushing after a database hiccup
                _log.exception("reading the change log failed")
                await background.pause(1.0)
                continue
            if not changes and self._clock() - checked < self._check_interval:
                loop.wake.clear()
                await background.pause(min(1.0, self._check_interval), loop.wake)
                continue
            checked = self._clock()
            changes = _bounded(changes)
            answer = await (self._send(url, acked, changes) if changes else self._check(url))
            if answer.reported is not None:
                self._reported.labels(url).set(answer.reported)
            expected = changes[-1].seq if changes else acked
            if answer.ok and (answer.reported == expected or (changes and answer.reported is None)):
                if changes:
                    acked, attempts, not_before = expected, 0, 0.0
                    await self._store.write(partial(_acked, url=url, seq=acked))
                await self._advance(url, acked, True)
                continue
            if answer.reported is not None and answer.reported != acked:
                resumed = await self._repair(url, acked, answer.reported)
                if resumed is not None:
                    acked, attempts, not_before = resumed, 0, 0.0
                    await self._advance(url, acked, True)
                    continue
                note = f"the access server holds sequence {answer.reported}, never issued: resync asked"
                answer = Answer(False, answer.reported, note)
            attempts += 1
            not_before = self._clock() + backoff(attempts, *self._retry)
            error = answer.error or "failed"
            await self._store.write(partial(_failed, url=url, retry_at=not_before, error=error))
            await self._advance(url, acked, False)
            _log.info("CSC-15 push failed", target=url, error=answer.error, attempt=attempts)

    async def _repair(self, url: str, acked: int, reported: int) -> int | None:
        """Bring an access server that reported ``reported`` back in step; the new cursor, or None
        when it was told to resync (its next answer says whether it did)."""
        action = repair(reported, acked, await csc15_issued(self._store, reported))
        self._repairs.labels(url, action).inc()
        if action == "resume":
            _log.warning("access server out of step; resuming from its sequence", target=url,
                         cursor=acked, reported=reported)  # fmt: skip
            note = f"resumed from the access server's sequence {reported} (cursor was {acked})"
            await self._store.write(partial(_cursor, url=url, seq=reported, note=note))
            return reported
        _log.warning("access server holds a sequence this registry never issued; resync asked",
                     target=url, cursor=acked, reported=reported)  # fmt: skip
        await self._post(f"{url}{API}/resync")
        return None

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self._tokens.token(self._http)}"}

    async def _post(self, target: str) -> None:
        try:
            await self._http.post(target, headers=await self._headers(), timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - the next answer shows whether it worked
            _log.info("asking for a resync failed", target=target, error=f"{type(exc).__name__}")

    async def _check(self, url: str) -> Answer:
        """Idle: what sequence does the access server hold?"""
        try:
            response = await self._http.get(f"{url}{API}/sequence", headers=await self._headers(),
                                            timeout=self._timeout)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - network errors, token errors: retry later
            return Answer(False, None, f"{type(exc).__name__}: {exc}"[:300])
        return _answer(response)

    async def _send(self, url: str, previous: int, changes: list[Change]) -> Answer:
        try:
            headers = await self._headers()
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
            return Answer(False, None, f"{type(exc).__name__}: {exc}"[:300])
        return _answer(response)


def _answer(response: httpx.Response) -> Answer:
    """A 2xx (with the sequence now held), a 409 (with the sequence held), or a failure. Only a 409
    says where the access server is; any other failure is retried as it is."""
    reported = _sequence(response.headers.get(SEQUENCE))
    if response.is_success:
        if reported is None and response.request.method == "GET":
            try:
                reported = _sequence(str(response.json().get("sequence")))
            except ValueError:
                reported = None
        return Answer(True, reported)
    error = f"HTTP {response.status_code}: {response.text[:200]}"
    return Answer(False, reported if response.status_code == 409 else None, error)


def _sequence(raw: str | None) -> int | None:
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_SEQUENCE else None


def _bounded(changes: list[Change]) -> list[Change]:
    """As many changes as fit in one request the access server accepts (the first always goes)."""
    size = 0
    for count, change in enumerate(changes):
        size += len(json.dumps(change.payload)) + 200
        if count and size > PUSH_MAX_BYTES:
            return changes[:count]
    return changes


async def last_csc15_seq(store: Store) -> int:
    return await store.registry.last_seq_of(CSC15_KINDS)


async def csc15_issued(store: Store, sequence: int) -> bool:
    """Whether ``sequence`` is 0 (nothing yet) or the number of a CSC-15 change in the log."""
    return await store.registry.issued(sequence, CSC15_KINDS)


def snapshot(tx: Tx) -> dict[str, Any]:
    """Everything an access server needs, consistent with the sequence number it carries (read in
    one transaction: ``await store.write(snapshot)``)."""
    sequence = tx.changes.last_seq(CSC15_KINDS)
    pools: dict[tuple[str, str], list[InstanceRecord]] = {}
    for record in tx.instances.all():
        pools.setdefault(record.pool, []).append(record)
    return {
        "sequence": sequence,
        "appProfiles": [r.profile.dump() for r in tx.profiles.find()],
        "userAuthorizations": [grant_payload(g) for g in tx.grants.all()],
        "servicePools": [pool_payload(pool, records) for pool, records in sorted(pools.items())],
    }


def app_snapshot(tx: Tx, *, app_id: str) -> dict[str, Any]:
    """One application's part of the snapshot (its profiles, its grants, their pools), for an access
    server that met a profile or grant it does not hold yet (issue 14)."""
    sequence = tx.changes.last_seq(CSC15_KINDS)
    profiles = tx.profiles.find(app_id=app_id)
    wanted = {r.pool for r in profiles}
    pools: dict[tuple[str, str], list[InstanceRecord]] = {}
    for record in tx.instances.all() if wanted else ():
        if record.pool in wanted:
            pools.setdefault(record.pool, []).append(record)
    return {
        "sequence": sequence,
        "appProfiles": [r.profile.dump() for r in profiles],
        "userAuthorizations": [grant_payload(g) for g in tx.grants.of_app(app_id)],
        "servicePools": [pool_payload(pool, records) for pool, records in sorted(pools.items())],
    }


def _ensure(tx: Tx, *, url: str, start: int) -> None:
    tx.targets.ensure(url, start)


def _acked(tx: Tx, *, url: str, seq: int) -> None:
    tx.targets.acked(url, seq, datetime.now(UTC))


def _failed(tx: Tx, *, url: str, retry_at: float, error: str) -> None:
    tx.targets.failed(url, retry_at, error)


def _cursor(tx: Tx, *, url: str, seq: int, note: str) -> None:
    tx.targets.cursor(url, seq, note, datetime.now(UTC))


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error(
            "CSC-15 push loop failed; started again within a second", task=task.get_name(), exc_info=exc
        )


def _claim(tx: Tx, *, url: str, holder: str, now: float, until: float) -> bool:
    return tx.targets.claim(url, holder, now, until)


def _release(tx: Tx, *, holder: str) -> None:
    tx.targets.release(holder)
