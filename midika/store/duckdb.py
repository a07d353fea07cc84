"""The embedded store: one DuckDB file, for development, demos and trials that fit on one machine.

Times are stored as naive TIMESTAMP holding UTC; every datetime is converted at this boundary, and
nothing here depends on DuckDB's session time zone.

Writes arrive as whole batches: each becomes one Arrow table inserted by one statement. Duplicates
are found by an anti-join against the stored rows whose event time lies inside the batch's time
window, so DuckDB's zone maps skip every row group outside it: the cost follows the rows in that
window, not the size of the table, and no index has to be held in memory (a PRIMARY KEY with
INSERT OR IGNORE measured 3x slower per batch, and its index grows with the table). Repeats inside
a batch are dropped with Arrow first, keeping the first occurrence, as a stored reading is kept.
A batch of late data spanning hours scans the stored rows of those hours (~25M rows per CPU second).

Write rate, measured on the 2-core development VM (DuckDB 2.0.1, pyarrow 26, Python 3.11) while
other jobs kept its load average at 3-3.7: 1,000,000 new readings (200 devices x 5 measurements,
one a second each) in batches of 5,000 through `write_readings` into a fresh file, timed with
`time.process_time()` and `time.perf_counter()` around the loop over prebuilt `Reading` lists, five
runs: 4.1-6.0 s of CPU, 167,000-245,000 readings/s (wall clock 98,000-238,000/s, depending on how
much CPU the other jobs left). Baseline in the same runs: the same rows as prebuilt Arrow tables,
plain INSERT, no duplicate check: 400,000-670,000/s; building the Arrow columns from the dataclasses
is about half the store's time. Writing batches again (all duplicates) costs 14-22 ms of CPU each.
A batch into a table already holding 20M readings costs the same ~10 ms of database time as into
an empty one.

Reads on 20M readings, same VM: a page of 1,000 readings ~10 ms (zone maps and DuckDB's top-N
filter skip the rest), an hour of 15-minute aggregates ~120 ms; `latest` and `device_states` scan
the trial's readings, ~0.5 s and ~0.2 s of CPU, which an embedded store can afford.

Thread safety: each call works on its own cursor of the one connection; writes also hold a lock,
so the anti-join and the insert see no concurrent writer.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from midika.errors import BadQuery, StoreError, StoreUnavailable
from midika.models.records import (
    DeviceState,
    Event,
    Quality,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)
from midika.store import buckets, cursors
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
from midika.timeutil import from_us, to_us

SCHEMA_VERSION = 1
_US = pa.timestamp("us")
_US_UTC = pa.timestamp("us", tz="UTC")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS midika_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS readings (
    trial VARCHAR NOT NULL, device VARCHAR NOT NULL, measurement VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, value DOUBLE, text VARCHAR, ingest_ts TIMESTAMP NOT NULL,
    seq BIGINT, quality UTINYINT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    trial VARCHAR NOT NULL, device VARCHAR NOT NULL, type VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    ingest_ts TIMESTAMP NOT NULL, data VARCHAR NOT NULL, seq BIGINT
);
CREATE TABLE IF NOT EXISTS status (
    trial VARCHAR NOT NULL, device VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
    ingest_ts TIMESTAMP NOT NULL, online BOOLEAN, battery DOUBLE, rssi DOUBLE, firmware VARCHAR,
    uptime_s DOUBLE
);
CREATE SEQUENCE IF NOT EXISTS quarantine_ids;
CREATE TABLE IF NOT EXISTS quarantine (
    id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_ids'), topic VARCHAR NOT NULL,
    payload BLOB NOT NULL, reason VARCHAR NOT NULL, detail VARCHAR NOT NULL,
    received_ts TIMESTAMP NOT NULL, trial VARCHAR, device VARCHAR, payload_size BIGINT NOT NULL
);
"""

# The SQL of each aggregate function but count, over a bucket's numeric readings.
_AGGREGATE_SQL = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    # Ties in time (pooled devices) go to the greatest value, as InfluxDB's FIRST and LAST.
    "first": "arg_min(value, (ts, -value))",
    "last": "arg_max(value, (ts, value))",
}

_READING_COLS = "trial, device, measurement, ts, value, text, ingest_ts, seq, quality"
_EVENT_COLS = "trial, device, type, ts, ingest_ts, data, seq"
_STATUS_COLS = "trial, device, ts, ingest_ts, online, battery, rssi, firmware, uptime_s"
_FIRST_SPAN = timedelta(hours=1)  # the first window a page is read from (see _windowed_page)
_TICK = timedelta(microseconds=1)
_WINDOW_TABLES = 3  # tables of `rows` readings a window of `reading_batches` aims to hold
_QUARANTINE_COLS = "topic, payload, reason, detail, received_ts, trial, device, payload_size"


class DuckDBStore:
    """A `Store` in one DuckDB file (or ":memory:"), created with its schema on open.

    `memory_limit` ("256MB") caps DuckDB's cache of the file and its working memory; None keeps
    DuckDB's default, 80% of RAM, which a long-running API fills with cached blocks.
    """

    def __init__(self, *, path: Path | str, memory_limit: str | None = None) -> None:
        self._path = str(path)
        self._write_lock = threading.Lock()
        # DuckDB refuses to close a connection while any of its cursors runs a query, so close()
        # waits for the calls in flight and new calls are refused.
        self._calls = threading.Condition()
        self._in_flight = 0
        self._closed = False
        try:
            config: dict[str, str | bool | int | float | list[str]] = {}
            if memory_limit is not None:
                config["memory_limit"] = memory_limit
            self._con = duckdb.connect(self._path, config=config)
        except duckdb.Error as exc:
            raise _translate(exc, f"cannot open DuckDB store {self._path}") from exc
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def _create_schema(self) -> None:
        with self._writing() as cur:
            cur.execute(_SCHEMA)
            cur.execute(
                "INSERT INTO midika_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )
            row = cur.execute("SELECT value FROM midika_meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            found = None if row is None else row[0]
            raise StoreError(f"{self._path} has schema version {found}; this midika reads {SCHEMA_VERSION}")

    # -- writes ---------------------------------------------------------------------------------

    def write_readings(self, readings: Sequence[Reading]) -> WriteResult:
        """Store readings; one with the key of a stored reading is counted as a duplicate, not stored."""
        if not readings:
            return WriteResult(written=0, duplicates=0)
        batch = pa.table(
            {
                "trial": pa.array([r.trial for r in readings], pa.string()),
                "device": pa.array([r.device for r in readings], pa.string()),
                "measurement": pa.array([r.measurement for r in readings], pa.string()),
                "ts": _timestamps([r.ts for r in readings]),
                "value": pa.array([r.value for r in readings], pa.float64()),
                "text": pa.array([r.text for r in readings], pa.string()),
                "ingest_ts": _timestamps([r.ingest_ts for r in readings]),
                "seq": pa.array([r.seq for r in readings], pa.int64()),
                "quality": pa.array([int(r.quality) for r in readings], pa.uint8()),
            }
        )
        written = self._insert_new(batch, "readings", _READING_COLS, ("trial", "device", "measurement", "ts"))
        return WriteResult(written=written, duplicates=len(readings) - written)

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        """Store events; the same (trial, device, type, ts) is stored once."""
        if not events:
            return WriteResult(written=0, duplicates=0)
        batch = pa.table(
            {
                "trial": pa.array([e.trial for e in events], pa.string()),
                "device": pa.array([e.device for e in events], pa.string()),
                "type": pa.array([e.type for e in events], pa.string()),
                "ts": _timestamps([e.ts for e in events]),
                "ingest_ts": _timestamps([e.ingest_ts for e in events]),
                "data": pa.array([json.dumps(e.data, ensure_ascii=False) for e in events], pa.string()),
                "seq": pa.array([e.seq for e in events], pa.int64()),
            }
        )
        written = self._insert_new(batch, "events", _EVENT_COLS, ("trial", "device", "type", "ts"))
        return WriteResult(written=written, duplicates=len(events) - written)

    def write_status(self, reports: Sequence[StatusReport]) -> None:
        """Store device status reports (they also update device state)."""
        if not reports:
            return
        batch = pa.table(
            {
                "trial": pa.array([s.trial for s in reports], pa.string()),
                "device": pa.array([s.device for s in reports], pa.string()),
                "ts": _timestamps([s.ts for s in reports]),
                "ingest_ts": _timestamps([s.ingest_ts for s in reports]),
                "online": pa.array([s.online for s in reports], pa.bool_()),
                "battery": pa.array([s.battery for s in reports], pa.float64()),
                "rssi": pa.array([s.rssi for s in reports], pa.float64()),
                "firmware": pa.array([s.firmware for s in reports], pa.string()),
                "uptime_s": pa.array([s.uptime_s for s in reports], pa.float64()),
            }
        )
        with self._writing() as cur:
            cur.register("batch", batch)
            cur.execute(f"INSERT INTO status ({_STATUS_COLS}) SELECT {_STATUS_COLS} FROM batch")

    def write_quarantine(self, records: Sequence[QuarantineRecord]) -> None:
        """Keep rejected messages with their reasons; the store assigns ids (any given one is ignored)."""
        if not records:
            return
        batch = pa.table(
            {
                "topic": pa.array([q.topic for q in records], pa.string()),
                "payload": pa.array([q.payload for q in records], pa.binary()),
                "reason": pa.array([q.reason.value for q in records], pa.string()),
                "detail": pa.array([q.detail for q in records], pa.string()),
                "received_ts": _timestamps([q.received_ts for q in records]),
                "trial": pa.array([q.trial for q in records], pa.string()),
                "device": pa.array([q.device for q in records], pa.string()),
                "payload_size": pa.array([q.payload_size for q in records], pa.int64()),
            }
        )
        with self._writing() as cur:
            cur.register("batch", batch)
            cur.execute(f"INSERT INTO quarantine ({_QUARANTINE_COLS}) SELECT {_QUARANTINE_COLS} FROM batch")

    def _insert_new(self, batch: pa.Table, table: str, cols: str, key: tuple[str, ...]) -> int:
        """Insert the rows of `batch` whose key is neither stored nor earlier in the batch; count them."""
        batch = _first_of_each_key(batch, key)
        window = pc.min_max(batch["ts"])
        lo, hi = window["min"].as_py(), window["max"].as_py()
        keys = ", ".join(key)
        with self._writing() as cur:
            cur.register("batch", batch)
            row = cur.execute(
                f"""INSERT INTO {table} ({cols})
                SELECT {cols} FROM batch
                ANTI JOIN (SELECT {keys} FROM {table} WHERE ts BETWEEN ? AND ?) USING ({keys})""",
                [lo, hi],
            ).fetchone()
        return int(row[0]) if row else 0

    # -- reads ----------------------------------------------------------------------------------

    def query_readings(self, query: ReadingQuery) -> Page[Reading]:
        """Raw readings matching `query`, one page at a time."""
        sql, params = _readings_sql(query)
        rows = self._page_rows(sql, params, query.limit)
        items = [_reading(query.trial, row) for row in rows[: query.limit]]
        cursor = None
        if len(rows) > query.limit:
            cursor = _encode_cursor("r", items[-1].ts, items[-1].device, items[-1].measurement)
        return Page(items=items, next_cursor=cursor)

    def reading_table(self, query: ReadingQuery) -> TablePage:
        """The same page as `query_readings`, as an Arrow table."""
        _check_limit(query.limit)
        with self._cursor() as cur:
            table = _windowed_page(cur, query)
        cursor = None
        if table.num_rows > query.limit:
            table = table.slice(0, query.limit)
            last = table.slice(query.limit - 1, 1).to_pylist()[0]
            cursor = _encode_cursor("r", last["ts"].replace(tzinfo=UTC), last["device"], last["measurement"])
        return TablePage(_reading_schema(table), cursor)

    def reading_batches(self, query: ReadingQuery, *, rows: int) -> Iterator[pa.Table]:
        """Every reading of `query` in [start, end) in order, as tables (READING_SCHEMA) of at most
        `rows` readings; the query's limit and cursor are not used. Exports read through this.

        Keyset pages (`reading_table`) made each page a top-N query over a window grown to hold it:
        a 30-day CSV export of 2M readings in pages of 50,000 (bench/query.py) peaked ~130 MB above
        the process's resting RSS, memory DuckDB's allocator kept once a page was done. Here the
        range is read in consecutive windows of time, each one sorted query with no LIMIT, sized
        from the window before to hold about `_WINDOW_TABLES × rows` readings: the same export
        peaks ~77 MB above, ~35 MB of it DuckDB's cache of the blocks read, at the same speed.
        A window is read whole before its tables are handed out, so no cursor stays open while the
        caller writes (and `close` never waits on an export that was abandoned).
        """
        _check_limit(rows)
        if query.start is None or query.end is None:
            raise BadQuery("reading_batches needs a start and an end")
        lo, end = _naive_utc(query.start, "start"), _naive_utc(query.end, "end")
        span, target = _FIRST_SPAN, rows * _WINDOW_TABLES
        while lo < end:
            hi = end if end - lo <= span else lo + span
            window = dataclasses.replace(
                query, start=lo.replace(tzinfo=UTC), end=hi.replace(tzinfo=UTC), cursor=None
            )
            sql, params = _readings_sql(window)
            with self._cursor() as cur:
                fetched = cur.sql(sql, params=params).to_arrow_table()
            table = _reading_schema(fetched)
            for offset in range(0, table.num_rows, rows):
                yield table.slice(offset, rows)
            # Readings usually arrive at a steady rate: the next window is scaled to hold the target,
            # kept within what is left of the range (so it cannot overflow) and at least 1 µs.
            found = table.num_rows
            factor = 16.0 if found == 0 else min(16.0, max(0.25, target / found))
            lo = hi
            span = max(_TICK, min(span * factor, end - lo))

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        """Every bucket of each series with data, ordered by (measurement, device, start)."""
        return self.aggregate_grid(query).buckets()

    def aggregate_grid(self, query: AggregateQuery, *, series: Iterable[buckets.Series] = ()) -> BucketGrid:
        """Every bucket of each series with data or named in `series`, as columns.

        DuckDB computes the non-empty buckets and hands them over as numpy columns; numpy spreads
        them onto the grid. Each bucket as a Python tuple, then a `Bucket`, then filled in by
        `buckets.complete` cost more than DuckDB took to compute it; joining the grid in SQL
        instead cost a few milliseconds of planning, as much as a whole one-device aggregate.
        Having DuckDB write each bucket's JSON (one concat() of count and values per row, over this
        query) was tried for the API: a one-device week of hourly buckets came back 0.3 ms slower
        at p50, as the larger query's planning, paid on every request, cost more than Arrow's
        formatting of the numbers it saved (~0.12 ms for 336 buckets); and DuckDB's and Arrow's
        float text differ outside 1e-4 <= |v| < 1e9, so bodies would need a second path anyway.
        """
        buckets.check(query)
        if query.start >= query.end:
            return buckets.grid_of(query, [], series=series)
        where = _Where("trial = ?", query.trial)
        where.time_range("ts", query.start, query.end)
        where.any_of("device", query.devices)
        where.any_of("measurement", query.measurements)
        where.add("value IS NOT NULL")
        if query.bucket == MONTH:
            bounds = [to_us(b) for b in buckets.month_starts(query)]
            # A handful of months: a CASE over their bounds is one pass, and exact across DST changes.
            cases = " ".join(f"WHEN epoch_us(ts) < {hi} THEN {lo}" for lo, hi in itertools.pairwise(bounds))
            start_us = f"CASE {cases} END"
        else:
            width = query.bucket // timedelta(microseconds=1)
            phase = buckets.phase_us(query)
            # Floored modulo keeps buckets aligned for times before 1970 too.
            start_us = f"epoch_us(ts) - (((epoch_us(ts) - {phase}) % {width}) + {width}) % {width}"
        names = buckets.value_names(query)
        columns = [_AGGREGATE_SQL[f] for f in names if f in _AGGREGATE_SQL]
        # Nearest rank, as InfluxDB's PERCENTILE: see midika.store.buckets.
        columns += [
            f"list_sort(list(value))[greatest(1, floor(count(value) * {float(p)!r} / 100.0 + 0.5))::BIGINT]"
            for p in query.percentiles
        ]
        keys = "measurement, device" if query.per_device else "measurement"
        sql = (
            f"SELECT {keys}, {start_us} AS bucket_us, count(value) AS n"
            f"{''.join(f', {c} AS v{i}' for i, c in enumerate(columns))}"
            f" FROM readings WHERE {where.sql} GROUP BY ALL ORDER BY {keys}, bucket_us"
        )
        with self._cursor() as cur:
            # numpy, not Arrow: an Arrow result of execute() is copied once more, and cur.sql()
            # plans the query again (each ~0.5 ms, a tenth of a one-device aggregate).
            found = cur.execute(sql, where.params).fetchnumpy()
        return buckets.grid_of_rows(
            query,
            measurement=found["measurement"],
            device=found["device"] if query.per_device else None,
            start_us=found["bucket_us"],
            count=found["n"],
            values={name: found[f"v{i}"] for i, name in enumerate(names)},
            series=series,
        )

    def latest(
        self,
        *,
        trial: str,
        devices: Sequence[str] | None = None,
        measurements: Sequence[str] | None = None,
    ) -> list[Reading]:
        """The reading with the greatest event time per (device, measurement), ordered by both."""
        where = _Where("trial = ?", trial)
        where.any_of("device", devices)
        where.any_of("measurement", measurements)
        # Finding the greatest time first and then its rows costs a quarter of the CPU of arg_max
        # over every column (measured on 20M readings); the key includes ts, so one row matches.
        sql = f"""
            WITH last AS (
                SELECT device, measurement, max(ts) AS ts FROM readings WHERE {where.sql}
                GROUP BY device, measurement
            )
            SELECT device, measurement, ts, value, text, ingest_ts, seq, quality
            FROM readings SEMI JOIN last USING (device, measurement, ts)
            WHERE {where.sql} ORDER BY device, measurement
        """
        with self._cursor() as cur:
            rows = cur.execute(sql, where.params * 2).fetchall()
        return [_reading(trial, row) for row in rows]

    def query_events(self, query: EventQuery) -> Page[Event]:
        """Events matching `query`, one page at a time."""
        where = _Where("trial = ?", query.trial)
        where.any_of("device", query.devices)
        where.any_of("type", query.types)
        where.time_range("ts", query.start, query.end)
        if query.cursor is not None:
            ts, device, type_ = _decode_cursor("e", query.cursor)
            where.add("ts >= ?", ts)
            where.add("(ts, device, type) > (?, ?, ?)", ts, device, type_)
        rows = self._page_rows(
            f"SELECT device, type, ts, ingest_ts, data, seq FROM events"
            f" WHERE {where.sql} ORDER BY ts, device, type",
            where.params,
            query.limit,
        )
        items = [
            Event(
                trial=query.trial,
                device=device,
                type=type_,
                ts=ts.replace(tzinfo=UTC),
                ingest_ts=ingest_ts.replace(tzinfo=UTC),
                data=json.loads(data),
                seq=seq,
            )
            for device, type_, ts, ingest_ts, data, seq in rows[: query.limit]
        ]
        cursor = None
        if len(rows) > query.limit:
            cursor = _encode_cursor("e", items[-1].ts, items[-1].device, items[-1].type)
        return Page(items=items, next_cursor=cursor)

    def device_states(self, *, trial: str) -> list[DeviceState]:
        """The state of every device of `trial` that has sent anything, ordered by device."""
        # Computed on read rather than kept up to date on write: an upsert per batch would cost the
        # ingest a third of its speed, this costs one scan of the trial (~0.2 s for 20M readings).
        sql = """
            WITH seen AS (
                SELECT device, max(last_seen) AS last_seen FROM (
                    SELECT device, max(ingest_ts) AS last_seen FROM readings WHERE trial = $trial
                    GROUP BY device
                    UNION ALL
                    SELECT device, max(ingest_ts) FROM events WHERE trial = $trial GROUP BY device
                    UNION ALL
                    SELECT device, max(ingest_ts) FROM status WHERE trial = $trial GROUP BY device
                ) GROUP BY device
            ), last_status AS (
                SELECT device, ts, online, battery, rssi, firmware FROM status WHERE trial = $trial
                QUALIFY row_number() OVER (PARTITION BY device ORDER BY ts DESC, ingest_ts DESC) = 1
            )
            SELECT s.device, s.last_seen, l.online, l.battery, l.rssi, l.firmware, l.ts
            FROM seen s LEFT JOIN last_status l ON l.device = s.device
            ORDER BY s.device
        """
        with self._cursor() as cur:
            rows = cur.execute(sql, {"trial": trial}).fetchall()
        return [
            DeviceState(
                trial=trial,
                device=device,
                last_seen=last_seen.replace(tzinfo=UTC),
                online=online,
                battery=battery,
                rssi=rssi,
                firmware=firmware,
                status_ts=None if status_ts is None else status_ts.replace(tzinfo=UTC),
            )
            for device, last_seen, online, battery, rssi, firmware, status_ts in rows
        ]

    def reading_stats(self, query: StatsQuery) -> list[ReadingStats]:
        """Counts, flagged counts and delay percentiles per group with readings, ordered by group."""
        where = _stats_where(query)
        keys = list(dict.fromkeys(query.by))
        columns = [k if k in keys else f"NULL::VARCHAR AS {k}" for k in ("device", "measurement")]
        delay = "epoch_us(ingest_ts) - epoch_us(ts)"
        # Nearest rank, as InfluxDB's PERCENTILE (midika.store.buckets).
        percentiles = [
            f"list_sort(list({delay}))[greatest(1, floor(count(*) * {p}.0 / 100.0 + 0.5))::BIGINT]"
            for p in (50, 95)
        ]
        sql = (
            f"SELECT {', '.join(columns)}, count(*), count(*) FILTER (quality <> 0), {', '.join(percentiles)}"
            f" FROM readings WHERE {where.sql}"
            + (f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else " HAVING count(*) > 0")
        )
        with self._cursor() as cur:
            rows = cur.execute(sql, where.params).fetchall()
        return [ReadingStats(*row) for row in rows]

    def event_counts(self, query: StatsQuery) -> list[EventCount]:
        """Events per (device, type) in the window, ordered by both."""
        where = _stats_where(query)
        sql = f"SELECT device, type, count(*) FROM events WHERE {where.sql} GROUP BY ALL ORDER BY ALL"
        with self._cursor() as cur:
            rows = cur.execute(sql, where.params).fetchall()
        return [EventCount(*row) for row in rows]

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        """Quarantined messages matching `query`, newest first, with their store ids."""
        _check_limit(query.limit)
        where = _Where()
        if query.trial is not None:
            where.add("trial = ?", query.trial)
        where.any_of("reason", None if query.reasons is None else [r.value for r in query.reasons])
        where.any_of("id", query.ids)
        where.time_range("received_ts", query.start, query.end)
        sql = (
            f"SELECT id, {_QUARANTINE_COLS} FROM quarantine WHERE {where.sql}"
            " ORDER BY received_ts DESC, id DESC LIMIT ?"
        )
        with self._cursor() as cur:
            rows = cur.execute(sql, [*where.params, query.limit]).fetchall()
        return [
            QuarantineRecord(
                id=ident,
                topic=topic,
                payload=bytes(payload),
                reason=QuarantineReason(reason),
                detail=detail,
                received_ts=received_ts.replace(tzinfo=UTC),
                trial=trial,
                device=device,
                payload_size=payload_size,
            )
            for ident, topic, payload, reason, detail, received_ts, trial, device, payload_size in rows
        ]

    def delete_quarantine(self, ids: Sequence[int]) -> int:
        """Remove quarantined messages by id; how many of `ids` were found."""
        if not ids:
            return 0
        where = _Where()
        where.any_of("id", list(ids))
        with self._writing() as cur:
            deleted = cur.execute(f"DELETE FROM quarantine WHERE {where.sql} RETURNING id", where.params)
            return len(deleted.fetchall())

    def close(self) -> None:
        """Wait for calls in flight, then release the file; later calls raise StoreError."""
        with self._calls:
            if self._closed:
                return
            self._closed = True
            self._calls.wait_for(lambda: self._in_flight == 0)
        try:
            self._con.close()
        except duckdb.Error as exc:
            raise _translate(exc, f"closing {self._path}") from exc

    # -- plumbing -------------------------------------------------------------------------------

    def _page_rows(self, sql: str, params: list[Any], limit: int) -> list[tuple[Any, ...]]:
        """One more row than a page, so the caller knows whether another page follows."""
        _check_limit(limit)
        with self._cursor() as cur:
            return cur.execute(f"{sql} LIMIT ?", [*params, limit + 1]).fetchall()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # A DuckDB connection must not be shared between threads; cursors of it may.
        with self._calls:
            if self._closed:
                raise StoreError(f"the DuckDB store {self._path} is closed")
            self._in_flight += 1
        try:
            cur = self._con.cursor()
            try:
                yield cur
            finally:
                cur.close()
        except duckdb.Error as exc:
            raise _translate(exc, f"DuckDB store {self._path}") from exc
        finally:
            with self._calls:
                self._in_flight -= 1
                self._calls.notify_all()

    @contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor holding the write lock; each write is one statement, so one transaction."""
        with self._write_lock, self._cursor() as cur:
            yield cur


class _Where:
    """SQL conditions joined by AND, with their parameters; values are always bound, never pasted."""

    def __init__(self, condition: str | None = None, *params: Any) -> None:
        self._conditions: list[str] = []
        self.params: list[Any] = []
        if condition is not None:
            self.add(condition, *params)

    @property
    def sql(self) -> str:
        return " AND ".join(self._conditions) or "TRUE"

    def add(self, condition: str, *params: Any) -> None:
        self._conditions.append(condition)
        self.params.extend(params)

    def any_of(self, column: str, values: Sequence[Any] | None) -> None:
        """Keep rows whose `column` is one of `values`; None means no filter, empty means no rows."""
        if values is None:
            return
        if not values:
            self.add("FALSE")
            return
        self.add(f"{column} IN ({', '.join('?' * len(values))})", *values)

    def time_range(self, column: str, start: datetime | None, end: datetime | None) -> None:
        """Keep rows with `column` in [start, end)."""
        if start is not None:
            self.add(f"{column} >= ?", _naive_utc(start, "start"))
        if end is not None:
            self.add(f"{column} < ?", _naive_utc(end, "end"))


def _windowed_page(cur: duckdb.DuckDBPyConnection, query: ReadingQuery) -> pa.Table:
    """The first `limit + 1` rows of `query`, read from a time window just wide enough.

    A page ordered by time with only a lower bound makes DuckDB scan every row from there to the
    end of the range for its top-N: each page of a long export cost as much as the rest of the
    export (0.4-0.5 s per 50,000 readings of a 30-day range in bench/query.py, against 0.04 s
    with an upper bound). So the page is read from [from, from + span): if that window holds more
    than a page, its first rows are the page, as every later row sorts after them; if not, the
    window grows by what the rows found suggest, until it reaches the query's end.
    """
    lo = _decode_cursor("r", query.cursor)[0] if query.cursor is not None else None
    if lo is None and query.start is not None:
        lo = _naive_utc(query.start, "start")
    end = None if query.end is None else _naive_utc(query.end, "end")
    span = _FIRST_SPAN
    while True:
        until: datetime | None = None
        if lo is not None:
            try:
                until = lo + span
            except OverflowError:
                until = None
            if until is not None and end is not None and until >= end:
                until = None
        sql, params = _readings_sql(query, until=until)
        fetched = cur.sql(f"{sql} LIMIT ?", params=[*params, query.limit + 1]).to_arrow_table()
        if fetched is None:
            raise StoreError("DuckDB returned no result for a SELECT")
        table: pa.Table = fetched
        if until is None or table.num_rows > query.limit:
            return table
        # Readings usually arrive at a steady rate: aim a quarter past a page; at least double.
        grow = 16.0 if table.num_rows == 0 else (query.limit + 1) / table.num_rows * 1.25
        span *= max(2.0, grow)


def _reading_schema(table: pa.Table) -> pa.Table:
    """Rows of `_readings_sql` as READING_SCHEMA: times as UTC."""
    columns = [
        table[name].cast(field.type) if name in ("ts", "ingest_ts") else table[name]
        for name, field in zip(READING_SCHEMA.names, READING_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=READING_SCHEMA)


def _readings_sql(query: ReadingQuery, *, until: datetime | None = None) -> tuple[str, list[Any]]:
    """The ordered SELECT of a page of readings (without its LIMIT), and its parameters; `until`
    (naive UTC) bounds the times read, besides the query's own end."""
    where = _Where("trial = ?", query.trial)
    where.any_of("device", query.devices)
    where.any_of("measurement", query.measurements)
    where.time_range("ts", query.start, query.end)
    if until is not None:
        where.add("ts < ?", until)
    if query.quality == Quality.OK:
        where.add("quality = 0")
    elif query.quality is not None:
        where.add("(quality & ?) = ?", int(query.quality), int(query.quality))
    if query.cursor is not None:
        ts, device, measurement = _decode_cursor("r", query.cursor)
        where.add("ts >= ?", ts)  # lets zone maps skip earlier row groups
        where.add("(ts, device, measurement) > (?, ?, ?)", ts, device, measurement)
    sql = (
        f"SELECT device, measurement, ts, value, text, ingest_ts, seq, quality FROM readings"
        f" WHERE {where.sql} ORDER BY ts, device, measurement"
    )
    return sql, where.params


def _stats_where(query: StatsQuery) -> _Where:
    where = _Where("trial = ?", query.trial)
    where.time_range("ts", query.start, query.end)
    where.any_of("device", query.devices)
    return where


def _first_of_each_key(batch: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """`batch` without the later rows of a repeated key (Arrow's hashing: ~1 ms for 5,000 rows)."""
    keyed = batch.select(list(key)).append_column("row", pa.array(np.arange(batch.num_rows)))
    first = keyed.group_by(list(key), use_threads=False).aggregate([("row", "min")])["row_min"]
    if len(first) == batch.num_rows:
        return batch
    return batch.take(np.sort(first.to_numpy()))


def _reading(trial: str, row: tuple[Any, ...]) -> Reading:
    """A reading from a row of (device, measurement, ts, value, text, ingest_ts, seq, quality)."""
    device, measurement, ts, value, text, ingest_ts, seq, quality = row
    return Reading(
        trial=trial,
        device=device,
        measurement=measurement,
        ts=ts.replace(tzinfo=UTC),
        value=value,
        text=text,
        ingest_ts=ingest_ts.replace(tzinfo=UTC),
        seq=seq,
        quality=Quality(quality),
    )


def _timestamps(values: list[datetime]) -> pa.Array:
    # Converting as UTC and then dropping the zone keeps DuckDB's session time zone out of it.
    return pa.array(values, _US_UTC).cast(_US)


def _naive_utc(ts: datetime, name: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise BadQuery(f"{name} must be a timezone-aware datetime, got {ts.isoformat()}")
    return ts.astimezone(UTC).replace(tzinfo=None)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise BadQuery(f"limit must be at least 1, got {limit}")


def _encode_cursor(kind: str, ts: datetime, first: str, second: str) -> str:
    """The cursor of a `kind` listing after the item with key (ts, an aware time, first, second)."""
    return cursors.encode(kind, to_us(ts), first, second)


def _decode_cursor(kind: str, cursor: str) -> tuple[datetime, str, str]:
    """The key a cursor of `kind` encodes, as naive UTC time and two strings."""
    ts_us, first, second = cursors.decode(kind, cursor)
    return from_us(ts_us).replace(tzinfo=None), first, second


def _translate(exc: duckdb.Error, context: str) -> StoreError:
    """A midika error for a DuckDB one; I/O and memory trouble may pass, so they are retryable."""
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException):
        return StoreUnavailable(f"{context}: {exc}")
    return StoreError(f"{context}: {exc}")
