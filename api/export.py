"""Exports: a trial's readings as CSV, NDJSON or Parquet, streamed table by table in constant memory.

Tables come from the store's `reading_batches` where it has one (DuckDB: consecutive windows of
time, EXPORT_BATCH readings a table), else from `Store.reading_table` (keyset pages of EXPORT_PAGE
readings); each is written out and dropped, so memory stays bounded whatever the time range.

CSV is wide, for spreadsheets: one row per (time, device), one column per measurement with its
unit in the header (`water_temp [Cel]`), one value per cell, times ISO 8601 in UTC. A page can end
inside a (time, device) row, so its last row waits for the next page. NDJSON and Parquet are long
and lossless: one record per reading, with unit, ingest time, sequence number and quality flags.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from api.schemas import quality_names
from midika.models.records import Quality
from midika.models.trial import Trial, ValueType
from midika.store.base import READING_SCHEMA, ReadingQuery, Store

EXPORT_PAGE = 50_000  # readings per keyset page, for stores without `reading_batches`
EXPORT_BATCH = 10_000  # readings per table from `reading_batches`


@runtime_checkable
class ReadingBatches(Protocol):
    """A store that hands out a range of readings as a stream of bounded tables."""

    def reading_batches(self, query: ReadingQuery, *, rows: int) -> Iterator[pa.Table]:
        """Every reading of `query` in [start, end) in order, in tables of at most `rows`."""
        ...


class ExportFormat(StrEnum):
    """What an export is written as."""

    CSV = "csv"
    NDJSON = "ndjson"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        """The Content-Type of an export in this format."""
        return {
            ExportFormat.CSV: "text/csv; charset=utf-8",
            ExportFormat.NDJSON: "application/x-ndjson",
            ExportFormat.PARQUET: "application/vnd.apache.parquet",
        }[self]


def tables(store: Store, query: ReadingQuery) -> Iterator[pa.Table]:
    """Every reading of `query` in order, a bounded table at a time; at least one table, maybe empty."""
    if isinstance(store, ReadingBatches) and query.start is not None and query.end is not None:
        batches = store.reading_batches(query, rows=EXPORT_BATCH)
        # A Parquet file needs a table to take its schema from, even with no readings.
        first = next(batches, None)
        return itertools.chain([READING_SCHEMA.empty_table() if first is None else first], batches)
    return pages(store, query)


def pages(store: Store, query: ReadingQuery) -> Iterator[pa.Table]:
    """Every keyset page of `query`."""
    page = store.reading_table(dataclasses.replace(query, limit=EXPORT_PAGE))
    while True:
        yield page.table
        if page.next_cursor is None:
            return
        page = store.reading_table(dataclasses.replace(query, limit=EXPORT_PAGE, cursor=page.next_cursor))


def stream(
    fmt: ExportFormat, trial: Trial, measurements: list[str], tables: Iterator[pa.Table]
) -> Iterator[bytes]:
    """The bytes of an export of `tables` in `fmt`."""
    if fmt is ExportFormat.CSV:
        return _csv(trial, measurements, tables)
    if fmt is ExportFormat.NDJSON:
        return _ndjson(trial, tables)
    return _parquet(trial, tables)


def _sites(trial: Trial, devices: pa.Array) -> pa.Array:
    ids = [d.id for d in trial.devices]
    return pc.take(pa.array([d.site for d in trial.devices]), pc.index_in(devices, pa.array(ids)))


def _iso(ts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """UTC times as ISO 8601 text with microseconds: 2026-07-01T00:00:00.000000Z."""
    # Arrow's cast prints "2026-07-01 00:00:00.000000" 25x faster than its strftime formats it;
    # the zone is dropped first, or the cast appends it.
    text = pc.cast(pc.cast(ts, pa.timestamp("us")), pa.string())
    return pc.binary_join_element_wise(pc.replace_substring(text, " ", "T", max_replacements=1), "Z", "")


def _units(trial: Trial) -> dict[str, tuple[str, ValueType]]:
    return {m.name: (m.unit, m.type) for p in trial.profiles for m in p.measurements}


def _csv(trial: Trial, measurements: list[str], tables: Iterator[pa.Table]) -> Iterator[bytes]:
    units = _units(trial)
    header = ["time", "device", "site", *(f"{m} [{units[m][0]}]" for m in measurements)]
    yield (",".join(_csv_cell(h) for h in header) + "\n").encode("utf-8")
    held: pa.Table | None = None
    options = pacsv.WriteOptions(include_header=False)
    for table in tables:
        rows = table if held is None else pa.concat_tables([held, table])
        wide, held = _pivot(trial, measurements, units, rows, keep_last=True)
        if wide is not None:
            out = io.BytesIO()
            pacsv.write_csv(wide, out, options)
            yield out.getvalue()
    if held is not None:
        wide, _ = _pivot(trial, measurements, units, held, keep_last=False)
        if wide is not None:
            out = io.BytesIO()
            pacsv.write_csv(wide, out, options)
            yield out.getvalue()


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _pivot(
    trial: Trial,
    measurements: list[str],
    units: dict[str, tuple[str, ValueType]],
    rows: pa.Table,
    *,
    keep_last: bool,
) -> tuple[pa.Table | None, pa.Table | None]:
    """Rows sorted by (ts, device, measurement) as one row per (ts, device); with `keep_last`, the
    last (ts, device) is returned apart, as the next page may hold more of it."""
    n = rows.num_rows
    if n == 0:
        return None, None
    ts = rows["ts"].combine_chunks().cast(pa.int64()).to_numpy()
    device_codes = rows["device"].combine_chunks().dictionary_encode()
    codes = device_codes.indices.to_numpy(zero_copy_only=False)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    starts[1:] = (ts[1:] != ts[:-1]) | (codes[1:] != codes[:-1])
    group = np.cumsum(starts) - 1
    groups = int(group[-1]) + 1
    held = None
    if keep_last:
        first_of_last = int(np.flatnonzero(starts)[-1])
        held = rows.slice(first_of_last)
        groups -= 1
        if groups == 0:
            return None, held
        rows, group = rows.slice(0, first_of_last), group[:first_of_last]
        ts, starts = ts[:first_of_last], starts[:first_of_last]
    heads = np.flatnonzero(starts)
    first = rows.take(pa.array(heads))
    columns: dict[str, pa.Array] = {
        "time": _iso(first["ts"]),
        "device": first["device"],
        "site": _sites(trial, first["device"].combine_chunks()),
    }
    names = rows["measurement"].combine_chunks().to_numpy(zero_copy_only=False)
    values = rows["value"].combine_chunks().to_numpy(zero_copy_only=False)
    texts = rows["text"].combine_chunks()
    for m in measurements:
        mask = names == m
        where = group[mask]
        unit_type = units[m][1]
        header = f"{m} [{units[m][0]}]"
        if unit_type is ValueType.STR:
            cells = np.full(groups, None, dtype=object)
            cells[where] = np.asarray(texts.filter(pa.array(mask)).to_pylist(), dtype=object)
            columns[header] = pa.array(cells, pa.string())
            continue
        numbers = np.full(groups, np.nan)
        numbers[where] = values[mask]
        missing = np.isnan(numbers)
        if unit_type in (ValueType.INT, ValueType.BOOL):
            columns[header] = pa.array(np.where(missing, 0, numbers).astype(np.int64), mask=missing)
        else:
            columns[header] = pa.array(numbers, mask=missing)
    return pa.table(columns), held


def _long(trial: Trial, table: pa.Table) -> pa.Table:
    units = _units(trial)
    names = list(units)
    unit = pc.take(pa.array([units[n][0] for n in names]), pc.index_in(table["measurement"], pa.array(names)))
    return pa.table(
        {
            "trial": pa.array([trial.id] * table.num_rows, pa.string()),
            "device": table["device"],
            "site": _sites(trial, table["device"].combine_chunks()),
            "measurement": table["measurement"],
            "unit": unit,
            "ts": table["ts"],
            "ingest_ts": table["ingest_ts"],
            "value": table["value"],
            "text": table["text"],
            "seq": table["seq"],
            "quality": pa.array(
                [quality_names(Quality(q)) for q in table["quality"].to_pylist()], pa.list_(pa.string())
            ),
        }
    )


def _ndjson(trial: Trial, tables: Iterator[pa.Table]) -> Iterator[bytes]:
    for table in tables:
        if table.num_rows == 0:
            continue
        long = _long(trial, table)
        for name in ("ts", "ingest_ts"):
            long = long.set_column(long.schema.get_field_index(name), name, _iso(long[name]))
        lines = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in long.to_pylist()]
        yield ("\n".join(lines) + "\n").encode("utf-8")


class _Chunks(io.RawIOBase):
    """A write-only file the Parquet writer fills and the stream drains after each row group."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _parquet(trial: Trial, tables: Iterator[pa.Table]) -> Iterator[bytes]:
    sink = _Chunks()
    writer: pq.ParquetWriter | None = None
    for table in tables:
        long = _long(trial, table)
        if writer is None:
            writer = pq.ParquetWriter(sink, long.schema, compression="zstd")
        if long.num_rows:
            writer.write_table(long)  # one row group per page
        yield sink.drain()
    if writer is not None:
        writer.close()
    yield sink.drain()
