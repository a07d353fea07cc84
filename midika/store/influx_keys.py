"""Where InfluxDB's identity and order meet midika's keys: duplicate detection and keyset pages.

Duplicates. InfluxDB overwrites a point with the same series and time, so each key is stored once
by construction, but a write does not say whether the point existed. To report `WriteResult`
exactly — and to keep the *first* copy, as the Store contract says, instead of letting a late
duplicate overwrite it — `stored_keys` reads which keys of a batch are already stored before the
write: one request, one InfluxQL statement per trial and time range of the batch (split at gaps over
a minute, at most 32 ranges), filtered to the batch's devices. The cost is a round trip plus reading
back the stored points of those devices inside those ranges: for live ingest, about the batch
itself; for a backfill spread over hours, everything those devices stored within its span.
`bench/influx_write.py` measures it. The store runs check and write under a lock, so writers that
share one InfluxStore never race; separate processes writing the same keys at the same moment could
both count a point as new (it is still stored once).

Pages. InfluxQL orders only by time; pages follow (ts, device, measurement) — (ts, device, type)
for events. The cursor is that key of a page's last item, and the measurement listed, so that a
readings cursor given to events is refused rather than misread. `keyset_page` needs at most three
statements: every point at exactly the cursor's time (at most one per series), sorted in Python and
cut after the cursor; then `time > cursor ORDER BY time LIMIT limit + 1`; and, only if that hit its
limit, every point at its last timestamp, which the LIMIT may have cut anywhere. All points before
that timestamp were complete, so sorting the union in Python gives the exact order, and the extra
point tells whether another page exists (so the last page never needs a follow-up request).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from midika.store import cursors
from midika.store import influx_query as q
from midika.store import influx_schema as schema
from midika.store.influx_http import InfluxHttp, Row
from midika.timeutil import from_us

Key = tuple[str, str, str, int]  # trial, device, measurement or event type, time in µs

_SPLIT_GAP_US = 60_000_000
_MAX_RANGES = 32
_MAX_DEVICE_FILTER = 64  # with more devices in a batch, reading all devices is cheaper than the filter
_MICROSECOND = timedelta(microseconds=1)


def time_ranges(times: Sequence[int]) -> list[tuple[int, int]]:
    """Cover sorted distinct times with at most 32 inclusive ranges, split at the widest gaps (> 1 min)."""
    gaps = [(times[i + 1] - times[i], i) for i in range(len(times) - 1)]
    splits = sorted(i for gap, i in heapq.nlargest(_MAX_RANGES - 1, gaps) if gap > _SPLIT_GAP_US)
    ranges, first = [], 0
    for i in splits:
        ranges.append((times[first], times[i]))
        first = i + 1
    ranges.append((times[first], times[-1]))
    return ranges


def stored_keys(http: InfluxHttp, kind: str, second: str, keys: Sequence[Key]) -> set[Key]:
    """Which of `keys` (of measurement `kind`, whose second tag is `second`) are already stored."""
    by_trial: dict[str, tuple[set[str], set[int]]] = defaultdict(lambda: (set(), set()))
    for trial, device, _, ts_us in keys:
        by_trial[trial][0].add(device)
        by_trial[trial][1].add(ts_us)
    statements, trials = [], []
    for trial, (devices, times) in by_trial.items():
        conditions = [f'"trial" = {q.literal(trial)}']
        if len(devices) <= _MAX_DEVICE_FILTER:
            conditions.append(q.any_of("device", sorted(devices)))
        for first, last in time_ranges(sorted(times)):
            span = q.time_range(from_us(first), from_us(last) + _MICROSECOND)
            if span is None:  # times InfluxDB cannot hold: none is stored (and the write refuses them)
                continue
            # InfluxQL cannot select tags alone; ingest_ts is a field every point has. Grouping by
            # the tags sends each series' tags once instead of on every row.
            statements.append(
                q.select(kind, ["ingest_ts"], [*conditions, *span], group_by=("device", second))
            )
            trials.append(trial)
    results = http.query(statements)
    return {
        (trial, row["device"], row[second], int(row["time"]))
        for trial, rows in zip(trials, results, strict=True)
        for row in rows
    }


def keyset_page(
    http: InfluxHttp,
    kind: str,
    columns: Sequence[str],
    conditions: Sequence[str],
    *,
    second: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row], str | None]:
    """One page of `kind` rows in (time, device, `second`) order, and the cursor after it."""
    q.require_limit(limit)
    after = cursors.decode(kind, cursor) if cursor is not None else None
    window = q.time_range(start, end)
    if window is None:
        return [], None

    def sort_key(row: Row) -> tuple[int, str, str]:
        return int(row["time"]), row["device"], row[second]

    def all_at(ts_us: int) -> str | None:
        point = q.at(from_us(ts_us))
        return None if point is None else q.select(kind, columns, [*conditions, *window, point])

    at_cursor, rest_start = None, start
    if after is not None:
        at_cursor = all_at(after[0])
        # A cursor past the last time InfluxDB holds resumes after it: at nothing.
        resume = from_us(min(after[0], schema.LAST_US) + 1)
        rest_start = resume if start is None else max(start, resume)
    rest = q.time_range(rest_start, end)
    statements = [] if at_cursor is None else [at_cursor]
    if rest is not None:
        suffix = f"ORDER BY time ASC LIMIT {limit + 1}"
        statements.append(q.select(kind, columns, [*conditions, *rest], suffix=suffix))
    results = http.query(statements)
    head = results.pop(0) if at_cursor is not None else []
    tail = results.pop() if rest is not None else []
    rows = [r for r in head if sort_key(r) > after] if after is not None else []
    if len(tail) > limit:
        last = max(int(r["time"]) for r in tail)
        rows += [r for r in tail if int(r["time"]) < last]
        at_last = all_at(last)  # a stored point's time: never None
        if len(rows) < limit and at_last is not None:  # the page reaches into the last timestamp:
            rows += http.query([at_last])[0]  # fetch all of its points
        more = True
    else:
        rows += tail
        more = len(rows) > limit
    rows.sort(key=sort_key)
    page = rows[:limit]
    return page, cursors.encode(kind, *sort_key(page[-1])) if more and page else None
