"""The MSGin5G decisions (TS 23.554 8.2.5/8.2.6) as tables over a fake ``tx``, then once on the real
store of every backend (arrival order inside one group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from asgate.domain.idm import Client
from asgate.domain.msgin5g import Registration
from asgate.msgin5g import decisions
from asgate.store import Store
from asgate.store.ids import new_id


def reg(as_svc_id: str, client_id: str = "as-1", registration_id: str = "r-new") -> Registration:
    return Registration(
        registration_id=registration_id,
        as_svc_id=as_svc_id,
        client_id=client_id,
        registered_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@dataclass
class FakeRegistrations:
    provisioning: dict[str, str]  # AS Service ID -> client
    live: dict[str, Registration] = field(default_factory=dict)  # registration id -> registration

    def owners(self, as_svc_ids: Collection[str]) -> dict[str, str]:
        return {a: self.provisioning[a] for a in as_svc_ids if a in self.provisioning}

    def get(self, registration_id: str) -> Registration | None:
        return self.live.get(registration_id)

    def put(self, *registrations: Registration) -> None:
        for new in registrations:
            assert all(r.as_svc_id != new.as_svc_id for r in self.live.values()), "one per AS Service ID"
            self.live[new.registration_id] = new

    def delete(self, registration_id: str) -> Registration | None:
        return self.live.pop(registration_id, None)

    def delete_for(self, as_svc_ids: Collection[str]) -> dict[str, str]:
        gone = {r.as_svc_id: reg_id for reg_id, r in self.live.items() if r.as_svc_id in as_svc_ids}
        for reg_id in gone.values():
            del self.live[reg_id]
        return gone


@dataclass
class FakeAudit:
    rows: list[tuple[str, str, str, str, str | None, dict[str, Any] | None]] = field(default_factory=list)

    def append(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.rows.append((actor, action, resource, outcome, reason, details))


@dataclass
class FakeTx:
    registrations: FakeRegistrations
    audit: FakeAudit = field(default_factory=FakeAudit)


PROVISIONING = {"AS1": "as-1", "AS2": "as-2"}


@pytest.mark.parametrize(
    ("live", "request_", "outcome", "stored", "audit"),
    [
        pytest.param(
            [],
            reg("AS1"),
            decisions.Registered(replaced=None),
            ["r-new"],
            [("as-1", "msgs.register", "as-registration/r-new", "ok", None, {"asSvcId": "AS1"})],
            id="first registration",
        ),
        pytest.param(
            [reg("AS1", registration_id="r-old")],
            reg("AS1"),
            decisions.Registered(replaced="r-old"),
            ["r-new"],
            [
                (
                    "as-1",
                    "msgs.register",
                    "as-registration/r-new",
                    "ok",
                    None,
                    {"asSvcId": "AS1", "replaced": "r-old"},
                )
            ],
            id="re-registration replaces the live one",
        ),
        pytest.param(
            [reg("AS2", "as-2", registration_id="r-other")],
            reg("AS1"),
            decisions.Registered(replaced=None),
            ["r-other", "r-new"],
            [("as-1", "msgs.register", "as-registration/r-new", "ok", None, {"asSvcId": "AS1"})],
            id="another AS Service ID is left alone",
        ),
        pytest.param(
            [],
            reg("AS-UNKNOWN"),
            decisions.NotProvisioned(),
            [],
            [
                (
                    "as-1",
                    "msgs.register",
                    "as-svc-id/AS-UNKNOWN",
                    "denied",
                    "AS Service ID not provisioned",
                    None,
                )
            ],
            id="not provisioned for anyone",
        ),
        pytest.param(
            [reg("AS2", "as-2", registration_id="r-other")],
            reg("AS2", "as-1"),
            decisions.NotProvisioned(),
            ["r-other"],
            [("as-1", "msgs.register", "as-svc-id/AS2", "denied", "AS Service ID not provisioned", None)],
            id="provisioned for another client: its registration stays",
        ),
    ],
)
def test_register(
    live: list[Registration],
    request_: Registration,
    outcome: object,
    stored: list[str],
    audit: list[tuple[Any, ...]],
) -> None:
    tx = FakeTx(FakeRegistrations(PROVISIONING, {r.registration_id: r for r in live}))
    assert decisions.register(tx, [request_]) == [outcome]
    assert list(tx.registrations.live) == stored
    assert tx.audit.rows == audit


def test_register_a_batch_in_arrival_order() -> None:
    tx = FakeTx(FakeRegistrations(PROVISIONING, {"r0": reg("AS1", registration_id="r0")}))
    batch = [
        reg("AS1", registration_id="r1"),
        reg("AS2", "as-1", registration_id="r-refused"),
        reg("AS1", registration_id="r2"),
        reg("AS2", "as-2", registration_id="r3"),
    ]
    assert decisions.register(tx, batch) == [
        decisions.Registered(replaced="r0"),
        decisions.NotProvisioned(),
        decisions.Registered(replaced="r1"),  # r1 lived for a moment: the later one replaces it
        decisions.Registered(replaced=None),
    ]
    assert sorted(tx.registrations.live) == ["r2", "r3"]
    assert [(row[0], row[2], row[3]) for row in tx.audit.rows] == [
        ("as-1", "as-registration/r1", "ok"),
        ("as-1", "as-svc-id/AS2", "denied"),
        ("as-1", "as-registration/r2", "ok"),
        ("as-2", "as-registration/r3", "ok"),
    ]


@pytest.mark.parametrize(
    ("actor", "owner", "registration_id", "outcome", "stored", "audit"),
    [
        pytest.param(
            "as-1",
            "as-1",
            "r1",
            decisions.Deregistered(reg("AS1", registration_id="r1")),
            [],
            [("as-1", "msgs.deregister", "as-registration/r1", "ok", None, {"asSvcId": "AS1"})],
            id="the owner de-registers",
        ),
        pytest.param(
            "as-2",
            "as-2",
            "r1",
            decisions.NotOwner(),
            ["r1"],
            [("as-2", "msgs.deregister", "as-registration/r1", "denied", "not the owner", None)],
            id="another AS may not",
        ),
        pytest.param("as-1", "as-1", "r-gone", decisions.NotFound(), ["r1"], [], id="unknown id"),
        pytest.param(
            "ops",
            None,
            "r1",
            decisions.Deregistered(reg("AS1", registration_id="r1")),
            [],
            [("ops", "msgs.deregister", "as-registration/r1", "ok", None, {"asSvcId": "AS1"})],
            id="an operator evicts anyone's",
        ),
        pytest.param("ops", None, "r-gone", decisions.NotFound(), ["r1"], [], id="an operator, unknown id"),
    ],
)
def test_deregister(
    actor: str,
    owner: str | None,
    registration_id: str,
    outcome: object,
    stored: list[str],
    audit: list[tuple[Any, ...]],
) -> None:
    tx = FakeTx(FakeRegistrations(PROVISIONING, {"r1": reg("AS1", registration_id="r1")}))
    assert decisions.deregister(tx, registration_id, actor, owner=owner) == outcome
    assert list(tx.registrations.live) == stored
    assert tx.audit.rows == audit


# ---------------------------------------------------------------- on the real store, every backend


@pytest.fixture
async def store(database: dict[str, Any], tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(database["database_url"], schema=database.get("database_schema"))
    now = datetime.now(UTC)
    for client_id, ids in (("as-1", [f"AS{i}" for i in range(300)]), ("as-2", ["B1"])):
        new = Client(client_id=client_id, as_svc_ids=tuple(ids), created_at=now, updated_at=now)
        await opened.write(lambda tx: tx.clients.add(new))  # noqa: B023 - awaited at once
    try:
        yield opened
    finally:
        await opened.close()


def fresh(as_svc_id: str, client_id: str = "as-1") -> Registration:
    return reg(as_svc_id, client_id, registration_id=new_id())


async def test_concurrent_registrations_for_one_as_svc_id_apply_in_arrival_order(store: Store) -> None:
    regs = [fresh("AS1") for _ in range(50)]
    outcomes = await asyncio.gather(*(store.write_many(decisions.register, r) for r in regs))
    # Each one replaced the one before it, and the last one survives.
    assert outcomes == [decisions.Registered(None)] + [
        decisions.Registered(r.registration_id) for r in regs[:-1]
    ]
    assert [r.registration_id for r in await store.registrations.scan(as_svc_id="AS1")] == [
        regs[-1].registration_id
    ]


async def test_refusals_in_one_group_commit_are_judged_alone_and_audited(store: Store) -> None:
    requests = [fresh("AS2"), fresh("AS3", "as-2"), fresh("AS-UNKNOWN"), fresh("B1", "as-2")]
    outcomes = await asyncio.gather(*(store.write_many(decisions.register, r) for r in requests))
    refused = decisions.NotProvisioned()
    assert outcomes == [decisions.Registered(None), refused, refused, decisions.Registered(None)]
    assert sorted(r.as_svc_id for r in await store.registrations.scan()) == ["AS2", "B1"]
    denied = [(e.actor, e.resource) for e in await store.audit.scan() if e.outcome == "denied"]
    assert denied == [("as-2", "as-svc-id/AS3"), ("as-1", "as-svc-id/AS-UNKNOWN")]


async def test_concurrent_deregistrations_of_one_registration_succeed_once(store: Store) -> None:
    r = fresh("AS1")
    await store.write_many(decisions.register, r)
    outcomes = await asyncio.gather(
        *(
            store.write(lambda tx: decisions.deregister(tx, r.registration_id, "as-1", owner="as-1"))
            for _ in range(10)
        )
    )
    assert outcomes.count(decisions.Deregistered(r)) == 1
    assert outcomes.count(decisions.NotFound()) == 9
