"""The contract every store implements, as tests: subclass `StoreContract` and provide a `store` fixture.

The class name does not start with "Test", so pytest collects it only through its subclasses, e.g.
`class TestDuckDBStore(StoreContract)`. Nothing here knows which store it runs against; times are
compared at the microsecond, the precision every store must keep.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from midika.errors import BadQuery
from midika.models.records import (
    DeviceState,
    Event,
    Quality,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)
from midika.store import buckets
from midika.store.base import (
    AGGREGATE_FNS,
    MONTH,
    READING_SCHEMA,
    AggregateQuery,
    Bucket,
    EventCount,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    StatsKey,
    StatsQuery,
    Store,
    WriteResult,
)
from tests.store.samples import (
    DEVICES,
    JST,
    NUMERIC,
    OTHER_TRIAL,
    T0,
    TEXT,
    TRIAL,
    at,
    event,
    event_matches,
    expected_buckets,
    expected_latest,
    expected_readings,
    expected_stats,
    quarantined,
    reading,
    reading_order,
    sample_events,
    sample_readings,
    shuffled_batches,
)

END = T0 + timedelta(hours=3)

# The first and last microsecond every store holds: InfluxDB's, whose times are int64 nanoseconds.
FIRST_TIME = datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC)
LAST_TIME = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# Windows no store can hold a record in, and windows reaching from beyond one end into the times held.
BEYOND = [
    (YEAR_1, datetime(1, 1, 2, tzinfo=UTC)),
    (datetime(1600, 1, 1, tzinfo=UTC), datetime(1600, 1, 3, tzinfo=UTC)),
    (FIRST_TIME - timedelta(days=1), FIRST_TIME),
    (LAST_TIME + timedelta(microseconds=1), datetime(2262, 4, 13, tzinfo=UTC)),
    (datetime(9999, 12, 30, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
]
ACROSS = [
    (None, None),
    (YEAR_1, YEAR_9999),
    (datetime(1600, 1, 1, tzinfo=UTC), FIRST_TIME + timedelta(days=1)),
    (LAST_TIME - timedelta(days=1), YEAR_9999),
    (FIRST_TIME, LAST_TIME),
    (FIRST_TIME + timedelta(microseconds=1), LAST_TIME + timedelta(microseconds=1)),
]


def is_utc(ts: datetime | None) -> bool:
    """Whether `ts` is a timezone-aware datetime in UTC."""
    return ts is not None and ts.tzinfo is not None and ts.utcoffset() == timedelta(0)


def read_all(store: Store, query: ReadingQuery) -> list[Reading]:
    """Every page of `query`, checking that only the last page lacks a cursor and no page is short."""
    items: list[Reading] = []
    cursor: str | None = None
    for _ in range(100_000):
        page = store.query_readings(dataclasses.replace(query, cursor=cursor))
        items.extend(page.items)
        if page.next_cursor is None:
            assert len(page.items) <= query.limit
            return items
        assert len(page.items) == query.limit, "a page followed by another must be full"
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


def read_all_events(store: Store, query: EventQuery) -> list[Event]:
    """Every page of an event query."""
    items: list[Event] = []
    cursor: str | None = None
    for _ in range(100_000):
        page = store.query_events(dataclasses.replace(query, cursor=cursor))
        items.extend(page.items)
        if page.next_cursor is None:
            assert len(page.items) <= query.limit
            return items
        assert len(page.items) == query.limit, "a page followed by another must be full"
        cursor = page.next_cursor
    raise AssertionError("pagination never ended")


def write_sample(store: Store) -> list[Reading]:
    """Store the sample readings of two trials in shuffled batches; return them."""
    readings = sample_readings() + sample_readings(trial=OTHER_TRIAL, seed=8)
    for batch in shuffled_batches(readings, size=137):
        assert store.write_readings(batch) == WriteResult(written=len(batch), duplicates=0)
    return readings


def event_order(e: Event) -> tuple[datetime, str, str]:
    return (e.ts, e.device, e.type)


def write_edges(store: Store) -> tuple[list[Reading], list[Event]]:
    """Store readings and events at and near the first and last times every store holds; return them.

    Each arrives the moment it happened, so the times a store records them as seen are held too.
    """
    times = [
        FIRST_TIME,
        FIRST_TIME + timedelta(hours=1, minutes=17),
        FIRST_TIME + timedelta(days=1, hours=5),
        LAST_TIME - timedelta(days=1, hours=20),
        LAST_TIME - timedelta(hours=1, minutes=17),
        LAST_TIME,
    ]
    readings = [
        reading(device, ts=ts, value=float(10 * i + d), ingest_delay_s=0)
        for i, ts in enumerate(times)
        for d, device in enumerate(DEVICES[:2])
    ]
    events = [
        dataclasses.replace(event(device, ts=ts), ingest_ts=ts) for ts in times for device in DEVICES[:2]
    ]
    assert store.write_readings(readings) == WriteResult(written=len(readings), duplicates=0)
    assert store.write_events(events) == WriteResult(written=len(events), duplicates=0)
    return readings, events


def time_id(value: object) -> str:
    """A test id part: a time in ISO form, "open" for an open bound, anything else as str()."""
    if value is None:
        return "open"
    return value.isoformat() if isinstance(value, datetime) else str(value)


_SUMS = ("mean", "sum")  # may differ in the last bits: stores add up in their own order


def assert_same_buckets(got: list[Bucket], want: list[Bucket]) -> None:
    """Equal buckets, every value exact but means and sums, which are equal to 1e-12."""

    def exact(b: Bucket) -> tuple[object, ...]:
        return (
            b.measurement,
            b.device,
            b.start,
            b.count,
            {k: v for k, v in b.values.items() if k not in _SUMS},
        )

    assert [exact(b) for b in got] == [exact(b) for b in want]
    for name in _SUMS:
        pairs = [(g.values.get(name), w.values.get(name)) for g, w in zip(got, want, strict=True)]
        assert [g is None for g, _ in pairs] == [w is None for _, w in pairs], name
        numbers = [(g, w) for g, w in pairs if g is not None and w is not None]
        assert [g for g, _ in numbers] == pytest.approx([w for _, w in numbers], rel=1e-12), name


class StoreContract:
    """Behaviour every `Store` shares; subclasses provide a fresh, empty `store` fixture."""

    # -- readings: writing ----------------------------------------------------------------------

    def test_readings_round_trip_with_every_field(self, store: Store) -> None:
        written = [
            reading("buoy-1", "water_temp", ts=at(0.000001), value=-1.5, seq=2**40),
            reading("buoy-1", "sea_state", ts=at(1), value=None, text="荒れ — rough", seq=None),
            reading(
                "buoy-2", "water_temp", ts=at(1).astimezone(JST), value=0.0, quality=Quality.OUT_OF_RANGE
            ),
            reading("buoy-2", "wave_height", ts=at(2.5), value=1e-300, quality=Quality(7), seq=0),
        ]
        assert store.write_readings(written) == WriteResult(written=4, duplicates=0)

        got = store.query_readings(ReadingQuery(trial=TRIAL)).items

        assert got == sorted(written, key=reading_order)
        assert all(is_utc(r.ts) and is_utc(r.ingest_ts) for r in got)
        assert all(isinstance(r.quality, Quality) for r in got)

    def test_empty_write_does_nothing(self, store: Store) -> None:
        assert store.write_readings([]) == WriteResult(written=0, duplicates=0)
        assert store.write_events([]) == WriteResult(written=0, duplicates=0)
        store.write_status([])
        store.write_quarantine([])
        assert store.query_readings(ReadingQuery(trial=TRIAL)).items == []

    def test_duplicates_across_batches_are_counted_and_not_stored(self, store: Store) -> None:
        first = [reading(d, "water_temp", ts=at(i), value=float(i)) for d in DEVICES for i in range(10)]
        again = [dataclasses.replace(r, value=-1.0, seq=99) for r in first[::2]]
        new = [reading(d, "water_temp", ts=at(100 + i)) for d in DEVICES for i in range(4)]

        assert store.write_readings(first) == WriteResult(written=len(first), duplicates=0)
        assert store.write_readings(again + new) == WriteResult(written=len(new), duplicates=len(again))

        got = read_all(store, ReadingQuery(trial=TRIAL, limit=1000))
        assert got == sorted(first + new, key=reading_order), "the first stored reading of a key stays"

    def test_duplicates_within_a_batch_keep_the_first(self, store: Store) -> None:
        a = reading("buoy-1", ts=at(5), value=1.0)
        b = reading("buoy-2", ts=at(5), value=2.0)
        batch = [a, dataclasses.replace(a, value=9.0), b, dataclasses.replace(a, value=8.0), b]

        assert store.write_readings(batch) == WriteResult(written=2, duplicates=3)
        assert store.query_readings(ReadingQuery(trial=TRIAL)).items == [a, b]

    def test_the_same_instant_in_another_zone_is_a_duplicate(self, store: Store) -> None:
        utc = reading(ts=at(60))
        jst = dataclasses.replace(utc, ts=utc.ts.astimezone(JST), value=3.0)

        assert store.write_readings([utc]) == WriteResult(written=1, duplicates=0)
        assert store.write_readings([jst]) == WriteResult(written=0, duplicates=1)

    def test_every_part_of_the_key_distinguishes_readings(self, store: Store) -> None:
        base = reading("buoy-1", "water_temp", ts=at(7))
        variants = [
            base,
            dataclasses.replace(base, trial=OTHER_TRIAL),
            dataclasses.replace(base, device="buoy-2"),
            dataclasses.replace(base, measurement="wave_height"),
            dataclasses.replace(base, ts=base.ts + timedelta(microseconds=1)),
        ]
        assert store.write_readings(variants) == WriteResult(written=5, duplicates=0)
        assert store.write_readings(variants) == WriteResult(written=0, duplicates=5)

    # -- readings: querying ---------------------------------------------------------------------

    def test_readings_come_ordered_by_time_device_measurement(self, store: Store) -> None:
        readings = write_sample(store)

        got = store.query_readings(ReadingQuery(trial=TRIAL, limit=100_000))

        assert got.next_cursor is None
        assert got.items == expected_readings(readings, ReadingQuery(trial=TRIAL))
        assert len({r.ts for r in got.items}) < len(got.items), "the sample must have ties in time"

    @pytest.mark.parametrize(
        "filters",
        [
            {"devices": ["buoy-2"]},
            {"devices": ["buoy-1", "pier-cam"], "measurements": ["wave_height", TEXT]},
            {"measurements": ["salinity"]},
            {"devices": []},
            {"devices": ["nobody"]},
            {"start": at(1800)},
            {"end": at(1800)},
            {"start": at(600), "end": at(1200)},
            {"start": at(1200), "end": at(600)},
            {"start": (T0 + timedelta(hours=1)).astimezone(JST), "end": T0 + timedelta(hours=2)},
            {"quality": Quality.OK},
            {"quality": Quality.OUT_OF_RANGE},
            {"quality": Quality.OUT_OF_RANGE | Quality.CLOCK_SUSPECT},
            {"quality": Quality.CLOCK_SUSPECT, "devices": ["buoy-1"], "start": at(3000)},
        ],
        ids=repr,
    )
    def test_reading_filters(self, store: Store, filters: dict[str, object]) -> None:
        readings = write_sample(store)
        query = ReadingQuery(trial=TRIAL, limit=100_000, **filters)  # type: ignore[arg-type]

        got = store.query_readings(query).items

        assert got == expected_readings(readings, query)

    def test_start_is_inclusive_and_end_exclusive(self, store: Store) -> None:
        readings = sorted(write_sample(store), key=reading_order)
        mine = [r for r in readings if r.trial == TRIAL]
        start, end = mine[100].ts, mine[200].ts

        got = store.query_readings(ReadingQuery(trial=TRIAL, start=start, end=end, limit=100_000)).items

        assert got[0].ts == start
        assert all(r.ts < end for r in got)
        assert got == [r for r in mine if start <= r.ts < end]

    def test_other_trials_are_separate(self, store: Store) -> None:
        readings = write_sample(store)

        got = read_all(store, ReadingQuery(trial=OTHER_TRIAL, limit=500))

        assert got == expected_readings(readings, ReadingQuery(trial=OTHER_TRIAL))
        assert store.query_readings(ReadingQuery(trial="nowhere")).items == []

    @pytest.mark.parametrize("limit", [1, 7, 250, 1000])
    def test_pages_visit_every_reading_once(self, store: Store, limit: int) -> None:
        readings = write_sample(store)
        query = ReadingQuery(trial=TRIAL, limit=limit)

        got = read_all(store, query)

        assert got == expected_readings(readings, query)

    def test_pages_keep_their_filters(self, store: Store) -> None:
        readings = write_sample(store)
        query = ReadingQuery(
            trial=TRIAL, devices=["buoy-1", "buoy-2"], measurements=list(NUMERIC[:2]), end=at(4000), limit=9
        )

        assert read_all(store, query) == expected_readings(readings, query)

    def test_a_full_last_page_has_no_cursor(self, store: Store) -> None:
        readings = [reading(ts=at(i)) for i in range(10)]
        store.write_readings(readings)

        first = store.query_readings(ReadingQuery(trial=TRIAL, limit=5))
        assert first.next_cursor is not None
        last = store.query_readings(ReadingQuery(trial=TRIAL, limit=5, cursor=first.next_cursor))

        assert first.items + last.items == readings
        assert last.next_cursor is None

    def test_pages_stay_exact_while_readings_arrive(self, store: Store) -> None:
        base = [r for r in sample_readings() if r.measurement != TEXT]
        store.write_readings(base)
        visited: list[Reading] = []
        behind: list[Reading] = []
        ahead: list[Reading] = []
        cursor: str | None = None
        for step in range(10_000):
            page = store.query_readings(ReadingQuery(trial=TRIAL, limit=40, cursor=cursor))
            visited.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            last = page.items[-1]
            # Between pages: readings before the cursor, right after it, after everything, and a
            # redelivery of one already visited.
            new_behind = reading("buoy-9", f"behind_{step}", ts=last.ts - timedelta(microseconds=1))
            new_ahead = [
                dataclasses.replace(last, measurement="zz_after_cursor", value=float(step)),
                reading("buoy-9", ts=END + timedelta(seconds=step), value=float(step)),
            ]
            redelivery = dataclasses.replace(page.items[0], value=-99.0)
            result = store.write_readings([new_behind, *new_ahead, redelivery])
            assert result == WriteResult(written=3, duplicates=1)
            behind.append(new_behind)
            ahead.extend(new_ahead)

        assert len(ahead) > 20, "the test should have written between many pages"
        keys = [reading_order(r) for r in visited]
        assert keys == sorted(set(keys)), "pages must not repeat or reorder readings"
        counts = Counter(visited)
        assert all(counts[r] == 1 for r in base), "every reading stored before paging is visited once"
        assert all(counts[r] == 1 for r in ahead), "readings written ahead of the cursor are visited"
        assert not any(r in counts for r in behind), "readings written behind the cursor are not"

    @pytest.mark.parametrize("limit", [97, 100_000])
    def test_reading_tables_page_like_readings(self, store: Store, limit: int) -> None:
        readings = write_sample(store)
        query = ReadingQuery(trial=TRIAL, quality=Quality.OK, end=at(5000), limit=limit)
        got: list[Reading] = []
        cursor: str | None = None
        for _ in range(1000):
            page = store.reading_table(dataclasses.replace(query, cursor=cursor))
            assert page.table.schema == READING_SCHEMA
            assert page.table.num_rows <= limit
            got += [
                Reading(trial=TRIAL, **{**row, "quality": Quality(row["quality"])})
                for row in page.table.to_pylist()
            ]
            if page.next_cursor is None:
                break
            assert page.table.num_rows == limit
            # The cursors are those of query_readings: either method continues the other's listing.
            assert (
                page.next_cursor
                == store.query_readings(dataclasses.replace(query, cursor=cursor)).next_cursor
            )
            cursor = page.next_cursor

        assert got == expected_readings(readings, query)
        assert all(is_utc(r.ts) and is_utc(r.ingest_ts) for r in got)

    @pytest.mark.parametrize("cursor", ["not a cursor", "%%%", "AAAA", "e30", "W10"])
    def test_a_bad_cursor_is_a_bad_query(self, store: Store, cursor: str) -> None:
        store.write_readings([reading(ts=at(1))])
        store.write_events([event(ts=at(1))])
        with pytest.raises(BadQuery, match="cursor"):
            store.query_readings(ReadingQuery(trial=TRIAL, cursor=cursor))
        with pytest.raises(BadQuery, match="cursor"):
            store.query_events(EventQuery(trial=TRIAL, cursor=cursor))

    def test_a_cursor_of_one_listing_is_refused_by_the_other(self, store: Store) -> None:
        store.write_readings([reading(ts=at(i)) for i in range(3)])
        store.write_events([event(ts=at(i)) for i in range(3)])
        readings_cursor = store.query_readings(ReadingQuery(trial=TRIAL, limit=1)).next_cursor
        events_cursor = store.query_events(EventQuery(trial=TRIAL, limit=1)).next_cursor
        assert readings_cursor is not None and events_cursor is not None

        with pytest.raises(BadQuery, match="cursor"):
            store.query_events(EventQuery(trial=TRIAL, cursor=readings_cursor))
        with pytest.raises(BadQuery, match="cursor"):
            store.query_readings(ReadingQuery(trial=TRIAL, cursor=events_cursor))
        with pytest.raises(BadQuery, match="cursor"):
            store.reading_table(ReadingQuery(trial=TRIAL, cursor=events_cursor))
        assert len(store.query_readings(ReadingQuery(trial=TRIAL, cursor=readings_cursor)).items) == 2

    def test_bad_limits_and_naive_times_are_bad_queries(self, store: Store) -> None:
        with pytest.raises(BadQuery, match="limit"):
            store.query_readings(ReadingQuery(trial=TRIAL, limit=0))
        with pytest.raises(BadQuery, match="limit"):
            store.query_events(EventQuery(trial=TRIAL, limit=-1))
        with pytest.raises(BadQuery, match="limit"):
            store.query_quarantine(QuarantineQuery(limit=0))
        with pytest.raises(BadQuery, match="start"):
            store.query_readings(ReadingQuery(trial=TRIAL, start=datetime(2025, 1, 1)))

    # -- aggregates -----------------------------------------------------------------------------

    @pytest.mark.parametrize("per_device", [True, False])
    @pytest.mark.parametrize("bucket", [timedelta(minutes=15), timedelta(minutes=7), timedelta(seconds=90)])
    def test_aggregates_match_statistics_of_the_input(
        self, store: Store, per_device: bool, bucket: timedelta
    ) -> None:
        readings = write_sample(store)
        # A start off the bucket grid: the first bucket starts before it, holding only readings >= start.
        query = AggregateQuery(
            trial=TRIAL,
            start=at(5 * 60 + 3),
            end=at(100 * 60),
            bucket=bucket,
            per_device=per_device,
            functions=AGGREGATE_FNS,
            percentiles=(1, 10, 50, 90, 95, 99, 99.9, 100),
        )

        got = store.aggregate(query)

        assert_same_buckets(got, expected_buckets(readings, query))
        assert all(is_utc(b.start) for b in got)
        assert any(b.count > 1 for b in got), "buckets should pool several readings"
        assert TEXT not in {b.measurement for b in got}, "text readings have nothing to aggregate"
        assert set(got[0].values) == {"mean", "min", "max", "sum", "first", "last"} | {
            "p1", "p10", "p50", "p90", "p95", "p99", "p99.9", "p100"
        }  # fmt: skip

    def test_empty_buckets_are_reported_with_count_0_and_nulls(self, store: Store) -> None:
        readings = write_sample(store)
        query = AggregateQuery(
            trial=TRIAL, start=T0, end=END, bucket=timedelta(minutes=10), devices=["buoy-2"],
            functions=AGGREGATE_FNS, percentiles=(50,),
        )  # fmt: skip

        got = store.aggregate(query)

        silent = [b for b in got if T0 + timedelta(minutes=30) <= b.start < T0 + timedelta(minutes=60)]
        assert len(silent) == 3 * len(NUMERIC), "buoy-2 is silent from minute 30 to 60"
        assert all(b.count == 0 and set(b.values.values()) == {None} for b in silent)
        assert len(got) == 18 * len(NUMERIC), "every 10-minute bucket of [T0, T0+3h), for each series"
        assert_same_buckets(got, expected_buckets(readings, query))

    @pytest.mark.parametrize(
        ("zone", "bucket", "first_start"),
        [
            # 00:00 JST is 15:00 UTC the day before.
            ("Asia/Tokyo", timedelta(days=1), datetime(2025, 6, 30, 15, tzinfo=UTC)),
            ("Asia/Tokyo", timedelta(hours=6), datetime(2025, 7, 1, 3, tzinfo=UTC)),
            # Half-hour offsets put hourly buckets on the half hour.
            ("Asia/Kolkata", timedelta(hours=1), datetime(2025, 7, 1, 2, 30, tzinfo=UTC)),
            ("UTC", timedelta(days=1), datetime(2025, 7, 1, tzinfo=UTC)),
        ],
    )
    def test_buckets_align_in_the_time_zone(
        self, store: Store, zone: str, bucket: timedelta, first_start: datetime
    ) -> None:
        readings = write_sample(store)
        query = AggregateQuery(
            trial=TRIAL, start=T0, end=END, bucket=bucket, timezone=zone,
            functions=AGGREGATE_FNS, percentiles=(95,),
        )  # fmt: skip

        got = store.aggregate(query)

        assert got[0].start == first_start
        assert_same_buckets(got, expected_buckets(readings, query))

    def test_calendar_month_buckets_in_the_time_zone(self, store: Store) -> None:
        jst_midnight = datetime(2025, 7, 31, 15, tzinfo=UTC)  # 2025-08-01 00:00 JST
        readings = [
            reading("buoy-1", ts=jst_midnight - timedelta(microseconds=1), value=1.0),  # July in JST
            reading("buoy-1", ts=jst_midnight, value=2.0),  # August in JST, still July in UTC
            reading("buoy-1", ts=jst_midnight + timedelta(days=3), value=4.0),
            reading("buoy-1", ts=datetime(2025, 6, 20, tzinfo=UTC), value=8.0),
        ]
        store.write_readings(readings)
        query = AggregateQuery(
            trial=TRIAL, start=datetime(2025, 6, 25, tzinfo=UTC), end=datetime(2025, 9, 10, tzinfo=UTC),
            bucket=MONTH, timezone="Asia/Tokyo", functions=AGGREGATE_FNS, percentiles=(50,),
        )  # fmt: skip

        got = store.aggregate(query)

        assert [(b.start, b.count, b.values["sum"]) for b in got] == [
            (datetime(2025, 5, 31, 15, tzinfo=UTC), 0, None),  # June: its one reading is before start
            (datetime(2025, 6, 30, 15, tzinfo=UTC), 1, 1.0),
            (datetime(2025, 7, 31, 15, tzinfo=UTC), 2, 6.0),
            (datetime(2025, 8, 31, 15, tzinfo=UTC), 0, None),
        ]
        assert_same_buckets(got, expected_buckets(readings, query))

    def test_first_and_last_break_ties_by_the_greater_value(self, store: Store) -> None:
        store.write_readings(
            [
                reading("buoy-1", ts=at(0), value=1.0),
                reading("buoy-2", ts=at(0), value=5.0),
                reading("buoy-1", ts=at(30), value=7.0),
                reading("buoy-2", ts=at(30), value=3.0),
            ]
        )
        query = AggregateQuery(
            trial=TRIAL, start=T0, end=at(60), bucket=timedelta(minutes=1), per_device=False,
            functions=("first", "last"), percentiles=(25, 50, 75),
        )  # fmt: skip

        [bucket] = store.aggregate(query)

        assert bucket.values == {"first": 5.0, "last": 7.0, "p25": 1.0, "p50": 3.0, "p75": 5.0}

    @pytest.mark.parametrize(
        "filters",
        [
            {"devices": ["pier-cam"]},
            {"measurements": ["wave_height"]},
            {"devices": ["buoy-1"], "measurements": ["salinity", TEXT]},
            {"devices": []},
        ],
        ids=repr,
    )
    def test_aggregate_filters(self, store: Store, filters: dict[str, object]) -> None:
        readings = write_sample(store)
        query = AggregateQuery(
            trial=TRIAL,
            start=T0,
            end=END,
            bucket=timedelta(minutes=30),
            **filters,  # type: ignore[arg-type]
        )

        assert_same_buckets(store.aggregate(query), expected_buckets(readings, query))

    def test_aggregate_of_an_empty_range_is_empty(self, store: Store) -> None:
        write_sample(store)
        empty = AggregateQuery(
            trial=TRIAL, start=END, end=END + timedelta(hours=1), bucket=timedelta(hours=1)
        )
        assert store.aggregate(empty) == []

    @pytest.mark.parametrize("bucket", [timedelta(0), timedelta(seconds=-60)])
    def test_aggregate_rejects_a_bucket_that_is_not_positive(self, store: Store, bucket: timedelta) -> None:
        with pytest.raises(BadQuery, match="bucket"):
            store.aggregate(AggregateQuery(trial=TRIAL, start=T0, end=END, bucket=bucket))

    # -- delivery statistics --------------------------------------------------------------------

    @pytest.mark.parametrize("by", [("device", "measurement"), ("device",), ("measurement",), ()], ids=repr)
    def test_reading_stats_count_flags_and_delays(self, store: Store, by: tuple[StatsKey, ...]) -> None:
        readings = write_sample(store)
        query = StatsQuery(trial=TRIAL, start=at(10 * 60), end=at(100 * 60), by=by)

        got = store.reading_stats(query)

        assert got == expected_stats(readings, query)
        assert len(got) > 1 or by == ()

    def test_reading_stats_filters_devices_and_skips_empty_windows(self, store: Store) -> None:
        readings = write_sample(store)
        query = StatsQuery(trial=TRIAL, start=T0, end=END, devices=["buoy-2"], by=("device",))
        assert store.reading_stats(query) == expected_stats(readings, query)
        empty = StatsQuery(trial=TRIAL, start=END, end=END + timedelta(hours=1), by=())
        assert store.reading_stats(empty) == []
        assert store.reading_stats(StatsQuery(trial=TRIAL, start=T0, end=END, devices=[])) == []

    def test_event_counts_per_device_and_type(self, store: Store) -> None:
        events = sample_events() + sample_events(trial=OTHER_TRIAL, seed=12)
        store.write_events(events)
        query = StatsQuery(trial=TRIAL, start=at(20 * 60), end=at(100 * 60))

        got = store.event_counts(query)

        counts = Counter(
            (e.device, e.type) for e in events if e.trial == TRIAL and at(1200) <= e.ts < at(6000)
        )
        assert got == [EventCount(d, t, n) for (d, t), n in sorted(counts.items())]
        assert store.event_counts(dataclasses.replace(query, devices=["pier-cam"])) == [
            c for c in got if c.device == "pier-cam"
        ]

    # -- latest ---------------------------------------------------------------------------------

    def test_latest_is_the_greatest_event_time_not_the_last_written(self, store: Store) -> None:
        readings = write_sample(store)
        # Measured before everything, received after everything (a device emptying its buffer).
        late_arrival = reading("buoy-1", "salinity", ts=at(-3600), value=123.0, ingest_delay_s=6 * 3600)
        store.write_readings([late_arrival])

        got = store.latest(trial=TRIAL)

        assert got == expected_latest(readings, trial=TRIAL)
        assert late_arrival not in got
        assert all(is_utc(r.ts) and is_utc(r.ingest_ts) for r in got)

    def test_latest_filters(self, store: Store) -> None:
        readings = write_sample(store)
        want = expected_latest(readings, trial=TRIAL)

        got = store.latest(trial=TRIAL, devices=["buoy-2", "pier-cam"], measurements=["water_temp", TEXT])

        assert got == [
            r for r in want if r.device in ("buoy-2", "pier-cam") and r.measurement in ("water_temp", TEXT)
        ]
        assert store.latest(trial=OTHER_TRIAL) == expected_latest(readings, trial=OTHER_TRIAL)
        assert store.latest(trial="nowhere") == []

    # -- events ---------------------------------------------------------------------------------

    def test_events_round_trip_in_order(self, store: Store) -> None:
        events = sample_events()
        others = sample_events(trial=OTHER_TRIAL, seed=12)
        for batch in (events[::2], others, events[1::2]):
            assert store.write_events(batch) == WriteResult(written=len(batch), duplicates=0)

        got = store.query_events(EventQuery(trial=TRIAL, limit=1000))

        assert got.next_cursor is None
        assert got.items == sorted(events, key=event_order)
        assert len({e.ts for e in got.items}) < len(got.items), "the sample must have ties in time"
        assert all(is_utc(e.ts) and is_utc(e.ingest_ts) for e in got.items)

    def test_event_duplicates_are_counted(self, store: Store) -> None:
        a = event("buoy-1", "VESSEL", ts=at(1), data={"length_m": 12.5})
        b = event("buoy-1", "RIP_CURRENT", ts=at(1))
        batch = [a, b, dataclasses.replace(a, data={"length_m": 99.0})]

        assert store.write_events(batch) == WriteResult(written=2, duplicates=1)
        assert store.write_events([b, event("buoy-2", "VESSEL", ts=at(1))]) == WriteResult(1, 1)
        assert store.query_events(EventQuery(trial=TRIAL, devices=["buoy-1"])).items == [b, a]

    @pytest.mark.parametrize(
        "filters",
        [
            {"devices": ["buoy-2"]},
            {"types": ["VESSEL"]},
            {"types": []},
            {"devices": ["pier-cam"], "types": ["RIP_CURRENT"], "start": at(20 * 60)},
            {"start": at(30 * 60), "end": at(60 * 60)},
        ],
        ids=repr,
    )
    def test_event_filters_and_pages(self, store: Store, filters: dict[str, object]) -> None:
        events = sample_events() + sample_events(trial=OTHER_TRIAL, seed=12)
        store.write_events(events)
        query = EventQuery(trial=TRIAL, limit=4, **filters)  # type: ignore[arg-type]

        got = read_all_events(store, query)

        assert got == sorted((e for e in events if event_matches(e, query)), key=event_order)

    # -- status and device state ----------------------------------------------------------------

    def test_device_states_combine_status_and_last_seen(self, store: Store) -> None:
        newest = StatusReport(
            trial=TRIAL, device="buoy-1", ts=at(100), ingest_ts=at(101), online=True,
            battery=3.9, rssi=-71.0, firmware="1.4.2", uptime_s=5000.0,
        )  # fmt: skip
        older_but_later_received = StatusReport(
            trial=TRIAL, device="buoy-1", ts=at(50), ingest_ts=at(400), online=False, battery=3.1
        )
        store.write_status([newest])
        store.write_status([older_but_later_received])
        store.write_readings([reading("buoy-1", ts=at(200), ingest_delay_s=1)])
        store.write_events([event("buoy-1", ts=at(300))])
        store.write_readings([reading("buoy-2", ts=at(10), ingest_delay_s=2), reading("buoy-2", ts=at(5))])
        store.write_events([event("pier-cam", ts=at(500)), event("pier-cam", ts=at(20))])
        store.write_status([StatusReport(trial=TRIAL, device="pier-cam", ts=at(450), ingest_ts=at(460))])
        store.write_status([StatusReport(trial=OTHER_TRIAL, device="buoy-7", ts=at(1), ingest_ts=at(2))])

        got = sorted(store.device_states(trial=TRIAL), key=lambda s: s.device)

        assert got == [
            DeviceState(
                trial=TRIAL,
                device="buoy-1",
                last_seen=at(400),
                online=True,
                battery=3.9,
                rssi=-71.0,
                firmware="1.4.2",
                status_ts=at(100),
            ),
            DeviceState(trial=TRIAL, device="buoy-2", last_seen=at(12), online=None),
            DeviceState(trial=TRIAL, device="pier-cam", last_seen=at(501), online=None, status_ts=at(450)),
        ]
        assert all(is_utc(s.last_seen) for s in got)
        assert [s.device for s in store.device_states(trial=OTHER_TRIAL)] == ["buoy-7"]
        assert store.device_states(trial="nowhere") == []

    # -- quarantine -----------------------------------------------------------------------------

    def test_quarantine_round_trips_payload_bytes_and_assigns_ids(self, store: Store) -> None:
        records = [
            quarantined(QuarantineReason.UNPARSEABLE, received=at(3), payload=b"\xff\xfe\x00{not json"),
            quarantined(QuarantineReason.BAD_TOPIC, received=at(1), payload=b"", trial=None, device=None),
            quarantined(
                QuarantineReason.TOO_LARGE, received=at(2), payload=b"x" * 64, payload_size=2_000_000
            ),
            quarantined(QuarantineReason.UNKNOWN_DEVICE, received=at(2).astimezone(JST), device="ghost"),
        ]
        store.write_quarantine(records[:2])
        store.write_quarantine(records[2:])

        got = store.query_quarantine(QuarantineQuery())

        ids = [q.id for q in got]
        assert all(isinstance(i, int) for i in ids)
        assert len(set(ids)) == len(ids)
        assert [q.received_ts for q in got] == sorted((q.received_ts for q in records), reverse=True)
        without_ids = [dataclasses.replace(q, id=None) for q in got]
        assert sorted(without_ids, key=lambda q: q.reason) == sorted(records, key=lambda q: q.reason)
        assert all(is_utc(q.received_ts) for q in got)

    def test_quarantine_filters(self, store: Store) -> None:
        reasons = list(QuarantineReason)
        records = [
            quarantined(
                reasons[i % len(reasons)],
                received=at(i),
                trial=(TRIAL, OTHER_TRIAL, None)[i % 3],
                payload=bytes([i]),
            )
            for i in range(40)
        ]
        store.write_quarantine(records)
        stored = store.query_quarantine(QuarantineQuery())
        by_payload = {q.payload: q for q in stored}

        def expect(keep: list[QuarantineRecord]) -> list[bytes]:
            return [q.payload for q in sorted(keep, key=lambda q: q.received_ts, reverse=True)]

        def got(query: QuarantineQuery) -> list[bytes]:
            return [q.payload for q in store.query_quarantine(query)]

        assert got(QuarantineQuery()) == expect(records)
        assert got(QuarantineQuery(trial=TRIAL)) == expect([q for q in records if q.trial == TRIAL])
        wanted = [QuarantineReason.UNPARSEABLE, QuarantineReason.NON_FINITE]
        assert got(QuarantineQuery(reasons=wanted)) == expect([q for q in records if q.reason in wanted])
        assert got(QuarantineQuery(start=at(10), end=at(20))) == expect(
            [q for q in records if at(10) <= q.received_ts < at(20)]
        )
        assert got(QuarantineQuery(limit=5)) == expect(records)[:5]
        picked = [by_payload[bytes([i])].id for i in (3, 17, 30)]
        assert got(QuarantineQuery(ids=[i for i in picked if i is not None])) == [
            bytes([30]),
            bytes([17]),
            bytes([3]),
        ]
        assert got(QuarantineQuery(ids=[])) == []
        assert (
            got(QuarantineQuery(trial=OTHER_TRIAL, reasons=[reasons[1]], limit=2))
            == expect([q for q in records if q.trial == OTHER_TRIAL and q.reason == reasons[1]])[:2]
        )

    def test_delete_quarantine_removes_exactly_the_given_ids(self, store: Store) -> None:
        # Two records in the same microsecond and the same reason: only the id tells them apart.
        records = [
            quarantined(QuarantineReason.UNKNOWN_DEVICE, received=at(5), payload=b"a"),
            quarantined(QuarantineReason.UNKNOWN_DEVICE, received=at(5), payload=b"b"),
            quarantined(QuarantineReason.UNPARSEABLE, received=at(6), payload=b"c"),
        ]
        store.write_quarantine(records)
        by_payload = {q.payload: q.id for q in store.query_quarantine(QuarantineQuery())}
        assert by_payload.keys() == {b"a", b"b", b"c"}
        missing = max(i for i in by_payload.values() if i is not None) + 100

        assert store.delete_quarantine([]) == 0
        assert store.delete_quarantine([by_payload[b"a"], by_payload[b"c"], missing]) == 2  # type: ignore[list-item]
        assert [q.payload for q in store.query_quarantine(QuarantineQuery())] == [b"b"]
        assert store.delete_quarantine([by_payload[b"a"]]) == 0  # type: ignore[list-item]

        store.write_quarantine([quarantined(QuarantineReason.BAD_TOPIC, received=at(7), payload=b"d")])
        left = store.query_quarantine(QuarantineQuery())
        assert [q.payload for q in left] == [b"d", b"b"]
        assert len({q.id for q in left}) == 2

    # -- the first and last times stores hold ---------------------------------------------------

    @pytest.mark.parametrize(("start", "end"), BEYOND, ids=time_id)
    def test_windows_beyond_the_times_stores_hold_find_nothing(
        self, store: Store, start: datetime, end: datetime
    ) -> None:
        write_edges(store)
        write_sample(store)
        store.write_events(sample_events())
        store.write_quarantine([quarantined(QuarantineReason.UNPARSEABLE, received=at(1))])

        assert store.query_readings(ReadingQuery(trial=TRIAL, start=start, end=end)) == Page([], None)
        table = store.reading_table(ReadingQuery(trial=TRIAL, start=start, end=end))
        assert (table.table.num_rows, table.next_cursor) == (0, None)
        assert store.query_events(EventQuery(trial=TRIAL, start=start, end=end)) == Page([], None)
        # Calendar months are counted from 0001-02 to 9999-11 only (buckets.month_starts).
        has_months = datetime(1, 2, 1, tzinfo=UTC) <= start and end <= datetime(9999, 12, 1, tzinfo=UTC)
        bucketings: list[timedelta | Literal["month"]] = [timedelta(hours=1), timedelta(minutes=90)]
        for bucket in bucketings + ([MONTH] if has_months else []):
            assert store.aggregate(AggregateQuery(trial=TRIAL, start=start, end=end, bucket=bucket)) == []
        # As the API asks, for a series it knows: in Tokyo, year 1's first hour starts in year 0.
        hourly = AggregateQuery(
            trial=TRIAL, start=start, end=end, bucket=timedelta(hours=1), timezone="Asia/Tokyo"
        )
        grid = buckets.aggregate_grid(store, hourly, series=[("water_temp", "buoy-1")])
        assert grid.series == [("water_temp", "buoy-1")]
        assert len(grid.starts_us) == buckets.bucket_count(hourly) and not grid.count.any()
        stats = StatsQuery(trial=TRIAL, start=start, end=end)
        assert store.reading_stats(stats) == []
        assert store.event_counts(stats) == []
        assert store.query_quarantine(QuarantineQuery(start=start, end=end)) == []

    @pytest.mark.parametrize(("start", "end"), ACROSS, ids=time_id)
    def test_records_at_the_first_and_last_times_stores_hold_are_found(
        self, store: Store, start: datetime | None, end: datetime | None
    ) -> None:
        readings, events = write_edges(store)
        readings += write_sample(store)
        events += sample_events()
        store.write_events(sample_events())

        query = ReadingQuery(trial=TRIAL, start=start, end=end, limit=3)
        assert read_all(store, query) == expected_readings(readings, query)
        event_query = EventQuery(trial=TRIAL, start=start, end=end, limit=3)
        assert read_all_events(store, event_query) == sorted(
            (e for e in events if event_matches(e, event_query)), key=event_order
        )
        assert store.latest(trial=TRIAL) == expected_latest(readings, trial=TRIAL)
        stats = StatsQuery(trial=TRIAL, start=start or YEAR_1, end=end or YEAR_9999, by=("device",))
        assert store.reading_stats(stats) == expected_stats(readings, stats)
        counts = Counter((e.device, e.type) for e in events if event_matches(e, event_query))
        assert store.event_counts(stats) == [EventCount(d, t, n) for (d, t), n in sorted(counts.items())]

    @pytest.mark.parametrize(
        ("bucket", "zone"),
        [
            (timedelta(hours=1), "UTC"),
            (timedelta(minutes=90), "Asia/Tokyo"),  # 1677 Tokyo keeps local mean time: +9:18:59
            (timedelta(days=1), "Asia/Tokyo"),
            (timedelta(minutes=7), "Asia/Kolkata"),
        ],
        ids=repr,
    )
    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (datetime(1677, 9, 1, tzinfo=UTC), datetime(1677, 9, 23, tzinfo=UTC)),
            (datetime(1677, 9, 21, 1, tzinfo=UTC), datetime(1677, 9, 23, tzinfo=UTC)),
            (datetime(2262, 4, 9, tzinfo=UTC), datetime(2262, 4, 13, tzinfo=UTC)),
            (datetime(2262, 4, 9, tzinfo=UTC), LAST_TIME),
        ],
        ids=time_id,
    )
    def test_aggregates_at_the_first_and_last_times_stores_hold(
        self, store: Store, bucket: timedelta, zone: str, start: datetime, end: datetime
    ) -> None:
        readings, _ = write_edges(store)
        query = AggregateQuery(
            trial=TRIAL, start=start, end=end, bucket=bucket, timezone=zone,
            functions=AGGREGATE_FNS, percentiles=(50, 99),
        )  # fmt: skip

        got = store.aggregate(query)

        assert_same_buckets(got, expected_buckets(readings, query))
        assert any(b.count for b in got)

    @pytest.mark.parametrize(
        ("start", "end", "bucket", "zone"),
        [
            (datetime(1677, 8, 15, tzinfo=UTC), datetime(1677, 11, 2, tzinfo=UTC), MONTH, "Asia/Tokyo"),
            (datetime(2262, 2, 10, tzinfo=UTC), datetime(2262, 6, 1, tzinfo=UTC), MONTH, "UTC"),
            (datetime(1000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC), timedelta(days=3650), "UTC"),
        ],
        ids=time_id,
    )
    @pytest.mark.parametrize("per_device", [True, False])
    def test_aggregates_across_the_first_and_last_times_stores_hold(
        self,
        store: Store,
        start: datetime,
        end: datetime,
        bucket: timedelta | Literal["month"],
        zone: str,
        per_device: bool,
    ) -> None:
        readings, _ = write_edges(store)
        readings += write_sample(store)
        query = AggregateQuery(
            trial=TRIAL, start=start, end=end, bucket=bucket, timezone=zone, per_device=per_device,
            functions=AGGREGATE_FNS, percentiles=(50,),
        )  # fmt: skip

        got = store.aggregate(query)

        assert_same_buckets(got, expected_buckets(readings, query))
        assert any(b.count for b in got)

    # -- threads --------------------------------------------------------------------------------

    def test_concurrent_readers_and_a_writer(self, store: Store) -> None:
        batches = [
            [
                reading(DEVICES[b % 3], NUMERIC[i % 3], ts=at(b * 10 + i / 1000), value=float(i))
                for i in range(300)
            ]
            for b in range(30)
        ]
        errors: list[BaseException] = []
        sizes: dict[int, list[int]] = {n: [] for n in range(3)}
        done = threading.Event()

        def write() -> None:
            try:
                for batch in batches:
                    assert store.write_readings(batch) == WriteResult(written=len(batch), duplicates=0)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        def read(n: int) -> None:
            try:
                while True:
                    finished = done.is_set()
                    items = store.query_readings(ReadingQuery(trial=TRIAL, limit=100_000)).items
                    keys = [reading_order(r) for r in items]
                    assert keys == sorted(keys)
                    sizes[n].append(len(items))
                    store.latest(trial=TRIAL)
                    store.aggregate(
                        AggregateQuery(trial=TRIAL, start=T0, end=END, bucket=timedelta(minutes=1))
                    )
                    store.device_states(trial=TRIAL)
                    if finished:
                        return
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(n,)) for n in range(3)]
        threads.append(threading.Thread(target=write))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        total = sum(len(b) for b in batches)
        for seen in sizes.values():
            assert seen == sorted(seen), "a reader saw readings disappear"
            assert seen[-1] == total
        assert read_all(store, ReadingQuery(trial=TRIAL, limit=1000)) == sorted(
            (r for b in batches for r in b), key=reading_order
        )
