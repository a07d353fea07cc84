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


def _items(grid: BucketGrid, ends_us: npt.NDArray[np.int64]) -> bytes:
    """The items of the body, comma-separated, without the enclosing brackets."""
    per_series = len(grid.starts_us)
    cells = len(grid.series) * per_series
    if cells == 0:
        return b""
    times = _spans(grid.starts_us, ends_us)
    names = pa.array(
        [
            f'{_text(device)},"measurement":{_text(measurement)},"count":'
            for measurement, device in grid.series
        ]
    )
    parts: list[pa.Array | pa.Scalar] = [
        times.take(np.tile(np.arange(per_series), len(grid.series))),
        names.take(np.repeat(np.arange(len(grid.series)), per_series)),
        pc.cast(pa.array(grid.count), pa.string()),
    ]
    opening = ',"values":{'
    for name, values in zip(grid.values, _numbers(list(grid.values.values())), strict=True):
        parts += [pa.scalar(f"{opening}{_text(name)}:"), values]
        opening = ","
    parts.append(pa.scalar("}}" if grid.values else ',"values":{}}'))
    rows = pc.binary_join_element_wise(*parts, "")
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, cells], pa.int32()), rows), ",")[0]
    return joined.as_buffer().to_pybytes()  # type: ignore[no-any-return]


def _spans(starts_us: npt.NDArray[np.int64], ends_us: npt.NDArray[np.int64]) -> pa.Array:
    """The start and end of each bucket as the item's opening, times as `to_rfc3339` writes them."""
    starts, ends = _rfc3339(starts_us), _rfc3339(ends_us)
    return pa.array([f'{{"start":"{s}","end":"{e}","device":' for s, e in zip(starts, ends, strict=True)])


def _rfc3339(us: npt.NDArray[np.int64]) -> list[str]:
    """What `to_rfc3339` writes, for many times at once: microseconds only where there are any."""
    times = us.astype("datetime64[us]")
    text: list[str] = np.char.add(np.datetime_as_string(times, unit="s"), "Z").tolist()
    for i in np.flatnonzero(us % 1_000_000).tolist():
        text[i] = f"{np.datetime_as_string(times[i], unit='us')}Z"
    return text


def _numbers(columns: list[pa.Array]) -> list[pa.Array]:
    """Each float of each column as JSON: its shortest round-trip text, null for null, NaN and infinity."""
    if not columns:
        return []
    # One cast for all the columns: each Arrow kernel costs ~20 µs however short its input, and
    # the checks are numpy's for the same reason.
    floats = np.concatenate([column.to_numpy(zero_copy_only=False) for column in columns])  # null: NaN
    finite = np.isfinite(floats)
    text = pc.cast(pa.array(floats, mask=~finite), pa.string())
    # Arrow writes 2.0 as "2", which JSON readers take for an integer. Measured values are seldom
    # whole, so the regular expression that finds them runs only when one is.
    if np.any(np.floor(floats[finite]) == floats[finite]):
        integral = pc.match_substring_regex(text, _INTEGRAL)
        text = pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)
    text = pc.fill_null(text, "null")
    size = len(columns[0])
    return [text.slice(i * size, size) for i in range(len(columns))]


def _text(value: str | None) -> str:
    """A JSON string (or null), non-ASCII kept as is, as pydantic writes it."""
    return "null" if value is None else encode_basestring(value)
