"""The narrow interface every store implements, and the query objects it takes.

Every implementation passes the same contract suite (`tests/store/contract.py`). Methods are
synchronous: the ingest calls them from its own thread, the API from FastAPI's thread pool, and an
implementation must be safe to call from several threads at once.

Failures raise `midika.errors.StoreError`; `StoreUnavailable` (retryable) when the backend cannot be
reached, so the ingest can keep the data and try again instead of losing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Literal, Protocol, TypeVar

import pyarrow as pa

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

# The columns of `Store.reading_table`: what exports stream, without a Python object per reading.
READING_SCHEMA = pa.schema(
    [
        ("device", pa.string()),
        ("measurement", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("text", pa.string()),
        ("ingest_ts", pa.timestamp("us", tz="UTC")),
        ("seq", pa.int64()),
        ("quality", pa.uint8()),
    ]
)

AggregateFn = Literal["mean", "min", "max", "count", "sum", "first", "last"]
AGGREGATE_FNS: tuple[AggregateFn, ...] = ("mean", "min", "max", "count", "sum", "first", "last")
MONTH: Literal["month"] = "month"


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


@dataclass(frozen=True, slots=True)
class TablePage:
    """One page of readings as columns (READING_SCHEMA); `next_cursor` is None on the last page."""

    table: pa.Table
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

    `bucket` is a positive duration or MONTH (calendar months). Buckets are aligned in `timezone`
    (an IANA name): a 1-day bucket in Asia/Tokyo starts at 00:00 JST. Every bucket overlapping the
    window is reported for each series with a reading in it, empty ones with count 0 and null
    values; `midika.store.buckets` defines the grid, the percentiles and first/last exactly.
    With `per_device` False the buckets pool all selected devices.
    """

    trial: str
    start: datetime
    end: datetime
    bucket: timedelta | Literal["month"]
    devices: Sequence[str] | None = None
    measurements: Sequence[str] | None = None
    per_device: bool = True
    functions: Sequence[AggregateFn] = ("mean", "min", "max")
    percentiles: Sequence[float] = ()
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of one measurement (of one device, unless pooled) over [start, next start).

    `values` holds each asked function (but count, always present) and percentile ("p95") by name.
    """

    start: datetime
    measurement: str
    device: str | None
    count: int
    values: Mapping[str, float | None]


StatsKey = Literal["device", "measurement"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsQuery:
    """Delivery statistics of one trial's readings (and events) in [start, end), grouped by `by`."""

    trial: str
    start: datetime
    end: datetime
    devices: Sequence[str] | None = None
    by: Sequence[StatsKey] = ("device", "measurement")


@dataclass(frozen=True, slots=True)
class ReadingStats:
    """How many readings arrived, how many were flagged, and how late (ingest_ts - ts) they were.

    `device` and `measurement` are None when not grouped by. Delays are nearest-rank percentiles,
    in microseconds; None when there are no readings.
    """

    device: str | None
    measurement: str | None
    count: int
    flagged: int
    delay_p50_us: int | None
    delay_p95_us: int | None


@dataclass(frozen=True, slots=True)
class EventCount:
    """How many events of `type` a device raised."""

    device: str
    type: str
    count: int


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

    def reading_table(self, query: ReadingQuery) -> TablePage:
        """The same page as `query_readings`, as an Arrow table of READING_SCHEMA; the same cursors."""
        ...

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Every bucket of each series with data, ordered by (measurement, device, start)."""
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

    def reading_stats(self, query: StatsQuery) -> list[ReadingStats]:
        """Counts, flagged counts and delay percentiles per group with readings, ordered by group."""
        ...

    def event_counts(self, query: StatsQuery) -> list[EventCount]:
        """Events per (device, type) in the window, ordered by both (`query.by` is ignored)."""
        ...

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        """Quarantined messages matching `query`, newest first, with their store ids."""
        ...

    def delete_quarantine(self, ids: Sequence[int]) -> int:
        """Remove quarantined messages (once re-ingested or replaced); how many of `ids` were found."""
        ...

    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
        ...
