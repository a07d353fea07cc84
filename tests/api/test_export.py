"""GET /api/v1/export: the seeded readings as CSV, NDJSON and Parquet, whatever the page size."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from httpx import AsyncClient

from midika.timeutil import to_rfc3339
from tests.api.conftest import HOURS, T0, Seed

pytestmark = pytest.mark.anyio

WINDOW = {"trial": "alpha", "start": "2026-07-01T00:00:00Z", "end": f"2026-07-01T{HOURS:02d}:00:00Z"}


def _iso(ts: Any) -> str:
    return str(ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


async def _export(client: AsyncClient, **params: Any) -> bytes:
    response = await client.get("/api/v1/export", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture(params=[7, 50_000], ids=["pages of 7", "one page"])
def page_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    # Keyset pages (InfluxDB) and DuckDB's tables alike: a table can end inside a (time, device) row.
    size: int = request.param
    monkeypatch.setattr("api.export.EXPORT_PAGE", size)
    monkeypatch.setattr("api.export.EXPORT_BATCH", size)
    return size


async def test_csv_is_wide_with_units_in_the_header(client: AsyncClient, seed: Seed, page_size: int) -> None:
    response = await client.get("/api/v1/export", params=WINDOW)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="alpha_20260701T000000Z-20260701T060000Z.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert rows[0] == [
        "time", "device", "site", "label [/]", "persons [count]", "water_temp [Cel]", "wave_height [m]"
    ]  # fmt: skip
    readings = seed.readings_of("alpha")
    keys = sorted({(r.ts, r.device) for r in readings})
    assert [(row[0], row[1]) for row in rows[1:]] == [(_iso(ts), device) for ts, device in keys]
    cells = {
        (row[0], row[1], column): value
        for row in rows[1:]
        for column, value in zip(rows[0], row, strict=True)
    }
    for r in readings:
        column = next(h for h in rows[0] if h.startswith(r.measurement + " ["))
        cell = cells[(_iso(r.ts), r.device, column)]
        if r.text is not None:
            assert cell == r.text
        else:
            assert float(cell) == r.value, r
            assert r.measurement != "persons" or cell.isdigit(), "int measurements are written as integers"
    assert sum(1 for v in cells.values() if v != "") == len(readings) + 3 * (len(rows) - 1)


async def test_csv_filters_by_device_site_and_measurement(
    client: AsyncClient, seed: Seed, page_size: int
) -> None:
    body = await _export(client, site="offshore", measurement="wave_height")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["time", "device", "site", "wave_height [m]"]
    assert len(rows) - 1 == sum(1 for r in seed.readings_of("alpha") if r.measurement == "wave_height")
    assert {row[2] for row in rows[1:]} == {"offshore"}


async def test_ndjson_has_one_reading_a_line(client: AsyncClient, seed: Seed, page_size: int) -> None:
    body = await _export(client, format="ndjson", device="buoy-1")
    lines = [json.loads(line) for line in body.decode().splitlines()]
    readings = [r for r in seed.readings_of("alpha") if r.device == "buoy-1"]
    assert len(lines) == len(readings)
    first = lines[0]
    assert first == {
        "trial": "alpha",
        "device": "buoy-1",
        "site": "offshore",
        "measurement": readings[0].measurement,
        "unit": "Cel" if readings[0].measurement == "water_temp" else "m",
        "ts": _iso(readings[0].ts),
        "ingest_ts": _iso(readings[0].ingest_ts),
        "value": readings[0].value,
        "text": None,
        "seq": readings[0].seq,
        "quality": [],
    }
    assert ["no_device_time", "clock_suspect"] in [line["quality"] for line in lines]


async def test_parquet_round_trips(client: AsyncClient, seed: Seed, page_size: int) -> None:
    body = await _export(client, format="parquet")
    table = pq.read_table(io.BytesIO(body))
    readings = seed.readings_of("alpha")
    assert table.num_rows == len(readings)
    assert table["value"].to_pylist() == [r.value for r in readings]
    assert table["ts"].to_pylist() == [r.ts for r in readings]
    assert set(table["unit"].to_pylist()) == {"Cel", "m", "count", "/"}


async def test_an_empty_range_exports_a_header_or_nothing(client: AsyncClient) -> None:
    window = {"start": to_rfc3339(T0.replace(year=2020)), "end": to_rfc3339(T0.replace(year=2021))}
    assert (await _export(client, **window)).decode().count("\n") == 1
    assert await _export(client, format="ndjson", **window) == b""
    assert pq.read_table(io.BytesIO(await _export(client, format="parquet", **window))).num_rows == 0
