"""Prometheus metrics of the SAS data plane, on a registry passed in (no global registry).

The engine counts only what is per connection or exceptional (accepts, refusals, its own error
answers, upstream failures), so a request that goes well costs it nothing. Per-request metrics
labelled by application, service, priority and status are for the gate: it takes an
:meth:`SasMetrics.observer` once per (application, service, priority) and calls it from
``Admit.on_done``; label children are resolved once and cached.

With ``sas_workers`` > 1 the data plane runs in worker processes: each keeps these metrics in
Prometheus multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, one directory per access server, set by
:class:`asgate.access.workers.WorkerProcesses`), and the parent exports their sum through
:class:`WorkerMetrics` on its own ``/metrics``. Open connections are also shown per worker (the
kernel's SO_REUSEPORT balance), labelled by the worker's pid: bounded by ``sas_workers``, since a
dead worker's series is dropped.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SasMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.connections = Counter(
            "asgate_sas_connections", "Client connections by outcome", ["outcome"], registry=r
        )
        # liveall: in a worker, one value per live worker process (WorkerMetrics sums them).
        self.open_connections = Gauge(
            "asgate_sas_open_connections", "Client connections open", registry=r, multiprocess_mode="liveall"
        )
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


PREFIX = "asgate_sas_"
OPEN = "asgate_sas_open_connections"


def fresh_directory(path: Path) -> Path:
    """The workers' metric files directory, emptied (files of a previous run would be counted)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


def forget_worker(pid: int, path: Path) -> None:
    """Drop a dead worker's gauges (its counters and histograms keep counting in the sum)."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


class WorkerMetrics(Collector):
    """The data-plane workers' ``asgate_sas_*`` metrics, summed over the worker processes from their
    multiprocess files (their other metrics, e.g. of their store, are not the data plane's). A metric
    no worker has counted yet is shown without samples, as a single process shows it."""

    def __init__(self, path: Path) -> None:
        # prometheus_client's multiprocess module has no type annotations.
        self._files = MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]
        self._declared = list(SasMetrics().registry.collect())

    def collect(self) -> Iterator[Metric]:
        families: Iterable[Metric] = self._files.collect()  # type: ignore[no-untyped-call]
        seen: set[str] = set()
        for family in families:
            if not family.name.startswith(PREFIX):
                continue
            seen.add(family.name)
            if family.name == OPEN:
                yield from _open_connections(family)
            else:
                yield family
        for declared in self._declared:
            if declared.name not in seen:
                if declared.name == OPEN:
                    yield from _open_connections(Metric(OPEN, "", "gauge"))
                else:
                    yield Metric(declared.name, declared.documentation, declared.type)


def _open_connections(family: Metric) -> Iterator[Metric]:
    total = GaugeMetricFamily(OPEN, "Client connections open")
    total.add_metric([], sum(s.value for s in family.samples))
    per_worker = GaugeMetricFamily(
        "asgate_sas_worker_open_connections", "Client connections open, per data-plane worker", labels=["pid"]
    )
    for sample in family.samples:
        per_worker.add_metric([sample.labels.get("pid", "")], sample.value)
    yield total
    yield per_worker
