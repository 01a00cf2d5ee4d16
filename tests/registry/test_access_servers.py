"""Access servers register themselves with the registry (issue 10): the decisions on a fake ``tx``,
then the API on SQLite and PostgreSQL: a registered access server gets the pushes, heartbeats, is
dropped when silent (its cursor kept) and resumes from its cursor when back; two registry processes
never push to one access server at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from asgate.idm.internal import InternalTokens
from asgate.kernel.background import Background
from asgate.kernel.problem import ProblemError
from asgate.kernel.settings import Settings
from asgate.registry.access_servers import deregister, register
from asgate.registry.sync import Pusher, last_csc15_seq
from asgate.store.registry import AccessServerRecord
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import bearer
from tests.receiver import Receiver
from tests.registry.conftest import SERVICES, gm_registration
from tests.registry.test_csc15_push import flatten

SYNC = "/mcx-registry-sync/v1/access-servers"
ADMIN = "/mcx-registry-admin/v1/access-servers"
T0 = datetime(2026, 12, 5, tzinfo=UTC)

# ------------------------------------------------------------------ the decisions, on a fake tx


@dataclass
class FakeAccessServers:
    rows: dict[str, AccessServerRecord] = field(default_factory=dict)

    def get(self, sas_id: str) -> AccessServerRecord | None:
        return self.rows.get(sas_id)

    def count(self) -> int:
        return len(self.rows)

    def add(self, record: AccessServerRecord) -> None:
        self.rows[record.sas_id] = record

    def seen(self, sas_id: str, url: str, now: datetime) -> None:
        old = self.rows[sas_id]
        self.rows[sas_id] = AccessServerRecord(sas_id, old.owner, url, old.registered_at, now)

    def remove(self, sas_id: str) -> None:
        del self.rows[sas_id]

    def forget_silent(self, before: datetime) -> int:
        silent = [k for k, r in self.rows.items() if r.last_seen_at < before]
        for key in silent:
            del self.rows[key]
        return len(silent)


@dataclass
class FakeAudit:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def append(self, actor: str, action: str, resource: str, outcome: str = "ok", **_: Any) -> None:
        self.events.append((actor, action, resource))


@dataclass
class FakeTx:
    access_servers: FakeAccessServers = field(default_factory=FakeAccessServers)
    audit: FakeAudit = field(default_factory=FakeAudit)


def _register(tx: FakeTx, sas_id: str, owner: str, url: str, at: float = 0, limit: int = 3) -> str:
    now = T0 + timedelta(seconds=at)
    return register(tx, sas_id=sas_id, owner=owner, url=url, now=now, limit=limit, timeout=30)  # type: ignore[arg-type]


def test_an_id_is_registered_refreshed_and_moved_by_its_owner_only() -> None:
    tx = FakeTx()
    assert _register(tx, "sas-1", "asgate-access-sas-1", "http://a:7480") == "created"
    assert _register(tx, "sas-1", "asgate-access-sas-1", "http://a:7480", at=5) == "refreshed"
    assert tx.access_servers.rows["sas-1"].last_seen_at == T0 + timedelta(seconds=5)
    assert _register(tx, "sas-1", "asgate-access-sas-1", "http://b:7480", at=6) == "moved"
    with pytest.raises(ProblemError) as refused:
        _register(tx, "sas-1", "asgate-access-sas-2", "http://evil:7480", at=7)
    assert (refused.value.status, refused.value.cause) == (403, "ACCESS_SERVER_NOT_OWNED")
    assert tx.access_servers.rows["sas-1"].url == "http://b:7480"  # unchanged by the refusal
    actions = [action for _, action, _ in tx.audit.events]
    assert actions == ["access-server.register", "access-server.move"]  # heartbeats are not audited


@pytest.mark.parametrize(
    ("silent_for", "outcome"),
    [(31, "created"), (10, "TOO_MANY_ACCESS_SERVERS")],
    ids=["a silent one is forgotten to make room", "all live: refused"],
)
def test_the_number_of_access_servers_is_bounded(silent_for: float, outcome: str) -> None:
    tx = FakeTx()
    for n in range(3):
        _register(tx, f"sas-{n}", f"asgate-access-sas-{n}", f"http://s{n}:7480", at=0 if n == 0 else 20)
    try:
        got = _register(tx, "sas-9", "asgate-access-sas-9", "http://s9:7480", at=silent_for)
    except ProblemError as refused:
        assert refused.status == 403
        got = refused.cause
    assert got == outcome
    if outcome == "created":
        assert sorted(tx.access_servers.rows) == ["sas-1", "sas-2", "sas-9"]
    else:
        assert sorted(tx.access_servers.rows) == ["sas-0", "sas-1", "sas-2"]


def test_only_the_owner_deregisters() -> None:
    tx = FakeTx()
    _register(tx, "sas-1", "asgate-access-sas-1", "http://a:7480")
    for owner, status in (("asgate-access-sas-2", 403), ("asgate-access-sas-1", None)):
        if status is None:
            deregister(tx, sas_id="sas-1", owner=owner)  # type: ignore[arg-type]
        else:
            with pytest.raises(ProblemError) as refused:
                deregister(tx, sas_id="sas-1", owner=owner)  # type: ignore[arg-type]
            assert refused.value.status == status
    assert tx.access_servers.rows == {}
    with pytest.raises(ProblemError) as missing:
        deregister(tx, sas_id="sas-1", owner="asgate-access-sas-1")  # type: ignore[arg-type]
    assert (missing.value.status, missing.value.cause) == (404, "CONTEXT_NOT_FOUND")


# ------------------------------------------------------------------ the API, on both backends


@asynccontextmanager
async def registry_role(settings: Settings) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with Runtime.open(settings) as rt, control_app(rt, ["registry"]) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield rt, http


@pytest.fixture
async def registry(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with registry_role(make_settings(registry_sas_check_interval=60)) as running:
        yield running


@pytest.fixture
async def forgetful(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A registry that drops an access server silent for 3 s."""
    async with registry_role(
        make_settings(registry_sas_timeout=3, registry_sas_check_interval=60)
    ) as running:
        yield running


def sas_token(mint: Any, sas_id: str) -> dict[str, str]:
    return bearer(mint(f"asgate-access-{sas_id}", "mcx-access-profiles"))


async def test_a_registered_access_server_gets_the_pushes_is_listed_and_deregisters(
    registry: Any, receiver: Receiver, mint: Any, service_clients: None
) -> None:
    rt, http = registry
    sas = sas_token(mint, "sas-1")
    put = await http.put(f"{SYNC}/sas-1", json={"csc15Uri": f"{receiver.base}/"}, headers=sas)
    assert put.status_code == 201, put.text
    assert put.json() == {"sasId": "sas-1", "csc15Uri": receiver.base, "timeout": 30}
    again = await http.put(f"{SYNC}/sas-1", json={"csc15Uri": receiver.base}, headers=sas)
    assert again.status_code == 200  # the heartbeat
    svc = mint("gms-1", "mcx-service-registration")
    assert (await http.post(SERVICES, json=gm_registration(), headers=bearer(svc))).status_code == 201
    (pushed,) = await receiver.wait_requests(lambda r: len(r) >= 1)
    claims = jwt.decode(pushed.headers["authorization"].split()[1], options={"verify_signature": False})
    assert (claims["sub"], claims["scope"]) == ("asgate-registry", "mcx-access-profiles")
    assert pushed.path == "/mcx-access-profiles/v1/service-pools/GM/gms"

    ops = bearer(mint("ops", "mcx-registry-admin"))
    async with asyncio.timeout(5):
        while (listed := (await http.get(ADMIN, headers=ops)).json())["items"][0].get("lag") != 0:
            await asyncio.sleep(0.05)
    (item,) = listed["items"]
    assert item["sasId"] == "sas-1" and item["owner"] == "asgate-access-sas-1" and item["live"] is True
    assert item["ackedSequence"] == listed["sequence"] == await last_csc15_seq(rt.store)

    assert (await http.delete(f"{SYNC}/sas-1", headers=sas)).status_code == 204
    assert (await http.get(ADMIN, headers=ops)).json()["items"] == []
    cursor = {t.url: t.acked_seq for t in await rt.store.registry.targets()}
    assert cursor[receiver.base] == listed["sequence"]  # kept for a comeback
    await asyncio.sleep(1.5)  # the pusher follows the set every second
    assert (await http.post(SERVICES, json=gm_registration(9102), headers=bearer(svc))).status_code == 201
    await asyncio.sleep(1.5)
    assert len(receiver.requests) == 1  # no longer pushed to
    deleted = await http.delete(f"{SYNC}/sas-1", headers=sas)
    assert (deleted.status_code, deleted.json()["cause"]) == (404, "CONTEXT_NOT_FOUND")


async def test_a_silent_access_server_is_dropped_and_resumes_from_its_cursor_when_back(
    forgetful: Any, receiver: Receiver, mint: Any, service_clients: None
) -> None:
    rt, http = forgetful
    sas = sas_token(mint, "sas-1")
    svc = bearer(mint("gms-1", "mcx-service-registration"))
    assert (await http.put(f"{SYNC}/sas-1", json={"csc15Uri": receiver.base}, headers=sas)).status_code == 201
    # The pusher starts a new target at the sequence it reads then (a real access server has pulled
    # a snapshot before it registers); register the service after that, so its change is pushed.
    async with asyncio.timeout(5):
        while receiver.base not in {t.url for t in await rt.store.registry.targets()}:
            await asyncio.sleep(0.02)
    await http.post(SERVICES, json=gm_registration(9101), headers=svc)
    await receiver.wait_requests(lambda r: len(r) >= 1)
    first = await last_csc15_seq(rt.store)
    # No heartbeat for longer than registry_sas_timeout (3 s): dropped, so not pushed to.
    await asyncio.sleep(4.5)
    await http.post(SERVICES, json=gm_registration(9102), headers=svc)
    await asyncio.sleep(1.5)
    assert len(receiver.requests) == 1
    assert {t.url: t.acked_seq for t in await rt.store.registry.targets()}[receiver.base] == first
    # Back: the next push continues from the cursor it had.
    assert (await http.put(f"{SYNC}/sas-1", json={"csc15Uri": receiver.base}, headers=sas)).status_code == 200
    requests = await receiver.wait_requests(lambda r: len(r) >= 2)
    resumed = requests[1]
    assert resumed.headers["asgate-previous-sequence"] == str(first)
    assert len(flatten([resumed])) == 1
    assert resumed.body["instances"][-1]["port"] == 9102


async def test_two_registry_processes_never_push_to_one_access_server_at_once(
    rt: Runtime, http: httpx.AsyncClient, receiver: Receiver, mint: Any, service_clients: None
) -> None:
    """Two pushers over one database (two registry processes): one holds the target's lease and
    pushes, the other follows its cursor; when the holder stops, the other takes over."""
    tokens = InternalTokens(
        rt.keyring, issuer=rt.settings.token_issuer, audience=rt.settings.token_audience,
        subject="asgate-registry", scope="mcx-access-profiles",
    )  # fmt: skip
    pushers = [Pusher(rt.store, rt.http, [receiver.base], tokens, lease=1.0) for _ in range(2)]
    backgrounds = [Background(), Background()]
    for pusher, background in zip(pushers, backgrounds, strict=True):
        background.spawn(pusher.run(background), "csc15")
    svc = bearer(mint("gms-1", "mcx-service-registration"))
    try:
        async with asyncio.timeout(10):
            while not any(p.held for p in pushers):
                await asyncio.sleep(0.05)
        holder, other = pushers if pushers[0].held else pushers[::-1]
        stop_holder = backgrounds[pushers.index(holder)]
        for port in (9101, 9102, 9103):
            await http.post(SERVICES, json=gm_registration(port), headers=svc)
            for p in pushers:
                p.wake()
        assert await other.delivered(await last_csc15_seq(rt.store), 10)  # followed in the database
        assert not other.held
        await stop_holder.stop()  # releases its lease
        await http.post(SERVICES, json=gm_registration(9104), headers=svc)
        other.wake()
        assert await other.delivered(await last_csc15_seq(rt.store), 10)
        assert other.held == frozenset({receiver.base})
    finally:
        for background in backgrounds:
            await background.stop()
    changes = flatten(receiver.requests)
    sequences = [seq for _, _, seq, _ in changes]
    assert sequences == sorted(set(sequences)) and len(sequences) == 4  # each once, in order
