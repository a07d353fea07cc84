"""What every store's `aggregate` shares: the bucket grid, percentile ranks and filling empty buckets.

Fixed-size buckets (1 minute to 1 day and beyond) are aligned in the query's time zone: a bucket
starts where local time is a whole multiple of its size since local midnight of 1970-01-01, so a
1-day bucket in Asia/Tokyo starts at 00:00 JST (15:00 UTC). The zone's offset is taken at the
window's start; for zones with daylight saving time, fixed buckets keep that offset through the
window (calendar months do not: their bounds are each month's local midnight, computed here).

Percentiles are nearest-rank: of the n values sorted ascending, the one at rank
max(1, floor(n·p/100 + 0.5)) — what InfluxDB's PERCENTILE() returns (it returns nothing where
the rank is below 1; the InfluxDB store fills that in with the minimum, rank 1), so both stores
answer the same. `first` and `last` are the values at the earliest and latest event time; where
several readings share that time (pooled devices), the greatest value, as InfluxDB's FIRST/LAST.

Stores compute non-empty buckets; `complete` adds the empty ones (count 0, every value null)
for every series that has a reading in the window, so no store can hide a gap differently.

The same complete answer can be had as a `BucketGrid`: every series × every bucket of the grid,
as arrays rather than a `Bucket` per cell, for answers of 100,000 buckets. A store that returns its
non-empty buckets as columns (DuckDB) has them spread onto the grid by `grid_of_rows` with numpy;
for any other `grid_of` lays out what `complete` would. The API writes its JSON from the grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast, runtime_checkable
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from midika.errors import BadQuery
from midika.store.base import MONTH, AggregateQuery, Bucket, Store
from midika.timeutil import from_us, to_us

MAX_BUCKETS = 1_000_000  # per series: a guard for callers that skip the API's own, tighter limit

Series = tuple[str, str | None]  # measurement, device (None when pooled)


def percentile_label(p: float) -> str:
    """The name of percentile `p` among a bucket's values: p50, p99.9."""
    return f"p{p:g}"


def percentile_rank(n: int, p: float) -> int:
    """The 1-based nearest rank of percentile `p` among `n` values (n ≥ 1)."""
    return max(1, min(n, math.floor(n * p / 100.0 + 0.5)))


def value_names(query: AggregateQuery) -> list[str]:
    """The keys of each bucket's `values`: the functions, then the percentiles, as asked."""
    functions = [f for f in dict.fromkeys(query.functions) if f != "count"]  # count is always there
    return [*functions, *(percentile_label(p) for p in query.percentiles)]


def check(query: AggregateQuery) -> None:
    """Refuse what no store can answer; BadQuery names the part at fault."""
    for name, ts in (("start", query.start), ("end", query.end)):
        if ts.utcoffset() is None:
            raise BadQuery(f"{name} must be a timezone-aware datetime, got {ts.isoformat()}")
    if query.bucket != MONTH and (not isinstance(query.bucket, timedelta) or query.bucket <= timedelta(0)):
        raise BadQuery(f"bucket must be a positive duration or {MONTH!r}, got {query.bucket}")
    if isinstance(query.bucket, timedelta) and query.bucket % timedelta(microseconds=1):
        raise BadQuery(f"bucket must be a whole number of microseconds, got {query.bucket}")
    for p in query.percentiles:
        if not 0 < p <= 100:
            raise BadQuery(f"percentile must be above 0 and at most 100, got {p}")
    try:
        ZoneInfo(query.timezone)
    except (KeyError, ValueError) as exc:
        raise BadQuery(f"timezone {query.timezone!r} is not an IANA time zone") from exc
    if bucket_count(query) > MAX_BUCKETS:
        raise BadQuery(f"bucket: more than {MAX_BUCKETS} buckets; use a larger bucket or a shorter window")


def phase_us(query: AggregateQuery) -> int:
    """Fixed-size buckets start at `phase_us + k·width`: local midnight-aligned in the query's zone."""
    assert isinstance(query.bucket, timedelta)
    width = query.bucket // timedelta(microseconds=1)
    offset = ZoneInfo(query.timezone).utcoffset(query.start.astimezone(UTC).replace(tzinfo=None))
    offset_us = 0 if offset is None else offset // timedelta(microseconds=1)
    return (-offset_us) % width


def month_starts(query: AggregateQuery) -> list[datetime]:
    """UTC starts of the calendar months (in the query's zone) overlapping [start, end), and the end bound.

    BadQuery when a month has no UTC bounds: before 0001-02-01 or after 9999-12-01.
    """
    zone = ZoneInfo(query.timezone)
    bounds: list[datetime] = []
    try:
        local = query.start.astimezone(zone)
        year, month = local.year, local.month
        while True:
            bound = datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
            bounds.append(bound)
            if bound >= query.end:
                return bounds
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    except (OverflowError, ValueError) as exc:
        raise _beyond_the_calendar(query) from exc


def _beyond_the_calendar(query: AggregateQuery) -> BadQuery:
    # Python's datetime ends at years 1 and 9999: the first and last months have no UTC bounds.
    return BadQuery(
        "bucket: calendar months are counted from 0001-02-01 to 9999-12-01; narrow start..end "
        f"({query.start.isoformat()}..{query.end.isoformat()}) to that span"
    )


def bucket_count(query: AggregateQuery) -> int:
    """How many buckets overlap [start, end), without listing them."""
    if query.start >= query.end:
        return 0
    if query.bucket == MONTH:
        last = query.end - timedelta(microseconds=1)
        try:
            start, end = (ts.astimezone(ZoneInfo(query.timezone)) for ts in (query.start, last))
        except OverflowError as exc:
            raise _beyond_the_calendar(query) from exc
        return (end.year - start.year) * 12 + end.month - start.month + 1
    assert isinstance(query.bucket, timedelta)
    width = query.bucket // timedelta(microseconds=1)
    phase = phase_us(query)
    return (
        _floor(to_us(query.end) - 1, width, phase) - _floor(to_us(query.start), width, phase)
    ) // width + 1


def bucket_starts(query: AggregateQuery) -> list[datetime]:
    """The start of every bucket overlapping [start, end), in order (UTC)."""
    if query.bucket == MONTH and query.start < query.end:
        return month_starts(query)[:-1]
    return [from_us(us) for us in grid_starts_us(query).tolist()]


def floor_us(ts_us: int, query: AggregateQuery) -> int:
    """The start (µs) of the fixed-size bucket holding `ts_us`."""
    assert isinstance(query.bucket, timedelta)
    return _floor(ts_us, query.bucket // timedelta(microseconds=1), phase_us(query))


def _floor(ts_us: int, width: int, phase: int) -> int:
    return ts_us - (ts_us - phase) % width  # Python's % floors, so times before 1970 work too


def nearest_rank(values: Sequence[float], p: float) -> float:
    """Percentile `p` of `values` by nearest rank (see the module docstring)."""
    ordered = sorted(values)
    return ordered[percentile_rank(len(ordered), p) - 1]


def complete(
    query: AggregateQuery, found: Iterable[Bucket], *, series: Iterable[Series] = ()
) -> list[Bucket]:
    """Every bucket of the grid for each series found (or named in `series`), ordered by
    (measurement, device, start); a bucket no store row filled has count 0 and null values."""
    starts = bucket_starts(query)
    names = value_names(query)
    by_series: dict[Series, dict[datetime, Bucket]] = {s: {} for s in series}
    for bucket in found:
        by_series.setdefault((bucket.measurement, bucket.device), {})[bucket.start] = bucket
    empty: Mapping[str, float | None] = {name: None for name in names}
    out: list[Bucket] = []
    for measurement, device in sorted(by_series, key=lambda s: (s[0], s[1] or "")):
        filled = by_series[(measurement, device)]
        for start in starts:
            stored = filled.get(start)
            if stored is None or stored.count == 0:
                stored = Bucket(
                    start=start, measurement=measurement, device=device, count=0, values=dict(empty)
                )
            out.append(stored)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketGrid:
    """Every bucket of an aggregate: each series × each bucket start, series after series.

    Cell `i * len(starts_us) + j` is series `i`'s bucket starting at `starts_us[j]`. A value is NaN
    where the bucket has none: stored readings are finite (the ingest quarantines NaN and
    infinity), so NaN means null, and numpy columns go to the JSON writer without a conversion.
    """

    starts_us: npt.NDArray[np.int64]  # the grid's bucket starts, ascending, µs since the epoch
    series: list[Series]  # ordered by (measurement, device), a pooled device (None) first
    count: npt.NDArray[np.int64]  # per cell
    values: dict[str, npt.NDArray[np.float64]]  # per value name (`value_names`), per cell, NaN when none

    def buckets(self) -> list[Bucket]:
        """The cells as buckets, in order: what `complete` returns for the same query."""
        starts = [from_us(us) for us in self.starts_us.tolist()]
        names = list(self.values)
        columns = [[None if math.isnan(v) else v for v in self.values[name].tolist()] for name in names]
        counts = self.count.tolist()
        out: list[Bucket] = []
        cell = 0
        for measurement, device in self.series:
            for start in starts:
                values = {name: column[cell] for name, column in zip(names, columns, strict=True)}
                out.append(Bucket(start, measurement, device, counts[cell], values))
                cell += 1
        return out


@runtime_checkable
class GridAggregates(Protocol):
    """A store that answers an aggregate as a `BucketGrid` directly."""

    def aggregate_grid(self, query: AggregateQuery, *, series: Iterable[Series] = ()) -> BucketGrid:
        """What `grid_of(query, store.aggregate(query), series=series)` holds."""
        ...


def aggregate_grid(store: Store, query: AggregateQuery, *, series: Iterable[Series] = ()) -> BucketGrid:
    """Every bucket of the grid for each series found by `store` or named in `series`."""
    if _answers_grids(type(store)):
        return cast(GridAggregates, store).aggregate_grid(query, series=series)
    return grid_of(query, store.aggregate(query), series=series)


@functools.cache
def _answers_grids(kind: type) -> bool:
    # Per class: isinstance against a runtime-checkable protocol walks the protocol's members each
    # time (~15 µs on Python 3.11), more than a cell of the grid costs.
    return issubclass(kind, GridAggregates)


def grid_of(query: AggregateQuery, found: Iterable[Bucket], *, series: Iterable[Series] = ()) -> BucketGrid:
    """The grid of `complete(query, found, series=series)`."""
    cells = complete(query, found, series=series)
    names = value_names(query)
    ordered = list(dict.fromkeys((b.measurement, b.device) for b in cells))
    return BucketGrid(
        starts_us=grid_starts_us(query),
        series=ordered,
        count=np.array([b.count for b in cells], dtype=np.int64),
        # None becomes NaN: the grid's null.
        values={name: np.array([b.values.get(name) for b in cells], dtype=np.float64) for name in names},
    )


def grid_starts_us(query: AggregateQuery) -> npt.NDArray[np.int64]:
    """`bucket_starts` as µs since the epoch."""
    if query.start >= query.end:
        return np.empty(0, dtype=np.int64)
    if query.bucket == MONTH:
        return np.array([to_us(s) for s in month_starts(query)[:-1]], dtype=np.int64)
    assert isinstance(query.bucket, timedelta)
    width = query.bucket // timedelta(microseconds=1)
    first = floor_us(to_us(query.start), query)
    return first + width * np.arange(bucket_count(query), dtype=np.int64)


def grid_of_rows(
    query: AggregateQuery,
    *,
    measurement: npt.NDArray[np.object_],
    device: npt.NDArray[np.object_] | None,
    start_us: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    values: Mapping[str, npt.NDArray[np.float64]],
    series: Iterable[Series] = (),
) -> BucketGrid:
    """The grid of the non-empty buckets given as columns, ordered by (measurement, device, start).

    `device` is None when devices are pooled; a value column may be a numpy masked array (null where
    masked), and null is NaN in the grid. Each row lands in its cell by numpy indexing: no Python per bucket.
    """
    starts = grid_starts_us(query)
    rows = len(start_us)
    # The rows come in runs, one per series; a run starts where the series changes.
    head = np.ones(rows, dtype=np.bool_)
    head[1:] = measurement[1:] != measurement[:-1]
    if device is not None:
        head[1:] |= device[1:] != device[:-1]
    heads = np.flatnonzero(head)
    found = [(str(measurement[i]), None if device is None else str(device[i])) for i in heads.tolist()]
    ordered = sorted(set(found) | set(series), key=lambda s: (s[0], s[1] or ""))
    names = value_names(query)
    if found == ordered and rows == len(ordered) * len(starts):
        # Each series has a row for every bucket (its rows are distinct buckets of the grid), so the
        # rows are the grid: nothing to spread, the columns are used as they are.
        return BucketGrid(
            starts_us=starts,
            series=ordered,
            count=count.astype(np.int64, copy=False),
            values={name: np.ma.filled(values[name], np.nan) for name in names},
        )
    index = {s: i for i, s in enumerate(ordered)}
    row_series = np.repeat(
        np.array([index[s] for s in found], dtype=np.int64), np.diff(np.append(heads, rows))
    )
    cell = row_series * len(starts) + np.searchsorted(starts, start_us)
    cells = len(ordered) * len(starts)
    counts = np.zeros(cells, dtype=np.int64)
    counts[cell] = count
    grid_values: dict[str, npt.NDArray[np.float64]] = {}
    for name in names:
        filled = np.full(cells, np.nan)
        filled[cell] = np.ma.filled(values[name], np.nan)
        grid_values[name] = filled
    return BucketGrid(starts_us=starts, series=ordered, count=counts, values=grid_values)
