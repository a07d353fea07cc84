"""The ingest's counters: one frozen snapshot type, read by the log, `/metrics` and the tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from midika.models.records import QuarantineReason

__all__ = ["LATENCY_BOUNDS_S", "IngestStats", "Latency"]

# Upper bounds (seconds) of the write-latency histogram: a DuckDB batch takes milliseconds, an
# InfluxDB one over a network tens of them, a retried write seconds.
LATENCY_BOUNDS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Latency:
    """A histogram of store write durations: `counts[i]` writes took at most LATENCY_BOUNDS_S[i]."""

    counts: tuple[int, ...] = (0,) * len(LATENCY_BOUNDS_S)  # not cumulative; the excess in `over`
    over: int = 0
    total: int = 0
    sum_s: float = 0.0


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters since start; each one that can show loss is exported as a metric.

    Every message received, or recovered from the spool of an earlier run, is in exactly one of
    `accepted`, `quarantined` (by reason), `lost` or `pending`: `received + recovered` is their sum.
    A spooled message counts as pending until it is replayed.
    """

    received: int = 0  # messages delivered by the broker (redeliveries included)
    recovered: int = 0  # messages found in the spool at start, left by an earlier run
    pending: int = 0  # received, not yet in the store (queued, being written, or in the spool)
    unacked: int = 0  # received, not yet acknowledged to the broker: neither stored nor spooled
    accepted: int = 0  # messages whose records are in the store
    readings_stored: int = 0
    duplicates: int = 0  # readings already stored (a redelivery, a resend or a replay)
    events_stored: int = 0
    event_duplicates: int = 0
    status_stored: int = 0
    quarantined: Mapping[QuarantineReason, int] = field(default_factory=dict)
    lost: int = 0  # messages whose records the store refused for good; each is also logged as an error
    spooled: int = 0  # messages written to the outage spool
    replayed: int = 0  # spooled messages since written to the store
    spool_bytes: int = 0  # the spool's size on disk now
    connected: bool = False
    write_latency: Latency = field(default_factory=Latency)  # successful store writes, retries included

    @property
    def quarantined_total(self) -> int:
        """Messages kept in quarantine, all reasons together."""
        return sum(self.quarantined.values())
