"""InfluxStore against a real influxd (1.6.7 behind the test-only v2 write shim).

The store contract runs unchanged; the tests below it check what is particular to InfluxDB: bounded
series cardinality, duplicate counting across a batch's time ranges, pages cut inside a crowded
timestamp, quarantine ids, and the range of times it holds (1677 to 2262). Every test gets a
database of its own on one shared server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from midika.errors import BadQuery, StoreError
from midika.models.records import Event, Quality, QuarantineReason, QuarantineRecord, Reading, StatusReport
from midika.store import cursors
from midika.store import influx_query as q
from midika.store import influx_schema as schema
from midika.store.base import EventQuery, Page, QuarantineQuery, ReadingQuery
from midika.store.influx import InfluxStore
from midika.store.influx_keys import time_ranges
from midika.timeutil import to_us
from tests.influx_server import InfluxServer
from tests.influx_v2_shim import V2WriteShim
from tests.store.contract import StoreContract

pytestmark = pytest.mark.servers

T0 = datetime(2025, 7, 1, tzinfo=UTC)
MINUTE_US = 60_000_000
FIRST = datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC)  # the first and last µs InfluxDB holds
LAST = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
US = timedelta(microseconds=1)


@pytest.fixture
def store(influx: tuple[InfluxServer, V2WriteShim], database: str) -> Iterator[InfluxStore]:
    """An InfluxStore writing through the shim into a fresh database."""
    _, shim = influx
    influx_store = InfluxStore(url=shim.url, database=database, retention_policy="autogen")
    yield influx_store
    influx_store.close()


class TestInfluxStore(StoreContract):
    """The store contract, unchanged, against InfluxDB."""


def reading(device: str, measurement: str, ts: datetime, value: float, **extra: Any) -> Reading:
    """A reading of trial t1 ingested at T0."""
    return Reading("t1", device, measurement, ts, value, ingest_ts=T0, **extra)


def show(server: InfluxServer, statement: str, database: str) -> list[list[Any]]:
    """The value rows of a SHOW statement, over all series."""
    body = server.query(statement, database=database)
    return [row for series in body["results"][0].get("series", []) for row in series["values"]]


def test_series_are_bounded_by_devices_and_measurements_not_by_values(
    store: InfluxStore, influx: tuple[InfluxServer, V2WriteShim], database: str
) -> None:
    server, _ = influx
    readings = [
        reading(f"dev-{d}", m, T0 + timedelta(seconds=i), i * 1.5, seq=i, quality=Quality(i % 4))
        for d in range(3)
        for m in ("temp", "salinity")
        for i in range(50)
    ]
    store.write_readings(readings)
    store.write_events(
        [Event("t1", "dev-0", "RIP", T0 + timedelta(seconds=i), T0, {"n": i}) for i in range(20)]
    )
    # Quarantined messages name whatever trial, device and topic the sender chose: none may become a tag.
    store.write_quarantine(
        [
            QuarantineRecord(
                f"x/{i}", b"?", QuarantineReason.UNKNOWN_TRIAL, "no such trial", T0, trial=f"evil-{i}"
            )
            for i in range(100)
        ]
    )
    series = {row[0] for row in show(server, "SHOW SERIES", database)}
    assert series == {
        *(
            f"readings,device=dev-{d},measurement={m},trial=t1"
            for d in range(3)
            for m in ("temp", "salinity")
        ),
        *(f"device_seen,device=dev-{d},trial=t1" for d in range(3)),
        "events,device=dev-0,trial=t1,type=RIP",
        "quarantine,reason=unknown_trial",
    }
    fields = dict((name, kind) for name, kind in show(server, 'SHOW FIELD KEYS FROM "readings"', database))
    assert fields == {
        "value": "float",
        "quality": "integer",
        "seq": "integer",
        "ingest_ts": "integer",
        "delay_us": "integer",  # ingest_ts - time: what latency percentiles are computed over
    }
    assert len(store.query_quarantine(QuarantineQuery(trial="evil-7"))) == 1


def test_duplicates_are_counted_across_a_batch_spread_over_days(store: InfluxStore) -> None:
    days = [T0 + timedelta(days=d, seconds=d) for d in range(5)]
    first = [reading("dev-1", "temp", ts, 1.0) for ts in days[::2]]  # days 0, 2, 4
    assert store.write_readings(first).written == 3
    mixed = [reading("dev-1", "temp", ts, 2.0) for ts in days]  # 0, 2, 4 stored; 1, 3 new
    mixed.append(reading("dev-1", "temp", days[1], 3.0))  # a second copy inside the batch
    result = store.write_readings(mixed)
    assert (result.written, result.duplicates) == (2, 4)
    stored = store.query_readings(ReadingQuery(trial="t1")).items
    # The first copy of every key is kept; later ones neither overwrite it nor add a row.
    assert [(r.ts, r.value) for r in stored] == [
        (ts, 1.0 if i % 2 == 0 else 2.0) for i, ts in enumerate(days)
    ]


def test_time_ranges_split_at_the_widest_gaps_over_a_minute() -> None:
    assert time_ranges([5]) == [(5, 5)]
    assert time_ranges([0, 10, MINUTE_US, 3 * MINUTE_US]) == [(0, MINUTE_US), (3 * MINUTE_US, 3 * MINUTE_US)]
    day = 1440 * MINUTE_US
    times = [i * 2 * MINUTE_US + j for i in range(40) for j in (0, 1)] + [day, day + 5]
    ranges = time_ranges(times)
    assert len(ranges) == 32
    assert ranges[-1] == (day, day + 5)  # the widest gap is always a split
    assert all(hi < lo for (_, hi), (lo, _) in itertools.pairwise(ranges))
    assert all(any(lo <= t <= hi for lo, hi in ranges) for t in times)


@pytest.mark.parametrize("limit", [1, 7, 45, 120, 121, 500])
def test_pages_cut_inside_a_crowded_timestamp_keep_the_key_order(store: InfluxStore, limit: int) -> None:
    # 40 devices × 3 measurements at one instant: more points than a page, in no useful series order.
    devices = [f"dev-{d:02d}" for d in (37, 3, 12, 0, *range(4, 12), *range(13, 37), 1, 2, 38, 39)]
    readings = [reading(d, m, T0, 1.0) for d in devices for m in ("c", "a", "b")]
    readings += [reading(d, "a", T0 + timedelta(microseconds=1), 2.0) for d in devices[:5]]
    store.write_readings(readings)
    seen: list[tuple[datetime, str, str]] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = store.query_readings(ReadingQuery(trial="t1", limit=limit, cursor=cursor))
        pages += 1
        assert 0 < len(page.items) <= limit
        seen += [(r.ts, r.device, r.measurement) for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted((r.ts, r.device, r.measurement) for r in readings)
    assert pages == -(-len(readings) // limit)  # no empty last page


def test_quarantined_messages_received_in_the_same_microsecond_are_all_kept(store: InfluxStore) -> None:
    def record(i: int) -> QuarantineRecord:
        return QuarantineRecord("t", bytes([i]), QuarantineReason.UNPARSEABLE, f"#{i}", T0, payload_size=1)

    store.write_quarantine([record(0), record(1), record(2)])
    store.write_quarantine([record(3), record(4)])
    kept = store.query_quarantine(QuarantineQuery())
    assert [r.id for r in kept] == [5, 4, 3, 2, 1]
    assert [r.payload for r in kept] == [bytes([i]) for i in (4, 3, 2, 1, 0)]
    assert all(r.received_ts == T0 for r in kept)
    assert [r.detail for r in store.query_quarantine(QuarantineQuery(ids=[2, 4]))] == ["#3", "#1"]


def test_event_data_and_text_survive_line_protocol_escaping(store: InfluxStore) -> None:
    data = {"note": 'say "hi"\\ then\nbye, = ok', "nested": {"list": [1, 2.5, None, True]}, "名": "値"}
    store.write_events([Event("t1", "dev-1", "VESSEL", T0, T0, data, seq=7)])
    store.write_readings([Reading("t1", "dev-1", "label", T0, None, T0, text='a "b" \\c\nd')])
    [event] = store.query_events(EventQuery(trial="t1")).items
    assert event.data == data and event.seq == 7
    [text] = store.query_readings(ReadingQuery(trial="t1")).items
    assert text.text == 'a "b" \\c\nd' and text.value is None


def test_time_conditions_stay_inside_the_times_influxdb_holds() -> None:
    year_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=9)))  # before year 1 in UTC
    year_9999 = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-9)))
    assert q.time_range(year_1, FIRST - US) is None
    assert q.time_range(datetime(1600, 1, 1, tzinfo=UTC), datetime(1600, 1, 3, tzinfo=UTC)) is None
    assert q.time_range(LAST + US, year_9999) is None
    assert q.time_range(T0, T0) is None
    # No bound before the first nanosecond (InfluxDB refuses even that one as a lower bound), and the
    # last nanosecond, inclusive, for an end after it.
    assert q.time_range(year_1, year_9999) == ["time <= '2262-04-11T23:47:16.854775806Z'"]
    assert q.time_range(None, LAST + US) == ["time <= '2262-04-11T23:47:16.854775806Z'"]
    assert q.time_range(FIRST, LAST) == [
        "time >= '1677-09-21T00:12:43.145225Z'",
        "time < '2262-04-11T23:47:16.854775Z'",
    ]
    assert q.time_range(year_1, FIRST + US) == ["time < '1677-09-21T00:12:43.145226Z'"]
    assert (to_us(FIRST), to_us(LAST)) == (schema.FIRST_US, schema.LAST_US)
    assert q.at(FIRST - US) is None
    assert q.at(LAST + US) is None
    assert q.at(LAST) == "time = '2262-04-11T23:47:16.854775Z'"


def test_a_cursor_beyond_the_times_influxdb_holds_pages_on_without_error(store: InfluxStore) -> None:
    readings = [reading("dev-1", "temp", T0 + timedelta(seconds=i), float(i)) for i in range(3)]
    store.write_readings(readings)

    def cursor(ts: datetime) -> str:
        return cursors.encode(schema.READINGS, to_us(ts), "", "")

    before_all = store.query_readings(ReadingQuery(trial="t1", cursor=cursor(datetime(1, 1, 1, tzinfo=UTC))))
    assert before_all == Page(readings, None)
    past_all = ReadingQuery(trial="t1", cursor=cursor(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)))
    assert store.query_readings(past_all) == Page([], None)
    assert store.query_readings(ReadingQuery(trial="t1", cursor=cursor(LAST))) == Page([], None)
    with pytest.raises(BadQuery, match="cursor: time out of range"):
        store.query_readings(ReadingQuery(trial="t1", cursor=cursors.encode(schema.READINGS, 2**62, "", "")))


def test_a_record_outside_the_times_influxdb_holds_is_refused_before_its_batch_is_written(
    store: InfluxStore,
) -> None:
    early, late = FIRST - US, datetime(2300, 1, 1, tzinfo=UTC)
    with pytest.raises(StoreError, match="outside the times InfluxDB can store"):
        store.write_readings([reading("dev-1", "temp", T0, 1.0), reading("dev-2", "temp", early, 2.0)])
    with pytest.raises(StoreError, match="outside the times InfluxDB can store"):
        store.write_events(
            [Event("t1", "dev-1", "RIP", T0, T0, {}), Event("t1", "dev-2", "RIP", late, T0, {})]
        )
    with pytest.raises(StoreError, match="outside the times InfluxDB can store"):
        store.write_status([StatusReport("t1", "dev-1", T0, T0), StatusReport("t1", "dev-2", early, T0)])

    assert store.query_readings(ReadingQuery(trial="t1")).items == []
    assert store.query_events(EventQuery(trial="t1")).items == []
    assert store.device_states(trial="t1") == []
