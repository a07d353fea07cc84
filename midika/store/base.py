"""The narrow interface every store implements, and the query objects it takes.

Every implementation passes the same contract suite (`tests/store/contract.py`). Methods are
synchronous: the ingest calls them from its own thread, the API from FastAPI's thread pool, and an
implementation must be safe to call from several threads at once.

Failures raise `midika.errors.StoreError`; `StoreUnavailable` (retryable) when the backend cannot be
reached, so the ingest can keep the data and try again instead of losing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Literal, Protocol, TypeVar

from midika.models.records import (
    DeviceState,
    Event,
    Quality,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)

T = TypeVar("T")

AggregateFn = Literal["mean", "min", "max", "count"]
AGGREGATE_FNS: tuple[AggregateFn, ...] = ("mean", "min", "max", "count")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did: how many records are new and how many were already stored."""

    written: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; `next_cursor` is None on the last page."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingQuery:
    """Raw readings of one trial, ordered by (ts, device, measurement), paged by an opaque cursor.

    `start` is inclusive, `end` exclusive. `quality`, when set, keeps readings whose flags include
    every given bit (Quality.OK keeps only unflagged readings).
    """

    trial: str
    devices: Sequence[str] | None = None
    measurements: Sequence[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    quality: Quality | None = None
    limit: int = 1000
    cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateQuery:
    """Time-bucketed aggregates of one trial's numeric readings in [start, end).

    Buckets are aligned to the Unix epoch (so, for whole hours and days, to UTC). With
    `per_device` False the buckets pool all selected devices.
    """

    trial: str
    start: datetime
    end: datetime
    bucket: timedelta
    devices: Sequence[str] | None = None
    measurements: Sequence[str] | None = None
    per_device: bool = True


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one measurement (of one device, unless pooled) over [start, start + bucket)."""

    start: datetime
    measurement: str
    device: str | None
    count: int
    mean: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """Events of one trial, ordered by (ts, device, type), paged by an opaque cursor."""

    trial: str
    devices: Sequence[str] | None = None
    types: Sequence[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 1000
    cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineQuery:
    """Quarantined messages, newest first."""

    trial: str | None = None
    reasons: Sequence[QuarantineReason] | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 1000
    ids: Sequence[int] | None = field(default=None)


class Store(Protocol):
    """Where readings, events, status reports and quarantined messages are kept."""

    def write_readings(self, readings: Sequence[Reading]) -> WriteResult:
        """Store readings; one with the key of a stored reading is counted as a duplicate, not stored."""
        ...

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        """Store events; the same (trial, device, type, ts) is stored once."""
        ...

    def write_status(self, reports: Sequence[StatusReport]) -> None:
        """Store device status reports (they also update device state)."""
        ...

    def write_quarantine(self, records: Sequence[QuarantineRecord]) -> None:
        """Keep rejected messages with their reasons."""
        ...

    def query_readings(self, query: ReadingQuery) -> Page[Reading]:
        """Raw readings matching `query`, one page at a time."""
        ...

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Non-empty time buckets ordered by (measurement, device, start)."""
        ...

    def latest(
        self,
        *,
        trial: str,
        devices: Sequence[str] | None = None,
        measurements: Sequence[str] | None = None,
    ) -> list[Reading]:
        """The reading with the greatest event time per (device, measurement)."""
        ...

    def query_events(self, query: EventQuery) -> Page[Event]:
        """Events matching `query`, one page at a time."""
        ...

    def device_states(self, *, trial: str) -> list[DeviceState]:
        """The state of every device of `trial` that has sent anything."""
        ...

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        """Quarantined messages matching `query`, newest first, with their store ids."""
        ...

    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
        ...
