"""JSON bodies written straight from store results, for responses too large to build as models.

An aggregate can hold 100,000 buckets. Building a `BucketPublic` for each, which FastAPI then
validates again and dumps, cost ~30 µs a bucket, more than DuckDB took to compute it; plain dicts
dumped by pydantic still cost ~1 µs a bucket. Here each bucket's JSON is put together by Arrow's
string kernels from the grid's columns: text that repeats (times, device and measurement names) is
written once per distinct value and then taken, numbers are formatted column by column. The shape
and key order are those of `api.schemas.AggregateResult` (tests/api/test_rendering.py holds the
body to the model's own serialisation).
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ConfigDict, TypeAdapter

from midika.store.buckets import BucketGrid

_JSON = TypeAdapter(dict[str, Any], config=ConfigDict(ser_json_inf_nan="null"))
_INTEGRAL = r"^-?[0-9]+$"


def aggregate_body(
    *,
    bucket: str,
    bucket_seconds: int | None,
    timezone: str,
    functions: list[str],
    grid: BucketGrid,
    ends_us: npt.NDArray[np.int64],
) -> bytes:
    """The JSON of an `AggregateResult` holding every cell of `grid`; bucket j ends at `ends_us[j]`."""
    envelope = _JSON.dump_json(
        {
            "bucket": bucket,
            "bucket_seconds": bucket_seconds,
            "timezone": timezone,
            "functions": functions,
            "items": [],
        }
    )
    assert envelope.endswith(b"[]}")
    return b"".join((envelope[:-2], _items(grid, ends_us), b"]}"))


def _items(grid: BucketGrid, ends_us: npt.NDArray[np.int64]) -> memoryview:
    """The items of the body, comma-separated, without the enclosing brackets."""
    per_series, series = len(grid.starts_us), len(grid.series)
    if per_series * series == 0:
        return memoryview(b"")
    names = pa.array(
        [
            f'{_text(device)},"measurement":{_text(measurement)},"count":'
            for measurement, device in grid.series
        ]
    )
    count, *values = _numbers(grid.count, list(grid.values.values()))
    parts: list[pa.Array | pa.Scalar] = [
        _spans(grid.starts_us, ends_us).take(pa.array(np.tile(np.arange(per_series), series))),
        names.take(pa.array(np.repeat(np.arange(series), per_series))),
        count,
    ]
    opening = ',"values":{'
    for name, text in zip(grid.values, values, strict=True):
        parts += [pa.scalar(f"{opening}{_text(name)}:"), text]
        opening = ","
    # Every item ends in a comma, so the rows' data buffer is the items once the last comma is cut:
    # no kernel joins the rows into one string, and nothing is copied until the body is put together.
    parts.append(pa.scalar("}}," if grid.values else ',"values":{}},'))
    rows = pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="null")
    _, offsets, data = rows.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[[rows.offset, rows.offset + len(rows)]].tolist()
    return memoryview(data)[bounds[0] : bounds[1] - 1]


def _spans(starts_us: npt.NDArray[np.int64], ends_us: npt.NDArray[np.int64]) -> pa.Array:
    """The start and end of each bucket as the item's opening, times as `to_rfc3339` writes them."""
    # Buckets mostly end where the next starts: then each time is formatted once.
    if np.array_equal(starts_us[1:], ends_us[:-1]):
        text = _rfc3339(np.append(starts_us, ends_us[-1:]))
        starts, ends = text[:-1], text[1:]
    else:
        starts, ends = _rfc3339(starts_us), _rfc3339(ends_us)
    return pa.array([f'{{"start":"{s}Z","end":"{e}Z","device":' for s, e in zip(starts, ends, strict=True)])


def _rfc3339(us: npt.NDArray[np.int64]) -> list[str]:
    """What `to_rfc3339` writes but its "Z", for many times at once: microseconds only where there are any."""
    times = us.astype("datetime64[us]")
    text: list[str] = np.datetime_as_string(times, unit="s").tolist()
    for i in np.flatnonzero(us % 1_000_000).tolist():
        text[i] = str(np.datetime_as_string(times[i], unit="us"))
    return text


def _numbers(count: npt.NDArray[np.int64], columns: list[npt.NDArray[np.float64]]) -> list[pa.Array]:
    """The counts, then each column, as JSON numbers: shortest round-trip text, null where a value is
    NaN or infinite (left null for the join to write)."""
    # One cast for counts and values alike: each Arrow kernel costs ~20 µs however short its input
    # (twice that when its code has gone cold), and the checks are numpy's for the same reason.
    # Counts are whole, so exact as floats (below 2**53) and written without a fraction.
    size = len(count)
    floats = np.concatenate([count.astype(np.float64), *columns])
    finite = np.isfinite(floats)
    text = pc.cast(pa.array(floats, mask=~finite), pa.string())
    # Arrow writes 2.0 as "2", which JSON readers take for an integer. Measured values are seldom
    # whole, so the regular expression that finds them runs only when one is.
    values = floats[size:][finite[size:]]
    if np.any(np.floor(values) == values):
        rest = text.slice(size)
        rest = pc.if_else(
            pc.match_substring_regex(rest, _INTEGRAL), pc.binary_join_element_wise(rest, ".0", ""), rest
        )
        text = pa.concat_arrays([text.slice(0, size), rest])
    return [text.slice(i * size, size) for i in range(1 + len(columns))]


def _text(value: str | None) -> str:
    """A JSON string (or null), non-ASCII kept as is, as pydantic writes it."""
    return "null" if value is None else encode_basestring(value)
