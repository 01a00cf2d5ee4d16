"""Prometheus metrics of the service registry server, on the runtime's registry.

Counted as they happen (in this process): service registrations, updates and deregistrations and
heartbeats by outcome, discovery latency, notification deliveries and their latency from commit to
acknowledgement. Read from the store at scrape time (the same in every registry process, so a
dashboard takes ``max`` over processes): instances by state, the outbox's depth and the age of its
oldest pending notification, and each access server's CSC-15 lag. One read (three small queries) at
most every ``ttl`` seconds, however often and by however many scrapers the process is scraped.

Label values are bounded: an outcome is ``ok`` or a cause the registry's code defines (never text a
client sent), a state is one of the lifecycle's, a destination is ``callback`` or ``websocket``, and
a ``target`` is an access server the registry pushes to (configured or registered by the operator's
access servers, a handful). Nothing is labelled by instance, application or MC user: those grow with
what clients do, and an attacker who can register could otherwise grow the series without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from asgate.kernel.metrics import Metrics
from asgate.kernel.problem import Cause, ProblemError
from asgate.store import Store
from asgate.store.registry import Delivery
from asgate.store.registry.stats import RegistryStats

_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_DELIVERY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
STATES = ("REGISTERED", "SUSPENDED")  # asgate.registry.lifecycle.State, removed ones are deleted


class StoreGauges(Collector):
    """The registry's store-derived gauges: values of the last :meth:`refresh`, at most ``ttl`` s old."""

    def __init__(
        self,
        store: Store,
        kinds: Sequence[str],
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._kinds = tuple(kinds)
        self._ttl = ttl
        self._clock = clock
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.stats: RegistryStats | None = None

    async def refresh(self) -> None:
        if self._fresh():
            return
        async with self._lock:  # concurrent scrapes share one read
            if self._fresh():
                return
            self.stats = await self._store.registry.stats(self._kinds)
            self._read_at = self._clock()

    def _fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._ttl

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self.stats))

    def _families(self, stats: RegistryStats | None) -> list[Metric]:
        instances = GaugeMetricFamily(
            "asgate_registry_instances", "Service instances by lifecycle state", labels=["state"]
        )
        depth = GaugeMetricFamily(
            "asgate_registry_outbox_pending", "Profile notifications queued and not yet acknowledged"
        )
        oldest = GaugeMetricFamily(
            "asgate_registry_outbox_oldest_pending_age_seconds",
            "Age of the oldest unacknowledged profile notification (0: none pending)",
        )
        last = GaugeMetricFamily(
            "asgate_registry_csc15_last_sequence", "Sequence number of the newest CSC-15 change issued"
        )
        acked = GaugeMetricFamily(
            "asgate_registry_csc15_acked_sequence",
            "The newest CSC-15 change each access server acknowledged",
            labels=["target"],
        )
        lag = GaugeMetricFamily(
            "asgate_registry_csc15_lag",
            "CSC-15 changes issued that an access server has not acknowledged yet",
            labels=["target"],
        )
        families: list[Metric] = [instances, depth, oldest, last, acked, lag]
        if stats is None:
            return families
        for state in sorted({*STATES, *stats.instances}):
            instances.add_metric([state], stats.instances.get(state, 0))
        depth.add_metric([], stats.outbox_pending)
        age = 0.0
        if stats.outbox_oldest is not None:
            age = max(0.0, (datetime.now(UTC) - stats.outbox_oldest).total_seconds())
        oldest.add_metric([], age)
        last.add_metric([], stats.last_seq)
        for url, seq in sorted(stats.acked.items()):
            acked.add_metric([url], seq)
            lag.add_metric([url], max(0, stats.last_seq - seq))
        return families


class RegistryMetrics:
    def __init__(self, metrics: Metrics, store: Store, kinds: Sequence[str], ttl: float = 1.0) -> None:
        r = metrics.registry
        self.registrations = Counter(
            "asgate_registry_registrations",
            "Service registrations, updates and deregistrations by outcome (ok or the cause refused)",
            ["operation", "outcome"],
            registry=r,
        )
        self.heartbeats = Counter(
            "asgate_registry_heartbeats",
            "Service instance heartbeats by outcome (ok or the cause refused)",
            ["outcome"],
            registry=r,
        )
        self.discovery = Histogram(
            "asgate_registry_discovery_seconds",
            "Time to answer a service discovery (CSC-14 service-information), authenticated",
            buckets=_FAST,
            registry=r,
        )
        self.notifications = Counter(
            "asgate_registry_notifications",
            "Profile notification attempts by outcome (delivered, failed)",
            ["destination", "outcome"],
            registry=r,
        )
        self.delivery = Histogram(
            "asgate_registry_notification_delivery_seconds",
            "Time from the commit that queued a profile notification to its acknowledgement",
            ["destination"],
            buckets=_DELIVERY,
            registry=r,
        )
        self.gauges = StoreGauges(store, kinds, ttl)
        r.register(self.gauges)
        metrics.on_scrape(self.gauges.refresh)

    @contextmanager
    def registration(self, operation: str) -> Iterator[None]:
        with _outcome(lambda outcome: self.registrations.labels(operation, outcome).inc()):
            yield

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        with _outcome(lambda outcome: self.heartbeats.labels(outcome).inc()):
            yield

    @contextmanager
    def discovering(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.discovery.observe(time.perf_counter() - started)

    def delivered(self, outcome: str, delivery: Delivery) -> None:
        """``Notifier``'s ``on_delivery``: one attempt's outcome (and latency when acknowledged)."""
        destination = "websocket" if delivery.destination == "websocket" else "callback"
        self.notifications.labels(destination, outcome).inc()
        if outcome == "delivered":
            seconds = (datetime.now(UTC) - delivery.created_at).total_seconds()
            self.delivery.labels(destination).observe(max(0.0, seconds))


@contextmanager
def _outcome(count: Callable[[str], None]) -> Iterator[None]:
    """Count ``ok``, the cause of a ProblemError (a constant of the code), or SYSTEM_FAILURE."""
    try:
        yield
    except ProblemError as exc:
        count(str(exc.cause))
        raise
    except Exception:
        count(str(Cause.SYSTEM_FAILURE))
        raise
    count("ok")
