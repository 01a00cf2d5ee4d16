"""The registry's metrics as a Prometheus server scrapes them from /metrics: counted registrations,
heartbeats, discoveries and notifications; instances, outbox and CSC-15 lag read from the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asgate.kernel.problem import Cause
from asgate.kernel.settings import Settings
from asgate.registry.metrics import StoreGauges
from asgate.registry.scripts import CSC15_KINDS
from asgate.system.runtime import Runtime
from tests.conftest import bearer
from tests.receiver import Receiver
from tests.registry.conftest import (
    ADMIN,
    REGISTRY,
    SERVICES,
    admin_app,
    admin_grant,
    gm_registration,
    register,
)

ALICE = "alice@mc.example"
DEAD_SAS = "http://127.0.0.1:9"  # nothing listens on the discard port: every CSC-15 push fails


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        registry_retry_base=0.05,
        registry_retry_max=0.4,
        registry_sweep_interval=0.05,
        registry_removal_grace=60,  # a suspended instance stays long enough to be seen
        metrics_public=True,
        registry_sas_push_urls=[DEAD_SAS],
        registry_sas_ack_wait=0,
    )


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_registrations_heartbeats_and_discoveries_are_counted_by_outcome(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    created = await register(http, tokens["gms-1"], gm_registration())
    assert created.status_code == 201
    instance = created.json()["serviceInstanceId"]
    assert (await register(http, tokens["gms-1"], {"serviceType": "GM"})).status_code == 400
    beat = f"{SERVICES}/{instance}/heartbeat"
    assert (await http.put(beat, headers=bearer(tokens["gms-1"]))).status_code == 204
    assert (await http.put(beat, headers=bearer(tokens["gms-2"]))).status_code == 403
    unknown = f"{SERVICES}/00000000-0000-0000-0000-000000000000/heartbeat"
    assert (await http.put(unknown, headers=bearer(tokens["gms-1"]))).status_code == 404
    assert (await admin_app(http, tokens["ops"], "console-1")).status_code == 201
    assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
    for _ in range(3):
        found = await http.get(
            f"{REGISTRY}/service-information",
            params={"mc-service-id": ALICE},
            headers=bearer(tokens["console-1"]),
        )
        assert found.status_code == 200
    samples = await scrape(http)
    count = "asgate_registry_registrations_total"
    assert value(samples, count, operation="register", outcome="ok") == 1
    assert value(samples, count, operation="register", outcome="MANDATORY_IE_MISSING") == 1
    beats = "asgate_registry_heartbeats_total"
    assert value(samples, beats, outcome="ok") == 1
    assert value(samples, beats, outcome="INSTANCE_NOT_OWNED") == 1
    assert value(samples, beats, outcome="CONTEXT_NOT_FOUND") == 1
    assert value(samples, "asgate_registry_discovery_seconds_count") == 3
    assert value(samples, "asgate_registry_instances", state="REGISTERED") == 1
    assert value(samples, "asgate_registry_instances", state="SUSPENDED") == 0
    deleted = await http.delete(f"{SERVICES}/{instance}", headers=bearer(tokens["gms-1"]))
    assert deleted.status_code == 204
    await asyncio.sleep(1.1)  # the store-derived gauges are cached for a second
    samples = await scrape(http)
    assert value(samples, count, operation="deregister", outcome="ok") == 1
    assert value(samples, "asgate_registry_instances", state="REGISTERED") == 0


async def test_an_instance_without_heartbeats_shows_as_suspended(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = gm_registration(heartbeatPeriod=1)
    assert (await register(http, tokens["gms-1"], body)).status_code == 201
    async with asyncio.timeout(15):
        while value(await scrape(http), "asgate_registry_instances", state="SUSPENDED") != 1:
            await asyncio.sleep(0.2)
    assert value(await scrape(http), "asgate_registry_instances", state="REGISTERED") == 0


async def test_the_csc15_lag_of_an_access_server_that_does_not_answer_grows(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    before = await scrape(http)
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    assert (await register(http, tokens["gms-2"], gm_registration(name="other"))).status_code == 201
    await asyncio.sleep(1.1)
    after = await scrape(http)
    lag = value(after, "asgate_registry_csc15_lag", target=DEAD_SAS)
    assert lag == value(before, "asgate_registry_csc15_lag", target=DEAD_SAS) + 2
    last = value(after, "asgate_registry_csc15_last_sequence")
    assert last - value(after, "asgate_registry_csc15_acked_sequence", target=DEAD_SAS) == lag


async def test_notifications_show_in_the_outbox_until_acknowledged_then_their_latency(
    http: httpx.AsyncClient, tokens: dict[str, str], receiver: Receiver
) -> None:
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    assert (await admin_app(http, tokens["ops"], "console-1")).status_code == 201
    assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
    body: dict[str, Any] = {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        "notificationDestination": receiver.url,
    }
    answer = await http.post(f"{REGISTRY}/authorizations", json=body, headers=bearer(tokens["console-1"]))
    profile = answer.json()["applicationProfiles"][0]
    receiver.failures = [503] * 1000  # the application answers nothing but errors for now
    edit = await http.put(
        f"{ADMIN}/app-profiles/{profile['appProfileId']}",
        json={"maxPriority": "mcpttp.3"},
        headers=bearer(tokens["ops"]),
    )
    assert edit.status_code == 200
    await asyncio.sleep(1.6)
    samples = await scrape(http)
    assert value(samples, "asgate_registry_outbox_pending") == 1
    assert value(samples, "asgate_registry_outbox_oldest_pending_age_seconds") >= 1.0
    failed = value(samples, "asgate_registry_notifications_total", destination="callback", outcome="failed")
    assert failed >= 1
    receiver.failures = []
    await receiver.wait_for(lambda r: len(r) >= 1)
    await asyncio.sleep(1.1)
    samples = await scrape(http)
    assert value(samples, "asgate_registry_outbox_pending") == 0
    assert value(samples, "asgate_registry_outbox_oldest_pending_age_seconds") == 0
    delivered = ("asgate_registry_notification_delivery_seconds_count", (("destination", "callback"),))
    assert samples[delivered] == 1
    # Queued at the edit, acknowledged after the failures: the latency counts from the commit.
    latency = samples[("asgate_registry_notification_delivery_seconds_sum", (("destination", "callback"),))]
    assert latency >= 1.5


async def test_the_store_is_read_at_most_once_per_cache_period(rt: Runtime) -> None:
    now = [0.0]
    gauges = StoreGauges(rt.store, CSC15_KINDS, ttl=5.0, clock=lambda: now[0])
    reads = 0
    stats = rt.store.registry.stats

    async def counted(kinds: Any) -> Any:
        nonlocal reads
        reads += 1
        return await stats(kinds)

    rt.store.registry.stats = counted  # type: ignore[method-assign]
    await asyncio.gather(*(gauges.refresh() for _ in range(10)))
    now[0] = 4.9
    await gauges.refresh()
    assert reads == 1
    now[0] = 5.0
    await gauges.refresh()
    assert reads == 2


async def test_metrics_answer_with_the_last_values_while_the_database_is_away(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    assert value(await scrape(http), "asgate_registry_instances", state="REGISTERED") == 1

    async def down(kinds: Any) -> Any:
        raise ConnectionError("the database went away")

    rt.store.registry.stats = down  # type: ignore[method-assign]
    await asyncio.sleep(1.1)
    assert value(await scrape(http), "asgate_registry_instances", state="REGISTERED") == 1


async def test_what_clients_send_never_becomes_a_label(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # Abuse: a client registering with ever different names, ids and junk must not grow the series
    # (each would cost the registry and Prometheus memory): no instance, name or text in a label.
    started = time.monotonic()
    for i in range(20):
        await register(http, tokens["gms-1"], gm_registration(name=f"probe-{i}"))
        await register(http, tokens["gms-1"], {"serviceType": f"X{i}", "junk": "y" * i})
        await http.put(f"{SERVICES}/probe-{i}/heartbeat", headers=bearer(tokens["gms-1"]))
    assert time.monotonic() - started < 60
    text = (await http.get("/metrics")).text
    assert "probe-" not in text and "X1" not in text
    registry_labels = {
        (s.name, tuple(sorted(s.labels)))
        for family in text_string_to_metric_families(text)
        if family.name.startswith("asgate_registry_")
        for s in family.samples
    }
    outcomes = {
        s.labels["outcome"]
        for family in text_string_to_metric_families(text)
        if family.name in ("asgate_registry_registrations", "asgate_registry_heartbeats")
        for s in family.samples
    }
    assert len(outcomes) <= 4 and all(o == "ok" or o in Cause.__members__ for o in outcomes), outcomes
    assert all(set(labels) <= {"operation", "outcome", "state", "target", "destination", "le"}
               for _, labels in registry_labels)  # fmt: skip
