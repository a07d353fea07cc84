"""InfluxQL text for the InfluxDB store: quoting, filters, time bounds and paging cursors.

Only InfluxQL that 1.8, 2.x (through DBRP mappings) and 3.x all serve is built here: absolute times
are RFC 3339 string literals, set membership is an OR of equalities (no regular expressions, no
`OR` between time conditions, which 1.x silently answers with nothing), and quality flags are
matched by listing the flag combinations that qualify rather than with bitwise operators.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from midika.errors import BadQuery
from midika.models.records import Quality

# Every combination of the known flags; new flags widen it automatically.
_ALL_FLAGS = functools.reduce(operator.or_, (int(q) for q in Quality), 0)


def ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (tags such as `measurement` collide with keywords)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_literal(ts: datetime) -> str:
    """An absolute time as an RFC 3339 literal with microseconds."""
    return literal(ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


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


def at(ts: datetime) -> str:
    """The condition that a point's time is exactly `ts`."""
    return f"time = {time_literal(ts)}"


def require_aware(**times: datetime | None) -> None:
    """Refuse naive datetimes: their instant is unknown. BadQuery names the parameter."""
    for name, ts in times.items():
        if ts is not None and ts.utcoffset() is None:
            raise BadQuery(f"{name} must be a timezone-aware datetime, got {ts.isoformat()}")


def require_limit(limit: int) -> None:
    """Refuse a page size below one."""
    if limit < 1:
        raise BadQuery(f"limit must be at least 1, got {limit}")


def time_range(start: datetime | None, end: datetime | None) -> list[str]:
    """Conditions for `start <= time < end`, either bound optional."""
    require_aware(start=start, end=end)
    conditions = []
    if start is not None:
        conditions.append(f"time >= {time_literal(start)}")
    if end is not None:
        conditions.append(f"time < {time_literal(end)}")
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


def encode_cursor(ts_us: int, first: str, second: str) -> str:
    """The opaque cursor after the item with sort key (ts, first, second)."""
    raw = json.dumps([ts_us, first, second], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    """The sort key a cursor from `encode_cursor` stands for; BadQuery if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts_us, first, second = json.loads(raw)
        if isinstance(ts_us, int) and isinstance(first, str) and isinstance(second, str):
            return ts_us, first, second
    except (ValueError, TypeError, binascii.Error):
        pass
    raise BadQuery(f"invalid cursor {cursor!r}: not one this store handed out")
