"""GET /api/v1/trials and /api/v1/trials/{trial}."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

pytestmark = pytest.mark.anyio


async def test_list_trials_summarises_each(client: AsyncClient) -> None:
    response = await client.get("/api/v1/trials")
    assert response.status_code == 200
    assert response.json()["items"] == [
        {
            "id": "alpha",
            "name": "Alpha beach",
            "municipality": {"name": "御宿町", "code": "124435"},
            "domain": "disaster_prevention",
            "timezone": "Asia/Tokyo",
            "personal_data": False,
            "sites": 2,
            "devices": 4,
        },
        {
            "id": "beta",
            "name": "Beta vineyard",
            "municipality": {"name": "かほく市", "code": "172278"},
            "domain": "agriculture",
            "timezone": "Asia/Tokyo",
            "personal_data": True,
            "sites": 1,
            "devices": 1,
        },
    ]


async def test_trial_detail_has_sites_profiles_and_devices(client: AsyncClient) -> None:
    body = (await client.get("/api/v1/trials/alpha")).json()
    assert body["id"] == "alpha"
    assert [s["id"] for s in body["sites"]] == ["beach", "offshore"]
    buoy, camera = body["profiles"]
    assert buoy["measurements"][0] == {
        "name": "water_temp",
        "unit": "Cel",
        "type": "float",
        "range": [0.0, 40.0],
        "period_s": 600.0,
        "description": "",
    }
    assert camera["measurements"][1]["type"] == "str"
    assert camera["measurements"][1]["range"] is None
    assert camera["events"][0] == {
        "type": "RIP_DETECTED",
        "fields": {"confidence": "float"},
        "description": "",
    }
    assert [d["id"] for d in body["devices"]] == ["buoy-1", "buoy-2", "cam-1", "cam-2"]
    assert body["devices"][1]["location"] == {"lat": 35.1, "lon": 140.3, "depth_m": None}
    assert body["devices"][3]["description"] == "never switched on"


async def test_unknown_trial_is_404_listing_known_trials(client: AsyncClient) -> None:
    response = await client.get("/api/v1/trials/gamma")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "'gamma'" in error["message"]
    assert "alpha, beta" in error["message"]
    assert error["details"][0]["allowed"] == ["alpha", "beta"]


async def test_unknown_trial_in_query_is_404_too(client: AsyncClient) -> None:
    response = await client.get("/api/v1/readings", params={"trial": "gamma"})
    assert response.status_code == 404
    assert "alpha, beta" in response.json()["error"]["message"]
