"""Prometheus metrics: one registry per process runtime (no module-level singletons).

Gauges read from the store are collected by custom collectors that hold the last values read; the
``/metrics`` handler awaits :meth:`Metrics.scrape`, which first runs each collector's refresh (a
query at most once per its cache period), then renders the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from asgate.kernel import logs

_log = logs.get("asgate.kernel.metrics")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "asgate_http_requests", "HTTP requests answered", ["api", "method", "status"], registry=r
        )
        self.http_duration = Histogram(
            "asgate_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["api"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_batch = Histogram(
            "asgate_store_commit_batch_size",
            "Writes per group-commit transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "asgate_store_commit_seconds",
            "Group-commit transaction time",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_issued = Counter(
            "asgate_tokens_issued", "Access tokens issued", ["grant_type"], registry=r
        )
        self.auth_failures = Counter(
            "asgate_auth_failures",
            "Requests refused by authentication or authorization",
            ["api", "cause"],
            registry=r,
        )
        self.msgs_operations = Counter(
            "asgate_msgs_operations",
            "MSGin5G AS registration operations",
            ["operation", "outcome"],
            registry=r,
        )
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Await ``refresh`` before each scrape (a collector reading the store caches its values)."""
        self._refreshers.append(refresh)

    async def scrape(self) -> bytes:
        """The Prometheus text exposition, store-derived gauges refreshed first; a refresh that fails
        leaves its gauges at their last values (the scrape itself still answers)."""
        for refresh in self._refreshers:
            try:
                await refresh()
            except Exception:  # noqa: BLE001 - /metrics must answer while the database is away
                _log.warning("refreshing store-derived metrics failed", exc_info=True)
        return generate_latest(self.registry)

    def observe_commit(self, size: int, seconds: float) -> None:
        self.commit_batch.observe(size)
        self.commit_seconds.observe(seconds)
