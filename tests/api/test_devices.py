"""GET /api/v1/trials/{trial}/devices."""

from __future__ import annotations

from datetime import datetime

import pytest
from httpx import AsyncClient

from tests.api.conftest import Seed

pytestmark = pytest.mark.anyio


def _last_seen(seed: Seed, device: str) -> datetime:
    times = [r.ingest_ts for r in seed.readings if r.device == device]
    times += [e.ingest_ts for e in seed.events if e.device == device]
    times += [s.ingest_ts for s in seed.status if s.device == device]
    return max(times)


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def test_devices_have_status_from_latest_status_message(client: AsyncClient, seed: Seed) -> None:
    response = await client.get("/api/v1/trials/alpha/devices")
    assert response.status_code == 200
    devices = {d["id"]: d for d in response.json()["items"]}
    assert list(devices) == ["buoy-1", "buoy-2", "cam-1", "cam-2"]

    buoy1 = devices["buoy-1"]
    assert (buoy1["status"], buoy1["online"]) == ("online", True)
    assert (buoy1["battery"], buoy1["rssi"], buoy1["firmware"]) == (3.7, -71.0, "1.2.0")
    assert (buoy1["profile"], buoy1["site"]) == ("buoy", "offshore")
    assert _ts(buoy1["last_seen"]) == _last_seen(seed, "buoy-1")

    # Its last status was the broker's last will.
    assert (devices["buoy-2"]["status"], devices["buoy-2"]["online"]) == ("offline", False)
    assert _ts(devices["buoy-2"]["last_seen"]) == _last_seen(seed, "buoy-2")

    # Readings but never a status message.
    assert (devices["cam-1"]["status"], devices["cam-1"]["online"]) == ("unknown", None)
    assert _ts(devices["cam-1"]["last_seen"]) == _last_seen(seed, "cam-1")

    # Nothing at all.
    assert devices["cam-2"]["status"] == "unknown"
    assert devices["cam-2"]["last_seen"] is None
    assert devices["cam-2"]["battery"] is None


async def test_devices_of_another_trial_are_its_own(client: AsyncClient) -> None:
    items = (await client.get("/api/v1/trials/beta/devices")).json()["items"]
    assert [(d["id"], d["status"]) for d in items] == [("wx-1", "unknown")]
    assert items[0]["last_seen"] is not None
