"""GET /api/v1/readings/aggregate, checked against aggregates computed here from the seeded data."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from midika.timeutil import to_rfc3339
from tests.api.conftest import HOURS, T0, Seed

pytestmark = pytest.mark.anyio

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = {"start": to_rfc3339(T0), "end": to_rfc3339(T0 + timedelta(hours=HOURS))}


def _expected(
    seed: Seed,
    *,
    bucket: timedelta,
    measurements: set[str],
    per_device: bool,
    devices: set[str] | None = None,
) -> list[tuple[str, str | None, datetime, int, float, float, float]]:
    groups: dict[tuple[str, str | None, datetime], list[float]] = defaultdict(list)
    for r in seed.readings_of("alpha"):
        if r.measurement in measurements and r.value is not None and (devices is None or r.device in devices):
            start = EPOCH + (r.ts - EPOCH) // bucket * bucket
            groups[(r.measurement, r.device if per_device else None, start)].append(r.value)
    return [
        (m, d, s, len(v), sum(v) / len(v), min(v), max(v))
        for (m, d, s), v in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2]))
    ]


def _got(body: dict[str, Any]) -> list[tuple[str, str | None, datetime, int, float, float, float]]:
    return [
        (
            i["measurement"],
            i["device"],
            datetime.fromisoformat(i["start"]),
            i["count"],
            i["mean"],
            i["min"],
            i["max"],
        )
        for i in body["items"]
    ]


def _same(got: list[Any], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:4] == e[:4]
        assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(g[4:], e[4:], strict=True)), (g, e)


@pytest.mark.parametrize(("bucket", "size"), [("1h", timedelta(hours=1)), ("20m", timedelta(minutes=20))])
async def test_per_device_buckets_match_computed(
    client: AsyncClient, seed: Seed, bucket: str, size: timedelta
) -> None:
    params = {"trial": "alpha", **WINDOW, "bucket": bucket, "measurement": ["water_temp", "wave_height"]}
    response = await client.get("/api/v1/readings/aggregate", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket_seconds"] == int(size.total_seconds())
    _same(
        _got(body), _expected(seed, bucket=size, measurements={"water_temp", "wave_height"}, per_device=True)
    )


async def test_pooled_buckets_match_computed(client: AsyncClient, seed: Seed) -> None:
    params = {"trial": "alpha", **WINDOW, "bucket": "2h", "measurement": "water_temp", "per_device": "false"}
    body = (await client.get("/api/v1/readings/aggregate", params=params)).json()
    expected = _expected(seed, bucket=timedelta(hours=2), measurements={"water_temp"}, per_device=False)
    assert all(item["device"] is None for item in body["items"])
    _same(_got(body), expected)


async def test_device_filter_and_whole_window_bucket(client: AsyncClient, seed: Seed) -> None:
    params = {"trial": "alpha", **WINDOW, "bucket": "1d", "device": "cam-1", "measurement": "persons"}
    body = (await client.get("/api/v1/readings/aggregate", params=params)).json()
    expected = _expected(
        seed, bucket=timedelta(days=1), measurements={"persons"}, per_device=True, devices={"cam-1"}
    )
    assert len(expected) == 1 and expected[0][3] == HOURS * 12
    _same(_got(body), expected)


@pytest.mark.parametrize("bucket", ["30s", "59s", "0m", "32d", "1w", "h", "1.5h", "-1h"])
async def test_bucket_outside_1m_to_31d_or_malformed_is_400(client: AsyncClient, bucket: str) -> None:
    response = await client.get(
        "/api/v1/readings/aggregate", params={"trial": "alpha", **WINDOW, "bucket": bucket}
    )
    assert response.status_code == 400, bucket
    assert response.json()["error"]["message"].startswith("query parameter 'bucket': ")


async def test_60s_is_one_minute(client: AsyncClient) -> None:
    response = await client.get(
        "/api/v1/readings/aggregate", params={"trial": "alpha", **WINDOW, "bucket": "60s"}
    )
    assert response.status_code == 200
    assert response.json()["bucket_seconds"] == 60


async def test_too_many_buckets_says_how_to_narrow(client: AsyncClient) -> None:
    # 1 year of minutes for one series is 525,600 buckets.
    params = {
        "trial": "alpha",
        "start": "2025-07-01T00:00:00Z",
        "end": "2026-07-01T00:00:00Z",
        "bucket": "1m",
        "device": "buoy-1",
        "measurement": "water_temp",
    }
    response = await client.get("/api/v1/readings/aggregate", params=params)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "525600 buckets" in message
    assert "100000" in message
    assert "larger bucket" in message


async def test_limit_counts_series_of_numeric_measurements(client: AsyncClient) -> None:
    # 15 days of minutes is 21,600 buckets per series.
    base = {"trial": "alpha", "start": "2026-07-01T00:00:00Z", "end": "2026-07-16T00:00:00Z", "bucket": "1m"}
    url = "/api/v1/readings/aggregate"
    one = await client.get(url, params={**base, "device": "buoy-1", "measurement": "water_temp"})
    assert one.status_code == 200
    # Per device: buoy-1, buoy-2 × water_temp, wave_height and cam-1, cam-2 × persons; `label` is text.
    every = await client.get(url, params=base)
    assert every.status_code == 400
    assert "21600 buckets × 6 series = 129600 values" in every.json()["error"]["message"]
    # Pooled: water_temp, wave_height, persons.
    pooled = await client.get(url, params={**base, "per_device": "false"})
    assert pooled.status_code == 200


async def test_start_and_end_are_required(client: AsyncClient) -> None:
    response = await client.get("/api/v1/readings/aggregate", params={"trial": "alpha", "bucket": "1h"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "query parameter 'start': is required" in error["message"]
    assert "query parameter 'end': is required" in error["message"]
    assert {d["parameter"] for d in error["details"]} == {"start", "end"}
