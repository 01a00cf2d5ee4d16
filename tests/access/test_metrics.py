"""Prometheus counters: the engine's own, and the per-request observer a gate uses."""

from __future__ import annotations

import time

from asgate.access.metrics import SasMetrics
from tests.access.conftest import Sas, request


def test_the_gate_observer_counts_by_application_service_priority_and_status() -> None:
    metrics = SasMetrics()
    observe = metrics.observer("console-1", "GM", "mcpttp.9")
    started = time.monotonic()
    observe(200, started)
    observe(200, started)
    observe(503, started)
    sample = metrics.registry.get_sample_value
    labels = {"application": "console-1", "service": "GM", "priority": "mcpttp.9"}
    assert sample("asgate_sas_requests_total", {**labels, "status": "200"}) == 2
    assert sample("asgate_sas_requests_total", {**labels, "status": "503"}) == 1
    assert sample("asgate_sas_request_duration_seconds_count", labels) == 3


async def test_the_engine_counts_connections_and_its_own_errors(sas: Sas) -> None:
    await sas.backends[0].stop()
    assert (await request(sas.port, "/1/echo"))[0] == 502
    assert sas.server.engine is not None
    sample = sas.server.engine.metrics.registry.get_sample_value
    assert (
        sample("asgate_sas_engine_errors_total", {"status": "502", "cause": "TARGET_NF_NOT_REACHABLE"}) == 1
    )
    assert sample("asgate_sas_upstream_failures_total", {"service": "gm", "kind": "connect"}) == 1
    assert sample("asgate_sas_connections_total", {"outcome": "accepted"}) == 1
