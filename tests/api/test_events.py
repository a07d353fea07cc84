"""GET /api/v1/events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from midika.timeutil import to_rfc3339
from tests.api.conftest import T0, Seed

pytestmark = pytest.mark.anyio


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str, datetime]]:
    return [(i["device"], i["type"], datetime.fromisoformat(i["ts"])) for i in items]


async def test_events_in_order_with_their_data(client: AsyncClient, seed: Seed) -> None:
    response = await client.get("/api/v1/events", params={"trial": "alpha"})
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert body["items"] == [
        {
            "trial": "alpha",
            "device": e.device,
            "type": e.type,
            "ts": to_rfc3339(e.ts),
            "ingest_ts": to_rfc3339(e.ingest_ts),
            "data": e.data,
            "seq": e.seq,
        }
        for e in sorted(seed.events, key=lambda e: (e.ts, e.device, e.type))
    ]


async def test_events_filtered_by_type_and_window(client: AsyncClient, seed: Seed) -> None:
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    params = {"trial": "alpha", "type": "RIP_DETECTED", "start": to_rfc3339(start), "end": to_rfc3339(end)}
    items = (await client.get("/api/v1/events", params=params)).json()["items"]
    expected = [
        (e.device, e.type, e.ts) for e in seed.events if e.type == "RIP_DETECTED" and start <= e.ts < end
    ]
    assert expected
    assert _keys(items) == expected


async def test_events_paginate(client: AsyncClient, seed: Seed) -> None:
    url: str | None = "/api/v1/events?trial=alpha&device=cam-1&limit=3"
    seen: list[tuple[str, str, datetime]] = []
    while url is not None:
        body = (await client.get(url)).json()
        assert len(body["items"]) <= 3
        seen.extend(_keys(body["items"]))
        url = body["next"]
    assert seen == [(e.device, e.type, e.ts) for e in seed.events]


async def test_unknown_event_type_lists_valid_ones(client: AsyncClient) -> None:
    response = await client.get("/api/v1/events", params={"trial": "alpha", "type": "VESSEL"})
    assert response.status_code == 400
    assert "RIP_CLEARED, RIP_DETECTED" in response.json()["error"]["message"]


async def test_trial_without_events_is_empty(client: AsyncClient) -> None:
    body = (await client.get("/api/v1/events", params={"trial": "beta"})).json()
    assert body == {"items": [], "next_cursor": None, "next": None}


async def test_a_readings_cursor_is_not_an_events_cursor(client: AsyncClient) -> None:
    page = (await client.get("/api/v1/readings", params={"trial": "alpha", "limit": 2})).json()
    assert page["next_cursor"]
    response = await client.get("/api/v1/events", params={"trial": "alpha", "cursor": page["next_cursor"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("query parameter 'cursor': ")
    assert error["details"][0]["parameter"] == "cursor"
