"""GET /api/v1/trials/{trial}/kpis over the seeded store, against figures worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.api.conftest import HOURS

pytestmark = pytest.mark.anyio

WINDOW = {"start": "2026-07-01T00:00:00Z", "end": f"2026-07-01T{HOURS:02d}:00:00Z"}


async def _kpis(client: AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/trials/alpha/kpis", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_per_device_figures(client: AsyncClient) -> None:
    body = await _kpis(client)
    devices = {d["device"]: d for d in body["devices"]}
    assert list(devices) == ["buoy-1", "buoy-2", "cam-1", "cam-2"]

    buoy = devices["buoy-1"]
    assert [(m["measurement"], m["received"], m["expected"]) for m in buoy["measurements"]] == [
        ("water_temp", 36, 36),  # every 10 minutes for 6 hours
        ("wave_height", 12, 12),
    ]
    assert buoy["completeness"] == 1.0
    assert buoy["uptime"] == 1.0
    assert buoy["latency_p50_s"] == buoy["latency_p95_s"] == 2.0  # every reading arrived 2 s late
    assert buoy["flagged_share"] == pytest.approx(1 / 48)
    assert buoy["events"] == {}

    cam = devices["cam-1"]
    # persons every 5 minutes (72 of 72), label hourly but only 3 of 6 sent.
    assert (cam["received"], cam["expected"]) == (75, 78)
    assert cam["completeness"] == pytest.approx(75 / 78)
    assert cam["events"] == {"RIP_CLEARED": 3, "RIP_DETECTED": 4}

    silent = devices["cam-2"]
    assert (silent["received"], silent["completeness"], silent["uptime"]) == (0, 0.0, 0.0)
    assert silent["latency_p50_s"] is None and silent["flagged_share"] is None


async def test_trial_totals(client: AsyncClient) -> None:
    totals = (await _kpis(client))["totals"]
    assert totals["expected"] == 2 * (36 + 12) + 2 * (72 + 6)
    assert totals["received"] == 2 * 48 + 75
    assert totals["completeness"] == pytest.approx((2 * 48 + 75) / (2 * 48 + 2 * 78))
    assert totals["uptime"] == pytest.approx(3 / 4)
    assert totals["flagged_share"] == pytest.approx(2 / (2 * 48 + 75))
    assert totals["events"] == {"RIP_CLEARED": 3, "RIP_DETECTED": 4}
    assert totals["latency_p95_s"] == 2.0


async def test_half_a_slot_of_silence_lowers_uptime(client: AsyncClient) -> None:
    # Two more hours past the data: 6 of 8 hourly slots have readings.
    body = await _kpis(client, end=f"2026-07-01T{HOURS + 2:02d}:00:00Z", site="offshore")
    assert [d["device"] for d in body["devices"]] == ["buoy-1", "buoy-2"]
    assert {d["uptime"] for d in body["devices"]} == {6 / 8}


async def test_window_over_400_days_says_how_to_narrow(client: AsyncClient) -> None:
    response = await client.get(
        "/api/v1/trials/alpha/kpis", params={"start": "2025-01-01T00:00:00Z", "end": "2026-07-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert "shorter start..end" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("start", "end"),
    [("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"), ("9999-12-30T00:00:00Z", "9999-12-31T23:00:00Z")],
)
async def test_a_window_at_the_ends_of_the_calendar_has_nothing_and_no_error(
    client: AsyncClient, start: str, end: str
) -> None:
    # In Tokyo the first slot of year 1 starts in year 0, which no datetime holds.
    response = await client.get("/api/v1/trials/alpha/kpis", params={"start": start, "end": end})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totals"]["uptime"] == 0.0
    assert all(d["received"] == 0 for d in body["devices"])
