"""Prometheus metrics of the ingest, read from `IngestStats` at scrape time.

A custom Collector instead of prometheus_client's Counter objects: the writer's counters stay the
one source of truth, and a scrape sees one consistent snapshot of them. Every registry here is
built per process (`metrics_registry`), never prometheus_client's global one, so two platforms in
one test process do not mix their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ingest.stats import LATENCY_BOUNDS_S, IngestStats
from midika import __version__
from midika.models.records import QuarantineReason

PREFIX = "midika_ingest"


class IngestCollector(Collector):
    """Exports one `IngestStats` snapshot per scrape; `stats` is typically `IngestWorker.stats`' getter."""

    def __init__(self, stats: Callable[[], IngestStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """The metrics of the current snapshot."""
        s = self._stats()
        yield _counter("messages_received", "MQTT messages delivered by the broker", s.received)
        yield _counter("readings_stored", "readings newly written to the store", s.readings_stored)
        duplicates = CounterMetricFamily(
            f"{PREFIX}_duplicates",
            "records already stored (a redelivery, a device resend or a replay), not stored again",
            labels=["kind"],
        )
        duplicates.add_metric(["reading"], s.duplicates)
        duplicates.add_metric(["event"], s.event_duplicates)
        yield duplicates
        yield _counter("events_stored", "events newly written to the store", s.events_stored)
        yield _counter("status_stored", "device status reports written to the store", s.status_stored)
        quarantined = CounterMetricFamily(
            f"{PREFIX}_quarantined", "messages kept in quarantine instead of stored", labels=["reason"]
        )
        for reason in QuarantineReason:  # every reason, zeros too, so rate() works from the start
            quarantined.add_metric([reason.value], s.quarantined.get(reason, 0))
        yield quarantined
        yield _counter(
            "messages_accepted", "messages whose records are in the store (replays included)", s.accepted
        )
        yield _counter(
            "lost", "messages whose records the store refused for good (each logged); should stay 0", s.lost
        )
        yield _counter("spooled", "messages written to the outage spool while the store was down", s.spooled)
        yield _counter("replayed", "spooled messages since written to the store", s.replayed)
        yield _counter(
            "recovered", "messages found in the spool at start, left there by an earlier run", s.recovered
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pending",
            "messages received but not yet in the store (queued, being written, or spooled)",
            value=s.pending,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_unacked",
            "messages received and not yet acknowledged to the broker (neither stored nor spooled)",
            value=s.unacked,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_spool_bytes", "size of the outage spool on disk", value=s.spool_bytes
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_connected", "1 while connected to the broker", value=int(s.connected)
        )
        latency = s.write_latency
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(LATENCY_BOUNDS_S, latency.counts, strict=True):
            running += count
            cumulative.append((repr(bound), running))
        cumulative.append(("+Inf", latency.total))
        yield HistogramMetricFamily(
            f"{PREFIX}_write_seconds",
            "duration of successful store writes (one per batch and record kind), retries included",
            buckets=cumulative,
            sum_value=latency.sum_s,
        )


class _BuildInfo(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("midika_build_info", "the running midika version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def metrics_registry(stats: Callable[[], IngestStats] | None = None) -> CollectorRegistry:
    """A registry of midika's build info and, given `stats`, the ingest's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_BuildInfo())
    if stats is not None:
        registry.register(IngestCollector(stats))
    return registry


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
