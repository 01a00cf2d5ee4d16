"""Data-plane worker processes (``sas_workers`` > 1): what they count shows, summed, on the access
server's /metrics, also after a worker is killed and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from asgate.access.state import AccessState
from asgate.access.workers import StateFollower
from tests.access.split import split_deployment
from tests.access.system import bearer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]
REQUESTS = 40


async def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


def served_per_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of answered requests, read from its file (what /metrics sums)."""
    served: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for family in MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            if family.name == "asgate_sas_requests":
                served[pid] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return served


async def call_many(base: str, token: str, count: int) -> None:
    # A new connection each time (Connection: close), so that the kernel spreads them over the workers.
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(count):
            headers = {**bearer(token), "Connection": "close"}
            assert (await http.get(f"{base}/items", headers=headers)).status_code == 204


async def test_the_workers_counters_are_summed_on_the_access_servers_metrics(tmp_path: Path) -> None:
    async with split_deployment(tmp_path, sas_workers="2", metrics_public="true") as split:
        await split.add_app("console-1")
        profile = await split.authorize("console-1")
        base, token = profile["serviceLocationInformation"], split.user_token("console-1")
        await call_many(base, token, REQUESTS)
        control = split.access[0].url
        samples = await scrape(control)
        labels = {"application": "console-1", "service": "GM/recorder", "status": "204"}
        assert total(samples, "asgate_sas_requests_total", **labels) == REQUESTS
        assert total(samples, "asgate_sas_request_duration_seconds_count") == REQUESTS
        assert total(samples, "asgate_sas_connections_total", outcome="accepted") == REQUESTS
        assert total(samples, "asgate_sas_workers") == 2
        per_worker = samples["asgate_sas_worker_open_connections"]
        assert len(per_worker) == 2  # one series per live worker, labelled by its pid
        # Both workers served, and /metrics shows their sum (never one worker's count alone).
        metrics_dir = tmp_path / "access-1" / "sas-metrics"
        assert metrics_dir.stat().st_mode & 0o777 == 0o700  # no other local user reads or forges them
        served = served_per_worker(metrics_dir)
        assert len(served) == 2 and all(n > 0 for n in served.values()) and sum(served.values()) == REQUESTS
        # Kill one worker: the parent restarts it; what it counted stays in the sum, its gauges go.
        victim = next(iter(served))
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(30):
            while total(samples := await scrape(control), "asgate_sas_worker_restarts_total") < 1:
                await asyncio.sleep(0.2)
        pids = {found["pid"] for found, _ in samples["asgate_sas_worker_open_connections"]}
        assert str(victim) not in pids
        await call_many(base, token, 10)
        samples = await scrape(control)
        assert total(samples, "asgate_sas_requests_total", **labels) == REQUESTS + 10


async def test_a_worker_about_to_refuse_catches_up_with_the_parents_next_save(tmp_path: Path) -> None:
    """Issue 14 with workers: the parent holds a change the moment it acknowledges the push, a
    worker a moment later. A refusal for want of CSC-15 state waits for the parent's next save."""
    path = tmp_path / "sas-state.json"
    parent = AccessState(path=path)
    parent.save()
    worker = AccessState(path=None)
    follower = StateFollower(worker, path, catch_up=2.0, quiet=60.0)
    follower.reload()
    assert worker.seq == 0 and follower.wanted("console-1", "PROFILE_NOT_AUTHORIZED")
    assert not follower.wanted("console-1", "RATE_LIMITED")  # not a matter of CSC-15 state

    async def push_then_save() -> None:
        await asyncio.sleep(0.1)
        parent.seq = 7
        parent.save()

    saving = asyncio.create_task(push_then_save())
    await follower.fetch("console-1")
    await saving
    assert worker.seq == 7  # caught up: the gate decides again on the new state
    assert follower.wanted("console-1", "PROFILE_NOT_AUTHORIZED")

    quiet = StateFollower(AccessState(path=None), path, catch_up=0.05, quiet=60.0)
    quiet.reload()
    await quiet.fetch("console-1")  # nothing new: the refusal stands
    assert not quiet.wanted("console-1", "PROFILE_NOT_AUTHORIZED")  # and a flood is not waited for
