"""GET /api/v1/readings/aggregate, checked against aggregates computed here from the seeded data.

The test trial "alpha" runs in Asia/Tokyo (the default), so buckets align to JST: a day starts at
15:00 UTC, and 2-hour buckets start on odd UTC hours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from midika.timeutil import to_rfc3339
from tests.api.conftest import HOURS, T0, Seed

pytestmark = pytest.mark.anyio

JST = timedelta(hours=9)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW = {"start": to_rfc3339(T0), "end": to_rfc3339(T0 + timedelta(hours=HOURS))}
URL = "/api/v1/readings/aggregate"

Row = tuple[str, str | None, datetime, int, dict[str, float | None]]


def _start(ts: datetime, bucket: timedelta) -> datetime:
    return EPOCH + (ts + JST - EPOCH) // bucket * bucket - JST


def _expected(
    seed: Seed,
    *,
    bucket: timedelta,
    series: Sequence[tuple[str, str | None]],
    start: datetime = T0,
    end: datetime = T0 + timedelta(hours=HOURS),
) -> list[Row]:
    """Every bucket of [start, end) for each of `series`, with mean, min and max."""
    groups: dict[tuple[str, str | None, datetime], list[float]] = defaultdict(list)
    pooled = all(device is None for _, device in series)
    for r in seed.readings_of("alpha"):
        key = (r.measurement, None if pooled else r.device)
        if key in series and r.value is not None and start <= r.ts < end:
            groups[(*key, _start(r.ts, bucket))].append(r.value)
    starts = []
    at = _start(start, bucket)
    while at < end:
        starts.append(at)
        at += bucket
    rows: list[Row] = []
    for measurement, device in sorted(series, key=lambda s: (s[0], s[1] or "")):
        for s in starts:
            v = groups.get((measurement, device, s), [])
            stats: dict[str, float | None] = dict.fromkeys(("mean", "min", "max"))
            if v:
                stats = {"mean": sum(v) / len(v), "min": min(v), "max": max(v)}
            rows.append((measurement, device, s, len(v), stats))
    return rows


def _got(body: dict[str, Any]) -> list[Row]:
    return [
        (i["measurement"], i["device"], datetime.fromisoformat(i["start"]), i["count"], i["values"])
        for i in body["items"]
    ]


def _same(got: list[Row], expected: list[Row]) -> None:
    assert [g[:4] for g in got] == [e[:4] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[4].keys() == e[4].keys()
        for name, want in e[4].items():
            have = g[4][name]
            assert (have is None) == (want is None), (g, e)
            assert have is None or want is None or math.isclose(have, want, rel_tol=1e-9), (g, e)


BUOYS = [(m, d) for m in ("water_temp", "wave_height") for d in ("buoy-1", "buoy-2")]


@pytest.mark.parametrize(("bucket", "size"), [("1h", timedelta(hours=1)), ("20m", timedelta(minutes=20))])
async def test_per_device_buckets_match_computed(
    client: AsyncClient, seed: Seed, bucket: str, size: timedelta
) -> None:
    params = {
        "trial": "alpha",
        **WINDOW,
        "bucket": bucket,
        "measurement": ["water_temp", "wave_height"],
        "site": "offshore",
    }
    response = await client.get(URL, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket_seconds"] == int(size.total_seconds())
    assert (body["bucket"], body["timezone"], body["functions"]) == (
        bucket,
        "Asia/Tokyo",
        ["mean", "min", "max"],
    )
    _same(_got(body), _expected(seed, bucket=size, series=BUOYS))
    assert all(
        datetime.fromisoformat(i["end"]) - datetime.fromisoformat(i["start"]) == size for i in body["items"]
    )


async def test_pooled_buckets_align_to_local_even_hours(client: AsyncClient, seed: Seed) -> None:
    params = {"trial": "alpha", **WINDOW, "bucket": "2h", "measurement": "water_temp", "per_device": "false"}
    body = (await client.get(URL, params=params)).json()
    assert all(item["device"] is None for item in body["items"])
    assert {datetime.fromisoformat(i["start"]).hour % 2 for i in body["items"]} == {1}, "odd UTC = even JST"
    _same(_got(body), _expected(seed, bucket=timedelta(hours=2), series=[("water_temp", None)]))


async def test_a_day_starts_at_midnight_in_tokyo(client: AsyncClient, seed: Seed) -> None:
    params = {"trial": "alpha", **WINDOW, "bucket": "1d", "device": "cam-1", "measurement": "persons"}
    body = (await client.get(URL, params=params)).json()
    [item] = body["items"]
    assert item["start"] == "2026-06-30T15:00:00Z"
    assert item["end"] == "2026-07-01T15:00:00Z"
    assert item["count"] == HOURS * 12
    _same(_got(body), _expected(seed, bucket=timedelta(days=1), series=[("persons", "cam-1")]))


async def test_silent_devices_and_gaps_are_reported_as_empty_buckets(client: AsyncClient) -> None:
    # cam-2 never sent anything; the window runs two hours past the data.
    end = T0 + timedelta(hours=HOURS + 2)
    params: dict[str, Any] = {
        "trial": "alpha",
        "start": WINDOW["start"],
        "end": to_rfc3339(end),
        "bucket": "1h",
    }
    params |= {"measurement": "persons", "fn": ["count", "sum", "p50"]}
    body = (await client.get(URL, params=params)).json()
    assert [(i["device"], i["count"] > 0) for i in body["items"]] == [("cam-1", True)] * HOURS + [
        ("cam-1", False)
    ] * 2 + [("cam-2", False)] * (HOURS + 2)
    assert body["functions"] == ["sum", "p50"]
    assert all(i["values"] == {"sum": None, "p50": None} for i in body["items"] if i["count"] == 0)


async def test_every_function_and_percentile(client: AsyncClient, seed: Seed) -> None:
    params: dict[str, Any] = {"trial": "alpha", **WINDOW, "bucket": "1d", "device": "buoy-1"}
    params |= {"measurement": "water_temp"}
    params |= {"fn": ["mean", "min", "max", "count", "sum", "first", "last", "p50", "p90", "p95", "p99"]}
    params |= {"percentile": ["99.9", "25"]}
    body = (await client.get(URL, params=params)).json()
    [item] = body["items"]
    readings = [
        r for r in seed.readings_of("alpha") if r.device == "buoy-1" and r.measurement == "water_temp"
    ]
    values = sorted(r.value for r in readings if r.value is not None)

    def rank(p: float) -> float:
        return values[max(1, math.floor(len(values) * p / 100 + 0.5)) - 1]

    assert item["count"] == len(values)
    assert item["values"] == pytest.approx(
        {
            "mean": sum(values) / len(values),
            "min": values[0],
            "max": values[-1],
            "sum": sum(values),
            "first": readings[0].value,
            "last": readings[-1].value,
            **{f"p{p:g}": rank(p) for p in (50, 90, 95, 99, 99.9, 25)},
        }
    )


async def test_calendar_months(client: AsyncClient) -> None:
    params: dict[str, Any] = {
        "trial": "alpha",
        "start": "2026-05-20T00:00:00Z",
        "end": "2026-08-01T00:00:00Z",
    }
    params |= {"bucket": "month", "device": "buoy-1", "measurement": "water_temp"}
    body = (await client.get(URL, params=params)).json()
    assert body["bucket"] == "month" and body["bucket_seconds"] is None
    assert [(i["start"], i["end"], i["count"] > 0) for i in body["items"]] == [
        ("2026-04-30T15:00:00Z", "2026-05-31T15:00:00Z", False),
        ("2026-05-31T15:00:00Z", "2026-06-30T15:00:00Z", False),
        ("2026-06-30T15:00:00Z", "2026-07-31T15:00:00Z", True),
        ("2026-07-31T15:00:00Z", "2026-08-31T15:00:00Z", False),
    ]


@pytest.mark.parametrize("bucket", ["30s", "59s", "0m", "32d", "1w", "h", "1.5h", "-1h", "months"])
async def test_bucket_outside_1m_to_31d_or_malformed_is_400(client: AsyncClient, bucket: str) -> None:
    response = await client.get(URL, params={"trial": "alpha", **WINDOW, "bucket": bucket})
    assert response.status_code == 400, bucket
    assert response.json()["error"]["message"].startswith("query parameter 'bucket': ")


async def test_60s_is_one_minute(client: AsyncClient) -> None:
    response = await client.get(URL, params={"trial": "alpha", **WINDOW, "bucket": "60s"})
    assert response.status_code == 200
    assert response.json()["bucket_seconds"] == 60
    assert response.json()["bucket"] == "1m"


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
    response = await client.get(URL, params=params)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "525600 buckets" in message
    assert "100000" in message
    assert "larger bucket" in message


async def test_limit_counts_series_of_numeric_measurements(client: AsyncClient) -> None:
    # 15 days of minutes is 21,600 buckets per series.
    base = {"trial": "alpha", "start": "2026-07-01T00:00:00Z", "end": "2026-07-16T00:00:00Z", "bucket": "1m"}
    one = await client.get(URL, params={**base, "device": "buoy-1", "measurement": "water_temp"})
    assert one.status_code == 200
    # Per device: buoy-1, buoy-2 × water_temp, wave_height and cam-1, cam-2 × persons; `label` is text.
    every = await client.get(URL, params=base)
    assert every.status_code == 400
    assert "21600 buckets × 6 series = 129600 values" in every.json()["error"]["message"]
    # Pooled: water_temp, wave_height, persons.
    pooled = await client.get(URL, params={**base, "per_device": "false"})
    assert pooled.status_code == 200


async def test_start_and_end_are_required(client: AsyncClient) -> None:
    response = await client.get(URL, params={"trial": "alpha", "bucket": "1h"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "query parameter 'start': is required" in error["message"]
    assert "query parameter 'end': is required" in error["message"]
    assert {d["parameter"] for d in error["details"]} == {"start", "end"}


@pytest.mark.parametrize(
    ("start", "end", "bucket"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "1h"),
        ("1600-01-01T00:00:00Z", "1600-01-03T00:00:00Z", "1h"),
        ("1677-01-01T00:00:00Z", "2000-01-01T00:00:00Z", "month"),
        ("2262-04-11T00:00:00Z", "2262-04-13T00:00:00Z", "1h"),
        ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z", "1h"),
    ],
)
async def test_windows_far_from_the_data_are_empty_buckets(
    client: AsyncClient, start: str, end: str, bucket: str
) -> None:
    # Outside what InfluxDB can store (1677-09-21 to 2262-04-11) too: nothing is there, so every
    # bucket is empty, on either store.
    params = {"trial": "alpha", "start": start, "end": end, "bucket": bucket, "device": "buoy-1"}
    response = await client.get(URL, params={**params, "measurement": "water_temp"})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items and all(i["count"] == 0 and i["values"]["mean"] is None for i in items)


@pytest.mark.parametrize(
    ("start", "end"),
    [("0001-01-01T00:00:00Z", "0001-03-01T00:00:00Z"), ("9999-10-01T00:00:00Z", "9999-12-31T23:59:59Z")],
)
async def test_calendar_months_at_the_ends_of_the_calendar_are_400(
    client: AsyncClient, start: str, end: str
) -> None:
    # The month before year 1's February and after 9999's November have no UTC bounds in Python.
    params = {"trial": "alpha", "start": start, "end": end, "bucket": "month"}
    response = await client.get(URL, params=params)
    assert response.status_code == 400, response.text
    assert "0001-02-01 to 9999-12-01" in response.json()["error"]["message"]
