"""The production store: InfluxDB 1.8+, 2.x or 3.x, written through /api/v2/write, read with InfluxQL.

The schema (measurements, tags, fields, and why cardinality stays bounded) is in `influx_schema`;
the transport and its failure classification in `influx_http`; InfluxQL building in `influx_query`.

Duplicates are detected by reading a batch's keys before writing it, and pages follow midika's
(ts, device, …) order although InfluxQL orders only by time: both designs, and their costs, are
described in `influx_keys`.

Configuration is checked without I/O in the constructor; the first request connects.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from midika.errors import BadQuery, ConfigError, StoreError
from midika.models.records import DeviceState, Event, QuarantineRecord, Reading, StatusReport
from midika.store import influx_query as q
from midika.store import influx_schema as schema
from midika.store.base import (
    AggregateQuery,
    Bucket,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    WriteResult,
)
from midika.store.influx_http import InfluxHttp
from midika.store.influx_keys import Key, keyset_page, stored_keys


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
            key=lambda r: (r.trial, r.device, r.measurement, schema.to_us(r.ts)),
            line=schema.reading_line,
            lock=self._readings_lock,
        )

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        """Store events; the same (trial, device, type, ts) is stored once."""
        return self._write_keyed(
            events,
            kind=schema.EVENTS,
            second="type",
            key=lambda e: (e.trial, e.device, e.type, schema.to_us(e.ts)),
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
        return Page(items=[schema.reading_from_row(r, trial=query.trial) for r in rows], next_cursor=cursor)

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
        return Page(items=[schema.event_from_row(r, trial=query.trial) for r in rows], next_cursor=cursor)

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Non-empty epoch-aligned time buckets ordered by (measurement, device, start)."""
        self._check_open()
        bucket_us = query.bucket // _MICROSECOND
        if bucket_us < 1:
            raise BadQuery(f"bucket must be a positive duration, got {query.bucket}")
        q.require_aware(start=query.start, end=query.end)
        conditions = self._selection(query.trial, query.devices, "measurement", query.measurements)
        if conditions is None or query.end <= query.start:
            return []
        statement = q.aggregate(
            schema.READINGS,
            "value",
            [*conditions, *q.time_range(query.start, query.end)],
            bucket_us=bucket_us,
            group_by=("measurement", "device") if query.per_device else ("measurement",),
        )
        [rows] = self._http.query([statement])
        buckets = [schema.bucket_from_row(row, per_device=query.per_device) for row in rows if row["count"]]
        buckets.sort(key=lambda b: (b.measurement, b.device or "", b.start))
        return buckets

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
        readings = [schema.reading_from_row(r, trial=trial) for r in rows]
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

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        """Quarantined messages matching `query`, newest first, with their store ids."""
        self._check_open()
        q.require_limit(query.limit)
        conditions = q.time_range(query.start, query.end)
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
