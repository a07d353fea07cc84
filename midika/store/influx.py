"""The production store: InfluxDB 1.8+, 2.x or 3.x, written through /api/v2/write, read with InfluxQL.

The schema (measurements, tags, fields, and why cardinality stays bounded) is in `influx_schema`;
the transport and its failure classification in `influx_http`; InfluxQL building in `influx_query`.

Duplicates are detected by reading a batch's keys before writing it, and pages follow midika's
(ts, device, …) order although InfluxQL orders only by time: both designs, and their costs, are
described in `influx_keys`.

Configuration is checked without I/O in the constructor; the first request connects.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa

from midika.errors import ConfigError, StoreError
from midika.models.records import DeviceState, Event, QuarantineRecord, Reading, StatusReport
from midika.store import buckets
from midika.store import influx_query as q
from midika.store import influx_schema as schema
from midika.store.base import (
    MONTH,
    READING_SCHEMA,
    AggregateQuery,
    Bucket,
    EventCount,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    ReadingStats,
    StatsQuery,
    TablePage,
    WriteResult,
)
from midika.store.buckets import BucketGrid
from midika.store.influx_http import InfluxHttp
from midika.store.influx_keys import Key, keyset_page, stored_keys
from midika.timeutil import from_us, to_us


class _Sent(Protocol):
    """What every keyed record has: who sent it and when it arrived."""

    @property
    def trial(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def ingest_ts(self) -> datetime: ...


T = TypeVar("T", bound=_Sent)

_MICROSECOND = timedelta(microseconds=1)
_MIN = "_min"
# InfluxQL's name of each aggregate function but count; first/last break ties by the greater value.
_INFLUX_FN = {"mean": "mean", "min": "min", "max": "max", "sum": "sum", "first": "first", "last": "last"}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class _Filled:
    """A bucket holding readings, its start in µs."""

    measurement: str
    device: str | None
    start_us: int
    count: int
    values: dict[str, float | None]


class _Span(NamedTuple):
    """The time conditions of one aggregate statement: one bucket, or buckets InfluxQL groups."""

    times: list[str]
    start_us: int | None = None  # the one bucket's start
    grid: tuple[int, int] | None = None  # GROUP BY time(width µs, phase µs)


def _spans(query: AggregateQuery) -> list[_Span]:
    """The windows of an aggregate's statements: a month each, or the fixed buckets of the window.

    Buckets wholly outside the times InfluxDB holds (`influx_schema`) are left out: they can hold
    nothing, and a time beyond that range fails the statement. GROUP BY time() goes wrong within a
    bucket of either end: it floors each time less the phase to the width and moves a start before
    the range to the range's start, which misplaces the first bucket (and, with a phase, drops later
    ones), and it drops a bucket ending after the range. So each bucket within a width of either end
    is a statement of its own, as a month is.
    """

    def span(lo: datetime, hi: datetime, **kind: Any) -> list[_Span]:
        times = q.time_range(lo, hi)
        return [] if times is None else [_Span(times, **kind)]

    if query.bucket == MONTH:
        bounds = buckets.month_starts(query)
        return [
            s
            for lo, hi in itertools.pairwise(bounds)
            for s in span(max(lo, query.start), min(hi, query.end), start_us=to_us(lo))
        ]
    assert isinstance(query.bucket, timedelta)
    width = query.bucket // _MICROSECOND
    lo = max(to_us(query.start), schema.FIRST_US)
    hi = min(to_us(query.end), schema.LAST_US + 1)
    if lo >= hi:
        return []
    first, last = buckets.floor_us(lo, query), buckets.floor_us(hi - 1, query)
    edges = []
    while first <= last and first < schema.FIRST_US + width:  # the phase is less than the width
        edges.append(first)
        first += width
    while first <= last and last + width > schema.LAST_US:
        edges.append(last)
        last -= width
    spans = [s for b in edges for s in span(from_us(max(b, lo)), from_us(min(b + width, hi)), start_us=b)]
    if first <= last:
        grid = (width, buckets.phase_us(query))
        spans += span(from_us(max(first, lo)), from_us(min(last + width, hi)), grid=grid)
    return spans


class InfluxStore:
    """The Store on InfluxDB; safe to share between threads.

    `username`/`password` are InfluxDB 1.x credentials; 2.x and 3.x take a `token`. `bucket` is where
    writes go, by default "database/retention_policy" — 1.8's naming, and that of 2.x buckets reached
    through a DBRP mapping; reads name `database` and `retention_policy`. `org` names the 2.x
    organisation; 1.8 and 3.x ignore it ("-" by convention).
    """

    def __init__(
        self,
        *,
        url: str,
        database: str,
        retention_policy: str | None = None,
        bucket: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        org: str = "-",
        timeout_s: float = 10,
    ) -> None:
        if urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).netloc:
            raise ConfigError(f"influx url: {url!r} is not an http(s)://host[:port] URL")
        if not database:
            raise ConfigError("influx database: must not be empty")
        if token is not None and username is not None:
            raise ConfigError("influx token and username: give a token (2.x/3.x) or a username (1.x)")
        if password is not None and username is None:
            raise ConfigError("influx password: given without a username")
        if timeout_s <= 0:
            raise ConfigError(f"influx timeout_s: {timeout_s} must be positive")
        default_bucket = f"{database}/{retention_policy}" if retention_policy else database
        self._http = InfluxHttp(
            url=url,
            bucket=bucket or default_bucket,
            database=database,
            retention_policy=retention_policy,
            token=token,
            username=username,
            password=password,
            org=org,
            timeout_s=timeout_s,
        )
        self._readings_lock = threading.Lock()
        self._events_lock = threading.Lock()
        self._quarantine_lock = threading.Lock()
        self._closed = False

    # -- writes --------------------------------------------------------------------------------

    def write_readings(self, readings: Sequence[Reading]) -> WriteResult:
        """Store readings; one with the key of a stored reading is counted as a duplicate, not stored."""
        return self._write_keyed(
            readings,
            kind=schema.READINGS,
            second="measurement",
            key=lambda r: (r.trial, r.device, r.measurement, to_us(r.ts)),
            line=schema.reading_line,
            lock=self._readings_lock,
        )

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        """Store events; the same (trial, device, type, ts) is stored once."""
        return self._write_keyed(
            events,
            kind=schema.EVENTS,
            second="type",
            key=lambda e: (e.trial, e.device, e.type, to_us(e.ts)),
            line=schema.event_line,
            lock=self._events_lock,
        )

    def write_status(self, reports: Sequence[StatusReport]) -> None:
        """Store device status reports (they also update device state)."""
        self._check_open()
        lines = [schema.status_line(r) for r in reports]
        lines += schema.seen_lines((r.trial, r.device, r.ingest_ts) for r in reports)
        self._http.write(lines)

    def write_quarantine(self, records: Sequence[QuarantineRecord]) -> None:
        """Keep rejected messages with their reasons; ids continue from the greatest stored one."""
        self._check_open()
        if not records:
            return
        with self._quarantine_lock:
            [rows] = self._http.query([f'SELECT max("id") AS "id" FROM {q.ident(schema.QUARANTINE)}'])
            next_id = int(rows[0]["id"]) + 1 if rows and rows[0].get("id") is not None else 1
            lines = [schema.quarantine_line(r, next_id + i) for i, r in enumerate(records)]
            self._http.write(lines, precision="ns")

    def _write_keyed(
        self,
        records: Sequence[T],
        *,
        kind: str,
        second: str,
        key: Callable[[T], Key],
        line: Callable[[T], str],
        lock: threading.Lock,
    ) -> WriteResult:
        self._check_open()
        if not records:
            return WriteResult(written=0, duplicates=0)
        keys = [key(r) for r in records]
        with lock:
            known = stored_keys(self._http, kind, second, keys)
            new: list[T] = []
            for record, k in zip(records, keys, strict=True):
                if k not in known:
                    known.add(k)  # a second copy inside the batch is a duplicate as well
                    new.append(record)
            lines = [line(r) for r in new]
            lines += schema.seen_lines((r.trial, r.device, r.ingest_ts) for r in new)
            self._http.write(lines)
        return WriteResult(written=len(new), duplicates=len(records) - len(new))

    # -- reads ---------------------------------------------------------------------------------

    def query_readings(self, query: ReadingQuery) -> Page[Reading]:
        """Raw readings matching `query`, one page at a time."""
        self._check_open()
        conditions = self._selection(query.trial, query.devices, "measurement", query.measurements)
        if conditions is None:
            return Page(items=[], next_cursor=None)
        if query.quality is not None:
            conditions.append(q.quality_filter(query.quality))
        rows, cursor = keyset_page(
            self._http,
            schema.READINGS,
            [*schema.READING_COLUMNS, "device", "measurement"],
            conditions,
            second="measurement",
            start=query.start,
            end=query.end,
            limit=query.limit,
            cursor=query.cursor,
        )
        return Page(
            items=[schema.reading_from_row(r, trial=query.trial) for r in rows if schema.complete_reading(r)],
            next_cursor=cursor,
        )

    def reading_table(self, query: ReadingQuery) -> TablePage:
        """The same page as `query_readings`, as an Arrow table."""
        page = self.query_readings(query)
        items = page.items
        table = pa.Table.from_pydict(
            {
                "device": [r.device for r in items],
                "measurement": [r.measurement for r in items],
                "ts": [r.ts for r in items],
                "value": [r.value for r in items],
                "text": [r.text for r in items],
                "ingest_ts": [r.ingest_ts for r in items],
                "seq": [r.seq for r in items],
                "quality": [int(r.quality) for r in items],
            },
            schema=READING_SCHEMA,
        )
        return TablePage(table, page.next_cursor)

    def query_events(self, query: EventQuery) -> Page[Event]:
        """Events matching `query`, one page at a time."""
        self._check_open()
        conditions = self._selection(query.trial, query.devices, "type", query.types)
        if conditions is None:
            return Page(items=[], next_cursor=None)
        rows, cursor = keyset_page(
            self._http,
            schema.EVENTS,
            [*schema.EVENT_COLUMNS, "device", "type"],
            conditions,
            second="type",
            start=query.start,
            end=query.end,
            limit=query.limit,
            cursor=query.cursor,
        )
        return Page(
            items=[schema.event_from_row(r, trial=query.trial) for r in rows if schema.complete_event(r)],
            next_cursor=cursor,
        )

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Every bucket of each series with data, ordered by (measurement, device, start)."""
        return self.aggregate_grid(query).buckets()

    def aggregate_grid(self, query: AggregateQuery, *, series: Iterable[buckets.Series] = ()) -> BucketGrid:
        """Every bucket of each series with data or named in `series`, as columns.

        The non-empty buckets go onto the grid with their starts in µs, as DuckDB's do: a grid can
        start before year 1, where no datetime can hold its first bucket's start.
        """
        self._check_open()
        buckets.check(query)
        names = buckets.value_names(query)
        conditions = self._selection(query.trial, query.devices, "measurement", query.measurements)
        found = []
        if conditions is not None and query.start < query.end:
            found = self._filled_buckets(query, conditions, names)
        found.sort(key=lambda b: (b.measurement, b.device or "", b.start_us))
        return buckets.grid_of_rows(
            query,
            measurement=np.array([b.measurement for b in found], dtype=np.object_),
            device=np.array([b.device for b in found], dtype=np.object_) if query.per_device else None,
            start_us=np.array([b.start_us for b in found], dtype=np.int64),
            count=np.array([b.count for b in found], dtype=np.int64),
            # None becomes NaN: the grid's null.
            values={name: np.array([b.values[name] for b in found], dtype=np.float64) for name in names},
            series=series,
        )

    def _filled_buckets(
        self, query: AggregateQuery, conditions: list[str], names: list[str]
    ) -> list[_Filled]:
        """The buckets of `query` holding readings, unordered.

        Fixed sizes group in InfluxQL, `GROUP BY time(width, phase)` with the phase putting bucket
        starts on local midnight (-9h for JST, as a positive phase); calendar months have no
        InfluxQL interval, so each month is one statement over its bounds, all in one request
        (`_spans` has the statements' windows).
        """
        f = q.ident("value")
        selects = [(f"count({f})", "count")]
        selects += [(f"{_INFLUX_FN[name]}({f})", name) for name in names if name in _INFLUX_FN]
        selects += [
            (f"percentile({f}, {float(p)!r})", buckets.percentile_label(p)) for p in query.percentiles
        ]
        if query.percentiles:
            selects.append((f"min({f})", _MIN))  # InfluxDB gives no percentile below rank 1: that is the min
        group_by = ("measurement", "device") if query.per_device else ("measurement",)
        spans = _spans(query)
        statements = [
            q.aggregate(
                schema.READINGS,
                [*conditions, *span.times],
                selects=selects,
                group_by=group_by,
                bucket=span.grid,
            )
            for span in spans
        ]
        found: list[_Filled] = []
        for span, rows in zip(spans, self._http.query(statements), strict=True):
            for row in rows:
                if not row["count"]:
                    continue
                values = {name: _opt_float(row.get(name)) for name in names}
                for p in query.percentiles:
                    label = buckets.percentile_label(p)
                    if values[label] is None:
                        values[label] = _opt_float(row[_MIN])
                found.append(
                    _Filled(
                        measurement=row["measurement"],
                        device=row["device"] if query.per_device else None,
                        start_us=span.start_us if span.start_us is not None else int(row["time"]),
                        count=int(row["count"]),
                        values=values,
                    )
                )
        return found

    def latest(
        self,
        *,
        trial: str,
        devices: Sequence[str] | None = None,
        measurements: Sequence[str] | None = None,
    ) -> list[Reading]:
        """The reading with the greatest event time per (device, measurement)."""
        self._check_open()
        conditions = self._selection(trial, devices, "measurement", measurements)
        if conditions is None:
            return []
        statement = q.select(
            schema.READINGS,
            schema.READING_COLUMNS,
            conditions,
            group_by=("device", "measurement"),
            suffix="ORDER BY time DESC LIMIT 1",
        )
        [rows] = self._http.query([statement])
        readings = [schema.reading_from_row(r, trial=trial) for r in rows if schema.complete_reading(r)]
        readings.sort(key=lambda r: (r.device, r.measurement))
        return readings

    def device_states(self, *, trial: str) -> list[DeviceState]:
        """The state of every device of `trial` that has sent anything."""
        self._check_open()
        where = [f'"trial" = {q.literal(trial)}']
        status_rows, seen_rows = self._http.query(
            [
                q.select(
                    schema.STATUS,
                    schema.STATUS_COLUMNS,
                    where,
                    group_by=("device",),
                    suffix="ORDER BY time DESC LIMIT 1",
                ),
                q.select(
                    schema.DEVICE_SEEN,
                    ["records"],
                    where,
                    group_by=("device",),
                    suffix="ORDER BY time DESC LIMIT 1",
                ),
            ]
        )
        return schema.device_states(trial, status_rows=status_rows, seen_rows=seen_rows)

    def reading_stats(self, query: StatsQuery) -> list[ReadingStats]:
        """Counts, flagged counts and delay percentiles per group with readings, ordered by group."""
        self._check_open()
        conditions = self._stats_conditions(query)
        if conditions is None:
            return []
        keys = tuple(dict.fromkeys(query.by))
        delay = q.ident("delay_us")
        quality = q.ident("quality")  # written on every point, so count(quality) counts readings
        everything = q.aggregate(
            schema.READINGS,
            conditions,
            selects=[
                (f"count({quality})", "count"),
                (f"percentile({delay}, 50)", "p50"),
                (f"percentile({delay}, 95)", "p95"),
                (f"min({delay})", _MIN),
            ],
            group_by=keys,
            bucket=None,
        )
        flagged = q.aggregate(
            schema.READINGS,
            [*conditions, f"{quality} != 0"],
            selects=[(f"count({quality})", "flagged")],
            group_by=keys,
            bucket=None,
        )
        rows, flagged_rows = self._http.query([everything, flagged])

        def group(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
            return tuple(row.get(k) if k in keys else None for k in ("device", "measurement"))  # type: ignore[return-value]

        flagged_by = {group(r): int(r["flagged"]) for r in flagged_rows}
        stats = []
        for row in rows:
            if not row["count"]:
                continue
            low = row.get(_MIN)
            p50, p95 = (row.get(p) if row.get(p) is not None else low for p in ("p50", "p95"))
            device, measurement = group(row)
            stats.append(
                ReadingStats(
                    device=device,
                    measurement=measurement,
                    count=int(row["count"]),
                    flagged=flagged_by.get((device, measurement), 0),
                    delay_p50_us=None if p50 is None else int(p50),
                    delay_p95_us=None if p95 is None else int(p95),
                )
            )
        stats.sort(key=lambda s: (s.device or "", s.measurement or ""))
        return stats

    def event_counts(self, query: StatsQuery) -> list[EventCount]:
        """Events per (device, type) in the window, ordered by both."""
        self._check_open()
        conditions = self._stats_conditions(query)
        if conditions is None:
            return []
        statement = q.aggregate(
            schema.EVENTS,
            conditions,
            selects=[(f"count({q.ident('ingest_ts')})", "count")],
            group_by=("device", "type"),
            bucket=None,
        )
        [rows] = self._http.query([statement])
        counts = [EventCount(r["device"], r["type"], int(r["count"])) for r in rows if r["count"]]
        return sorted(counts, key=lambda c: (c.device, c.type))

    def _stats_conditions(self, query: StatsQuery) -> list[str] | None:
        window = q.time_range(query.start, query.end)
        conditions = self._selection(query.trial, query.devices, "measurement", None)
        if window is None or conditions is None:
            return None
        return [*conditions, *window]

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        """Quarantined messages matching `query`, newest first, with their store ids."""
        self._check_open()
        q.require_limit(query.limit)
        conditions = q.time_range(query.start, query.end)
        if conditions is None:
            return []
        if query.trial is not None:
            conditions.append(f'"trial" = {q.literal(query.trial)}')
        if query.reasons is not None:
            if not query.reasons:
                return []
            conditions.append(q.any_of("reason", [str(r) for r in query.reasons]))
        if query.ids is not None:
            if not query.ids:
                return []
            conditions.append(q.any_int("id", query.ids))
        statement = q.select(
            schema.QUARANTINE,
            schema.QUARANTINE_COLUMNS,
            conditions,
            suffix=f"ORDER BY time DESC LIMIT {query.limit}",
        )
        [rows] = self._http.query([statement], epoch="ns")
        records = [schema.quarantine_from_row(r) for r in rows]
        records.sort(key=lambda r: (r.received_ts, r.id or 0), reverse=True)
        return records

    def delete_quarantine(self, ids: Sequence[int]) -> int:
        """Remove quarantined messages by id; how many of `ids` were found."""
        self._check_open()
        if not ids:
            return 0
        where = q.any_int("id", ids)
        with self._quarantine_lock:
            [rows] = self._http.query(
                [f'SELECT "id", "reason" FROM {q.ident(schema.QUARANTINE)} WHERE {where}'], epoch="ns"
            )
            # A point is its series (the reason tag) and its time, which embeds the id: delete exactly it.
            self._http.query(
                [
                    f"DELETE FROM {q.ident(schema.QUARANTINE)} WHERE "
                    f'"reason" = {q.literal(str(row["reason"]))} AND time = {int(row["time"])}'
                    for row in rows
                ]
            )
        return len(rows)

    def close(self) -> None:
        """Release the HTTP connections; the store is unusable afterwards."""
        if not self._closed:
            self._closed = True
            self._http.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the InfluxDB store is closed")

    @staticmethod
    def _selection(
        trial: str, devices: Sequence[str] | None, second: str, seconds: Sequence[str] | None
    ) -> list[str] | None:
        """Conditions selecting a trial's devices and measurements (or types); None selects nothing."""
        conditions = [f'"trial" = {q.literal(trial)}']
        for key, values in (("device", devices), (second, seconds)):
            if values is not None:
                if not values:
                    return None
                conditions.append(q.any_of(key, values))
        return conditions
