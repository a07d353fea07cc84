"""The embedded DuckDB store: the shared contract, plus what only a file-backed store can get wrong."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from midika.errors import BadQuery, StoreError
from midika.models.records import Quality, QuarantineReason, Reading, StatusReport
from midika.store.base import (
    READING_SCHEMA,
    AggregateQuery,
    EventQuery,
    QuarantineQuery,
    ReadingQuery,
    WriteResult,
)
from midika.store.duckdb import DuckDBStore
from tests.store.contract import StoreContract, assert_same_buckets, read_all, read_all_events
from tests.store.samples import (
    T0,
    TRIAL,
    at,
    event,
    expected_buckets,
    expected_readings,
    quarantined,
    reading,
    sample_events,
    sample_readings,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    """A fresh store in a file of its own."""
    opened = DuckDBStore(path=tmp_path / "store.duckdb")
    yield opened
    opened.close()


class TestDuckDBStore(StoreContract):
    """The store contract, run against a DuckDB file."""


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "kept.duckdb"
    readings, events = sample_readings(), sample_events()
    status = StatusReport(trial=TRIAL, device="buoy-1", ts=at(9), ingest_ts=at(10), online=True, battery=3.7)
    first = DuckDBStore(path=path)
    first.write_readings(readings)
    first.write_events(events)
    first.write_status([status])
    first.write_quarantine([quarantined(QuarantineReason.UNPARSEABLE, received=at(1), payload=b"\x00\xff")])
    states = first.device_states(trial=TRIAL)
    first.close()

    again = DuckDBStore(path=path)
    try:
        assert read_all(again, ReadingQuery(trial=TRIAL, limit=500)) == expected_readings(
            readings, ReadingQuery(trial=TRIAL)
        )
        assert len(read_all_events(again, EventQuery(trial=TRIAL))) == len(events)
        assert again.device_states(trial=TRIAL) == states
        assert again.write_readings(readings[:100]) == WriteResult(written=0, duplicates=100)
        # Ids keep counting after a restart, so an id never names two messages.
        again.write_quarantine([quarantined(QuarantineReason.BAD_TOPIC, received=at(2))])
        ids = [q.id for q in again.query_quarantine(QuarantineQuery())]
        assert len(ids) == 2
        assert len(set(ids)) == 2
    finally:
        again.close()


def test_an_in_memory_store_works(tmp_path: Path) -> None:
    memory = DuckDBStore(path=":memory:")
    try:
        assert memory.write_readings([reading(ts=at(1)), reading(ts=at(1))]) == WriteResult(1, 1)
        assert len(memory.latest(trial=TRIAL)) == 1
    finally:
        memory.close()
    assert not list(tmp_path.iterdir()), "':memory:' must not create a file"


def test_a_closed_store_raises_store_error(store: DuckDBStore) -> None:
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.query_readings(ReadingQuery(trial=TRIAL))
    with pytest.raises(StoreError, match="closed"):
        store.write_readings([reading(ts=at(1))])


def test_close_waits_for_calls_in_flight(store: DuckDBStore) -> None:
    store.write_readings(sample_readings())
    outcomes: list[str] = []
    started = threading.Event()

    def keep_reading() -> None:
        while True:
            try:
                store.aggregate(
                    AggregateQuery(trial=TRIAL, start=T0, end=at(7200), bucket=timedelta(seconds=1))
                )
            except StoreError as exc:
                outcomes.append(str(exc))
                return
            except BaseException as exc:
                outcomes.append(f"unexpected: {exc!r}")
                return
            outcomes.append("ok")
            started.set()

    readers = [threading.Thread(target=keep_reading) for _ in range(3)]
    for reader in readers:
        reader.start()
    assert started.wait(timeout=30)

    store.close()

    for reader in readers:
        reader.join(timeout=30)
    failures = [o for o in outcomes if o != "ok"]
    assert len(failures) == len(readers)
    assert all("is closed" in o for o in failures), failures


def test_cursors_are_url_safe_and_belong_to_their_listing(store: DuckDBStore) -> None:
    store.write_readings([reading(device=f"buoy {i}/ä", ts=at(i)) for i in range(3)])
    store.write_events([event(ts=at(i)) for i in range(3)])
    reading_cursor = store.query_readings(ReadingQuery(trial=TRIAL, limit=1)).next_cursor
    event_cursor = store.query_events(EventQuery(trial=TRIAL, limit=1)).next_cursor
    assert reading_cursor is not None
    assert event_cursor is not None

    assert re.fullmatch(r"[A-Za-z0-9_-]+", reading_cursor)
    with pytest.raises(BadQuery, match="cursor"):
        store.query_events(EventQuery(trial=TRIAL, cursor=reading_cursor))
    with pytest.raises(BadQuery, match="cursor"):
        store.query_readings(ReadingQuery(trial=TRIAL, cursor=event_cursor))


def test_results_do_not_depend_on_the_session_time_zone(store: DuckDBStore, tmp_path: Path) -> None:
    readings = sample_readings()
    # Another connection to the same database changes the zone for every new connection of it.
    other = duckdb.connect(str(tmp_path / "store.duckdb"))
    other.execute("SET GLOBAL TimeZone = 'Asia/Tokyo'")
    try:
        store.write_readings(readings)
        query = ReadingQuery(trial=TRIAL, start=at(3600), end=at(5400), limit=10_000)
        assert store.query_readings(query).items == expected_readings(readings, query)
        buckets = AggregateQuery(trial=TRIAL, start=T0, end=at(7200), bucket=timedelta(days=1))
        assert [b.start for b in store.aggregate(buckets)] == [
            b.start for b in expected_buckets(readings, buckets)
        ]
    finally:
        other.close()


def test_a_file_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    DuckDBStore(path=path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE midika_meta SET value = '0' WHERE key = 'schema_version'")
    con.close()

    with pytest.raises(StoreError, match="schema version 0"):
        DuckDBStore(path=path)


def test_an_unopenable_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        DuckDBStore(path=tmp_path / "missing-folder" / "store.duckdb")


def test_the_memory_limit_is_duckdbs(tmp_path: Path) -> None:
    limited = DuckDBStore(path=tmp_path / "limited.duckdb", memory_limit="64MB")
    try:
        with limited._cursor() as cur:
            row = cur.execute("SELECT current_setting('memory_limit')").fetchone()
        assert row is not None and row[0] in ("64.0 MB", "61.0 MiB")
        assert limited.write_readings([reading(ts=at(1))]) == WriteResult(1, 0)
    finally:
        limited.close()
    with pytest.raises(StoreError):
        DuckDBStore(path=tmp_path / "bad.duckdb", memory_limit="a lot")


@pytest.mark.parametrize("limit", [1, 7, 50, 1000])
def test_reading_tables_page_through_gaps_and_bursts(store: DuckDBStore, limit: int) -> None:
    # Pages are read from growing time windows: a burst inside the first window, a gap of a year,
    # readings sharing one instant, and one near the end of the range must all come out once, in order.
    times = (
        [at(0.5 * i) for i in range(120)] + [at(365 * 86400)] * 1 + [at(400 * 86400 + i) for i in range(30)]
    )
    readings = [reading(ts=t) for t in times]
    readings += [reading(device=f"d-{i:02d}", ts=at(500 * 86400)) for i in range(40)]
    readings.append(reading(ts=at(999 * 86400)))
    assert store.write_readings(readings).written == len(readings)
    query = ReadingQuery(trial=TRIAL, start=at(0), end=at(1000 * 86400), limit=limit)
    keys: list[tuple[object, ...]] = []
    cursor = None
    while True:
        page = store.reading_table(dataclasses.replace(query, cursor=cursor))
        keys += list(zip(page.table["ts"].to_pylist(), page.table["device"].to_pylist(), strict=True))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert keys == sorted((r.ts, r.device) for r in readings)
    unbounded = ReadingQuery(trial=TRIAL, start=None, end=None, limit=limit)
    assert store.reading_table(unbounded).table.num_rows == min(limit, len(readings))


@pytest.mark.parametrize("rows", [1, 7, 50, 1000])
def test_reading_batches_read_each_reading_once_in_order(store: DuckDBStore, rows: int) -> None:
    # Windows are sized from the one before: a burst, a gap of a year, 40 readings sharing one
    # instant and one just before the end must all come out once, in order, `rows` at most a table.
    times = [at(0.5 * i) for i in range(120)] + [at(365 * 86400)] + [at(400 * 86400 + i) for i in range(30)]
    readings = [reading(ts=t) for t in times]
    readings += [reading(device=f"d-{i:02d}", ts=at(500 * 86400)) for i in range(40)]
    readings.append(reading(ts=at(1000 * 86400 - 1e-6)))
    assert store.write_readings(readings).written == len(readings)
    query = ReadingQuery(trial=TRIAL, start=at(0), end=at(1000 * 86400))
    tables = list(store.reading_batches(query, rows=rows))
    assert all(0 < t.num_rows <= rows and t.schema == READING_SCHEMA for t in tables)
    keys = [key for t in tables for key in zip(t["ts"].to_pylist(), t["device"].to_pylist(), strict=True)]
    assert keys == sorted((r.ts, r.device) for r in readings)


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"devices": ["buoy-2"], "measurements": ["water_temp"]},
        {"quality": Quality.OK},
        {"quality": Quality.OUT_OF_RANGE, "start": at(1800), "end": at(5000.5)},
    ],
)
def test_reading_batches_hold_what_pages_hold(store: DuckDBStore, filters: dict[str, Any]) -> None:
    readings = sample_readings()
    assert store.write_readings(readings).written == len(readings)
    query = ReadingQuery(trial=TRIAL, **{"start": at(-60), "end": at(7300), **filters})
    got = [
        Reading(trial=TRIAL, **{**row, "quality": Quality(row["quality"])})
        for table in store.reading_batches(query, rows=17)
        for row in table.to_pylist()
    ]
    assert got == expected_readings(readings, query)
    assert got


def test_reading_batches_need_a_range(store: DuckDBStore) -> None:
    with pytest.raises(BadQuery):
        next(store.reading_batches(ReadingQuery(trial=TRIAL, start=at(0)), rows=10))
    with pytest.raises(BadQuery):
        next(store.reading_batches(ReadingQuery(trial=TRIAL, start=at(0), end=at(1)), rows=0))


@pytest.mark.parametrize(
    ("devices", "dense"),
    [(["buoy-1"], True), (["buoy-1", "buoy-3"], True), (["buoy-2"], False), (None, False)],
    ids=["one device", "two devices", "a silent half hour", "all devices"],
)
def test_dense_and_sparse_grids_hold_every_bucket(
    store: DuckDBStore, devices: list[str] | None, dense: bool
) -> None:
    # A grid whose every bucket has readings is taken from the rows as they are; one with empty
    # buckets is spread cell by cell. Both must hold what the readings say, bucket for bucket.
    readings = sample_readings()
    assert store.write_readings(readings).written == len(readings)
    query = AggregateQuery(
        trial=TRIAL, start=T0, end=T0 + timedelta(hours=2), bucket=timedelta(minutes=10), devices=devices
    )
    grid = store.aggregate_grid(query)
    assert bool(np.all(grid.count > 0)) is dense
    assert_same_buckets(grid.buckets(), expected_buckets(readings, query))
