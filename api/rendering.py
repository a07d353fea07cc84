"""JSON bodies written straight from store results, for responses too large to build as models.

An aggregate can hold 100,000 buckets. Building a `BucketPublic` for each, which FastAPI then
validates again and dumps, cost ~30 µs a bucket, more than DuckDB took to compute it. Here the body
is plain dicts dumped by pydantic's serialiser (4x faster than `json.dumps` on 6,200 buckets), in the
shape and key order of `api.schemas.AggregateResult` (tests/api/test_rendering.py holds it to the
model's own serialisation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, TypeAdapter

from midika.store.base import Bucket
from midika.timeutil import to_rfc3339

# A NaN or infinity (stored values may hold them) is written null, as the models write it.
_JSON = TypeAdapter(dict[str, Any], config=ConfigDict(ser_json_inf_nan="null"))


def aggregate_body(
    *,
    bucket: str,
    bucket_seconds: int | None,
    timezone: str,
    functions: list[str],
    items: Sequence[Bucket],
    ends: Mapping[datetime, datetime],
) -> bytes:
    """The JSON of an `AggregateResult` holding `items`, each ending where `ends` says."""
    # Few distinct bucket starts (one per grid step), many buckets: format each time once.
    times: dict[datetime, str] = {}
    for b in items:
        if b.start not in times:
            times[b.start] = to_rfc3339(b.start)
    spans = {start: (text, to_rfc3339(ends[start])) for start, text in times.items()}
    rows: list[dict[str, Any]] = []
    for b in items:
        start, end = spans[b.start]
        rows.append(
            {
                "start": start,
                "end": end,
                "device": b.device,
                "measurement": b.measurement,
                "count": b.count,
                "values": b.values if type(b.values) is dict else dict(b.values),
            }
        )
    body: dict[str, Any] = {
        "bucket": bucket,
        "bucket_seconds": bucket_seconds,
        "timezone": timezone,
        "functions": functions,
        "items": rows,
    }
    return _JSON.dump_json(body)
