"""Prometheus metrics of the SAS data plane, on a registry passed in (no global registry).

The engine counts only what is per connection or exceptional (accepts, refusals, its own error
answers, upstream failures), so a request that goes well costs it nothing. Per-request metrics
labelled by application, service, priority and status are for the gate: it takes an
:meth:`SasMetrics.observer` once per (application, service, priority) and calls it from
``Admit.on_done``; label children are resolved once and cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SasMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.connections = Counter(
            "asgate_sas_connections", "Client connections by outcome", ["outcome"], registry=r
        )
        self.open_connections = Gauge("asgate_sas_open_connections", "Client connections open", registry=r)
        self.engine_errors = Counter(
            "asgate_sas_engine_errors", "Answers made by the engine itself", ["status", "cause"], registry=r
        )
        self.upstream_failures = Counter(
            "asgate_sas_upstream_failures",
            "Failed upstream attempts (connect, lost, stale keep-alive, timeout)",
            ["service", "kind"],
            registry=r,
        )
        self.requests = Counter(
            "asgate_sas_requests",
            "Requests answered",
            ["application", "service", "priority", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "asgate_sas_request_duration_seconds",
            "Time from admission to the end of the response",
            ["application", "service", "priority"],
            buckets=_BUCKETS,
            registry=r,
        )
        self._accepted = self.connections.labels("accepted")

    def accepted(self) -> None:
        self._accepted.inc()
        self.open_connections.inc()

    def closed(self) -> None:
        self.open_connections.dec()

    def refused(self, outcome: str) -> None:
        self.connections.labels(outcome).inc()

    def engine_error(self, status: int, cause: str) -> None:
        self.engine_errors.labels(str(status), cause).inc()

    def upstream_failure(self, service: str, kind: str) -> None:
        self.upstream_failures.labels(service, kind).inc()

    def observer(self, application: str, service: str, priority: str = "") -> Callable[[int, float], None]:
        """``observe(status, started)`` for one label set; call it from ``Admit.on_done``."""
        counters: dict[int, Counter] = {}
        duration = self.duration.labels(application, service, priority)
        requests = self.requests

        def observe(status: int, started: float) -> None:
            counter = counters.get(status)
            if counter is None:
                counter = counters[status] = requests.labels(application, service, priority, str(status))
            counter.inc()
            duration.observe(time.monotonic() - started)

        return observe
