"""InfluxQL text for the InfluxDB store: quoting, filters and time bounds (cursors: midika.store.cursors).

Only InfluxQL that 1.8, 2.x (through DBRP mappings) and 3.x all serve is built here: absolute times
are RFC 3339 string literals, set membership is an OR of equalities (no regular expressions, no
`OR` between time conditions, which 1.x silently answers with nothing), and quality flags are
matched by listing the flag combinations that qualify rather than with bitwise operators.

InfluxDB holds times from 1677 to 2262 (`influx_schema.MIN_NS`, `MAX_NS`) and fails a statement
whose time literal lies outside (a lower bound must even lie above the first nanosecond). No point
can lie outside either, so every time condition is built by `time_range` (or `at`), which cuts a
window to that range and says when nothing can match.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import datetime

from midika.errors import BadQuery
from midika.models.records import Quality
from midika.store import influx_schema as schema
from midika.timeutil import from_us, to_us

# Every combination of the known flags; new flags widen it automatically.
_ALL_FLAGS = functools.reduce(operator.or_, (int(q) for q in Quality), 0)


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (tags such as `measurement` collide with keywords)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time_literal(ts_us: int, *, nanoseconds: int | None = None) -> str:
    """An RFC 3339 literal for `ts_us` µs (and `nanoseconds` more) since the epoch."""
    digits = "" if nanoseconds is None else f"{nanoseconds:03d}"
    return literal(from_us(ts_us).strftime("%Y-%m-%dT%H:%M:%S.%f") + digits + "Z")


# The upper bound of a window reaching past the last nanosecond: any time beyond is refused.
_UNTIL_THE_END = f"time <= {_time_literal(schema.LAST_US, nanoseconds=schema.MAX_NS % 1000)}"


def any_of(key: str, values: Iterable[str]) -> str:
    """`key` equals one of `values` (callers handle an empty selection before building a query)."""
    return "(" + " OR ".join(f"{ident(key)} = {literal(v)}" for v in values) + ")"


def any_int(key: str, values: Iterable[int]) -> str:
    """Integer field `key` equals one of `values`."""
    return "(" + " OR ".join(f"{ident(key)} = {int(v)}" for v in values) + ")"


def quality_filter(quality: Quality) -> str:
    """Readings whose flags include every bit of `quality`; Quality.OK means no flag at all."""
    wanted = int(quality)
    matching = [0] if wanted == 0 else [v for v in range(_ALL_FLAGS + 1) if v & wanted == wanted]
    return "(" + " OR ".join(f'"quality" = {v}' for v in matching) + ")"


def at(ts: datetime) -> str | None:
    """The condition that a point's time is exactly `ts`; None if no point can have that time."""
    require_aware(ts=ts)
    ts_us = to_us(ts)
    return f"time = {_time_literal(ts_us)}" if schema.FIRST_US <= ts_us <= schema.LAST_US else None


def require_aware(**times: datetime | None) -> None:
    """Refuse naive datetimes: their instant is unknown. BadQuery names the parameter."""
    for name, ts in times.items():
        if ts is not None and ts.utcoffset() is None:
            raise BadQuery(f"{name} must be a timezone-aware datetime, got {ts.isoformat()}")


def require_limit(limit: int) -> None:
    """Refuse a page size below one."""
    if limit < 1:
        raise BadQuery(f"limit must be at least 1, got {limit}")


def time_range(start: datetime | None, end: datetime | None) -> list[str] | None:
    """Conditions for `start <= time < end`, either bound optional; None if no point can match.

    The window is cut to the times InfluxDB holds, as a bound beyond them would fail the statement:
    a start before the first time is left out (nothing lies before it), and an end after the last
    time becomes `time <=` that time (not left out: 1.x ends a GROUP BY time() without one at now()).
    """
    require_aware(start=start, end=end)
    lo = None if start is None else to_us(start)
    hi = None if end is None else to_us(end)
    if (lo is not None and lo > schema.LAST_US) or (hi is not None and hi < schema.FIRST_US):
        return None
    if lo is not None and hi is not None and lo >= hi:
        return None
    conditions = []
    if lo is not None and lo >= schema.FIRST_US:
        conditions.append(f"time >= {_time_literal(lo)}")
    if hi is not None:
        conditions.append(f"time < {_time_literal(hi)}" if hi <= schema.LAST_US else _UNTIL_THE_END)
    return conditions


def select(
    measurement: str,
    columns: Sequence[str],
    conditions: Sequence[str],
    *,
    group_by: Sequence[str] = (),
    suffix: str = "",
) -> str:
    """A SELECT of `columns` (fields and tags) from `measurement` under all of `conditions`."""
    text = f"SELECT {', '.join(ident(c) for c in columns)} FROM {ident(measurement)}"
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    if group_by:
        text += " GROUP BY " + ", ".join(ident(g) for g in group_by)
    return text + (f" {suffix}" if suffix else "")


def aggregate(
    measurement: str,
    conditions: Sequence[str],
    *,
    selects: Sequence[tuple[str, str]],
    group_by: Sequence[str],
    bucket: tuple[int, int] | None,
) -> str:
    """`selects` (expression, alias) per group; per fixed bucket (width µs, phase µs) if given.

    Empty buckets are left out (fill(none)): the store fills them in for every series, as all
    stores do (`midika.store.buckets.complete`).
    """
    columns = ", ".join(f"{expression} AS {ident(alias)}" for expression, alias in selects)
    groups = [ident(g) for g in group_by]
    if bucket is not None:
        width, phase = bucket
        groups.insert(0, f"time({width}u, {phase}u)")
    text = f"SELECT {columns} FROM {ident(measurement)} WHERE {' AND '.join(conditions)}"
    if groups:
        text += f" GROUP BY {', '.join(groups)}"
    return text + (" fill(none)" if bucket is not None else "")
