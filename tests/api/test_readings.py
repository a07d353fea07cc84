"""GET /api/v1/readings and /api/v1/readings/latest."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from api.schemas import QualityFlag
from midika.models.records import Quality, Reading
from midika.timeutil import to_rfc3339
from tests.api.conftest import T0, Seed

pytestmark = pytest.mark.anyio

Key = tuple[str, str, datetime]


def _key(item: dict[str, Any]) -> Key:
    return (item["device"], item["measurement"], datetime.fromisoformat(item["ts"]))


def _keys(readings: list[Reading]) -> list[Key]:
    return [(r.device, r.measurement, r.ts) for r in readings]


async def _get(client: AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/readings", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_one_page_returns_every_reading_of_the_trial_in_order(client: AsyncClient, seed: Seed) -> None:
    body = await _get(client, trial="alpha")
    expected = seed.readings_of("alpha")
    assert [_key(item) for item in body["items"]] == _keys(expected)
    assert body["next_cursor"] is None
    assert body["next"] is None


async def test_reading_fields_match_what_was_written(client: AsyncClient, seed: Seed) -> None:
    items = (await _get(client, trial="alpha", device="cam-1", measurement="label"))["items"]
    written = [r for r in seed.readings_of("alpha") if r.measurement == "label"]
    assert items == [
        {
            "trial": "alpha",
            "device": "cam-1",
            "measurement": "label",
            "ts": to_rfc3339(r.ts),
            "ingest_ts": to_rfc3339(r.ingest_ts),
            "value": None,
            "text": r.text,
            "seq": r.seq,
            "quality": [],
        }
        for r in written
    ]


async def test_pagination_walks_every_reading_exactly_once(client: AsyncClient, seed: Seed) -> None:
    expected = _keys(seed.readings_of("alpha"))
    url: str | None = "/api/v1/readings?trial=alpha&limit=7"
    seen: list[Key] = []
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 7
        seen.extend(_key(item) for item in body["items"])
        assert (body["next"] is None) == (body["next_cursor"] is None)
        url = body["next"]
        pages += 1
        assert pages <= len(expected), "pagination does not end"
    assert seen == expected
    assert pages >= len(expected) // 7


async def test_pagination_by_cursor_keeps_the_filters(client: AsyncClient, seed: Seed) -> None:
    measurements = ["water_temp", "wave_height"]
    expected = _keys(
        [r for r in seed.readings_of("alpha") if r.device == "buoy-2" and r.measurement in measurements]
    )
    params: dict[str, Any] = {"trial": "alpha", "device": "buoy-2", "measurement": measurements, "limit": 10}
    seen: list[Key] = []
    while True:
        body = await _get(client, **params)
        seen.extend(_key(item) for item in body["items"])
        if body["next_cursor"] is None:
            break
        assert "device=buoy-2" in body["next"]
        assert "measurement=water_temp&measurement=wave_height" in body["next"]
        params["cursor"] = body["next_cursor"]
    assert seen == expected


async def test_filters_by_devices_measurements_and_window(client: AsyncClient, seed: Seed) -> None:
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    body = await _get(
        client,
        trial="alpha",
        device=["buoy-1", "cam-1"],
        measurement=["water_temp", "persons"],
        start=to_rfc3339(start),
        end=to_rfc3339(end),
    )
    expected = [
        r
        for r in seed.readings_of("alpha")
        if r.device in ("buoy-1", "cam-1")
        and r.measurement in ("water_temp", "persons")
        and start <= r.ts < end
    ]
    assert expected
    assert [_key(item) for item in body["items"]] == _keys(expected)
    assert [item["value"] for item in body["items"]] == [r.value for r in expected]


async def test_times_with_an_offset_are_the_same_instant(client: AsyncClient) -> None:
    utc = await _get(client, trial="alpha", start="2026-07-01T01:00:00Z", end="2026-07-01T02:00:00Z")
    jst = await _get(
        client, trial="alpha", start="2026-07-01T10:00:00+09:00", end="2026-07-01T11:00:00+09:00"
    )
    assert utc["items"] and utc["items"] == jst["items"]


async def test_quality_filter(client: AsyncClient, seed: Seed) -> None:
    flagged = (await _get(client, trial="alpha", quality="out_of_range"))["items"]
    assert [(i["device"], i["value"], i["quality"]) for i in flagged] == [("buoy-2", 45.0, ["out_of_range"])]

    both = (await _get(client, trial="alpha", quality=["no_device_time", "clock_suspect"]))["items"]
    assert [(i["device"], i["quality"]) for i in both] == [("buoy-1", ["no_device_time", "clock_suspect"])]

    clean = (await _get(client, trial="alpha", quality="ok"))["items"]
    expected = [r for r in seed.readings_of("alpha") if r.quality == Quality.OK]
    assert [_key(item) for item in clean] == _keys(expected)


def test_every_store_quality_flag_has_a_public_name() -> None:
    assert set(QualityFlag.__members__) == set(Quality.__members__)


async def test_limit_above_the_maximum_says_the_maximum(client: AsyncClient) -> None:
    response = await client.get("/api/v1/readings", params={"trial": "alpha", "limit": 10001})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_parameter"
    assert "'limit'" in error["message"]
    assert "10000" in error["message"]


async def test_unknown_measurement_is_named_with_the_valid_ones(client: AsyncClient) -> None:
    response = await client.get(
        "/api/v1/readings", params={"trial": "alpha", "measurement": ["persons", "salinity"]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'salinity'" in error["message"]
    assert "label, persons, water_temp, wave_height" in error["message"]
    assert error["details"][0]["allowed"] == ["label", "persons", "water_temp", "wave_height"]


async def test_unknown_device_is_named_with_the_valid_ones(client: AsyncClient) -> None:
    # wx-1 exists, but in another trial.
    response = await client.get("/api/v1/readings", params={"trial": "alpha", "device": "wx-1"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'wx-1'" in message
    assert "buoy-1, buoy-2, cam-1, cam-2" in message


async def test_start_not_before_end_is_rejected(client: AsyncClient) -> None:
    response = await client.get(
        "/api/v1/readings",
        params={"trial": "alpha", "start": "2026-07-01T01:00:00Z", "end": "2026-07-01T01:00:00Z"},
    )
    assert response.status_code == 400
    assert "later than start" in response.json()["error"]["message"]


async def test_bad_time_says_what_is_expected(client: AsyncClient) -> None:
    for bad in ("yesterday", "2026-07-01", "2026-07-01T00:00:00", "1782864000"):
        response = await client.get("/api/v1/readings", params={"trial": "alpha", "start": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["message"] == (
            f"query parameter 'start': expected an RFC 3339 time such as 2026-07-01T00:00:00Z; got {bad!r}"
        )


async def test_ok_quality_cannot_be_combined(client: AsyncClient) -> None:
    response = await client.get(
        "/api/v1/readings", params={"trial": "alpha", "quality": ["ok", "out_of_range"]}
    )
    assert response.status_code == 400
    assert "'quality'" in response.json()["error"]["message"]


async def test_latest_per_device_and_measurement(client: AsyncClient, seed: Seed) -> None:
    response = await client.get("/api/v1/readings/latest", params={"trial": "alpha"})
    assert response.status_code == 200
    latest: dict[tuple[str, str], Reading] = {}
    for r in seed.readings_of("alpha"):
        latest[(r.device, r.measurement)] = r  # in ts order, so the last one wins
    items = response.json()["items"]
    got = {
        (i["device"], i["measurement"]): (datetime.fromisoformat(i["ts"]), i["value"], i["text"])
        for i in items
    }
    assert got == {k: (r.ts, r.value, r.text) for k, r in latest.items()}
    assert len(items) == len(latest)


async def test_latest_filtered(client: AsyncClient, seed: Seed) -> None:
    response = await client.get(
        "/api/v1/readings/latest", params={"trial": "alpha", "device": "buoy-2", "measurement": "wave_height"}
    )
    items = response.json()["items"]
    last = seed.readings_of("alpha")
    expected = max(
        (r for r in last if r.device == "buoy-2" and r.measurement == "wave_height"), key=lambda r: r.ts
    )
    assert [(i["device"], i["measurement"], i["value"], i["seq"]) for i in items] == [
        ("buoy-2", "wave_height", expected.value, expected.seq)
    ]


async def test_site_keeps_the_devices_at_that_site(client: AsyncClient, seed: Seed) -> None:
    body = await _get(client, trial="alpha", site="beach", limit=10_000)
    assert {item["device"] for item in body["items"]} == {"cam-1"}
    assert [_key(i) for i in body["items"]] == _keys(
        [r for r in seed.readings_of("alpha") if r.device == "cam-1"]
    )
    # With a device too, both must hold: buoy-1 is offshore, so nothing is left.
    assert (await _get(client, trial="alpha", site="beach", device="buoy-1"))["items"] == []
    latest = (
        await client.get("/api/v1/readings/latest", params={"trial": "alpha", "site": "offshore"})
    ).json()
    assert {item["device"] for item in latest["items"]} == {"buoy-1", "buoy-2"}
    events = (await client.get("/api/v1/events", params={"trial": "alpha", "site": "offshore"})).json()
    assert events["items"] == []


async def test_unknown_site_lists_the_sites(client: AsyncClient) -> None:
    response = await client.get("/api/v1/readings", params={"trial": "alpha", "site": "pier"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["allowed"] == ["beach", "offshore"]


async def test_quality_flag_filter(client: AsyncClient, seed: Seed) -> None:
    body = await _get(client, trial="alpha", quality="out_of_range")
    flagged = [r for r in seed.readings_of("alpha") if r.quality & Quality.OUT_OF_RANGE]
    assert [_key(i) for i in body["items"]] == _keys(flagged) and flagged
