"""The API gives the same answers from the InfluxDB store as from the DuckDB store.

Every API test runs on both stores (tests/api/conftest.py); these put the two answers side by side,
for queries whose expected answer the other tests compute only in part: every query below must
answer identically (sums and means to 1e-9, since the stores add up in their own order).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from midika.keys import KeyRing
from midika.settings import Settings
from midika.store.base import Store
from tests.api.conftest import BASE_URL, StaticTrials, bearer

pytestmark = [pytest.mark.anyio, pytest.mark.servers]

WINDOW = "start=2026-07-01T00:00:00Z&end=2026-07-01T08:00:00Z"
QUERIES = [
    f"/api/v1/readings/aggregate?trial=alpha&{WINDOW}&bucket=1h"
    "&fn=mean&fn=min&fn=max&fn=sum&fn=first&fn=last&fn=p50&fn=p90&fn=p95&fn=p99&percentile=99.9",
    f"/api/v1/readings/aggregate?trial=alpha&{WINDOW}&bucket=2h&per_device=false&fn=first&fn=last&fn=p50",
    f"/api/v1/readings/aggregate?trial=alpha&{WINDOW}&bucket=1d&site=beach&fn=count&fn=sum",
    "/api/v1/readings/aggregate?trial=alpha&start=2026-05-20T00:00:00Z&end=2026-08-01T00:00:00Z&bucket=month"
    "&fn=mean&fn=p95",
    f"/api/v1/trials/alpha/kpis?{WINDOW}",
    f"/api/v1/trials/beta/kpis?{WINDOW}",
    "/api/v1/readings?trial=alpha&quality=out_of_range",
    "/api/v1/readings?trial=alpha&site=beach&limit=7",
    "/api/v1/readings/latest?trial=alpha",
    "/api/v1/events?trial=alpha&type=RIP_DETECTED",
    "/api/v1/trials/alpha/devices",
]


@pytest.fixture
async def duckdb_client(
    duckdb_store: Store, trials: StaticTrials, api_settings: Settings, keys: KeyRing, admin_key: str
) -> AsyncIterator[AsyncClient]:
    """A client of the API over the DuckDB store."""
    async with _client(duckdb_store, trials, api_settings, keys, admin_key) as client:
        yield client


@pytest.fixture
async def influx_client(
    influx_store: Store, trials: StaticTrials, api_settings: Settings, keys: KeyRing, admin_key: str
) -> AsyncIterator[AsyncClient]:
    """A client of the API over the InfluxDB store."""
    async with _client(influx_store, trials, api_settings, keys, admin_key) as client:
        yield client


@asynccontextmanager
async def _client(
    store: Store, trials: StaticTrials, settings: Settings, keys: KeyRing, admin_key: str
) -> AsyncIterator[AsyncClient]:
    app: FastAPI = create_app(store=store, trials=trials, settings=settings, keys=keys)
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url=BASE_URL, headers=bearer(admin_key)) as client:
        yield client


def _same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a.keys() - {"next_cursor", "next"}:  # cursors are opaque and each store's own
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{n}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("url", QUERIES)
async def test_same_answer_from_both_stores(
    duckdb_client: AsyncClient, influx_client: AsyncClient, url: str
) -> None:
    duck = await duckdb_client.get(url)
    flux = await influx_client.get(url)
    assert duck.status_code == flux.status_code == 200, (duck.text, flux.text)
    body = duck.json()
    assert body != {} and any(body.get(k) for k in ("items", "devices"))
    _same(flux.json(), body, url)


async def test_health_probe_is_answered_by_both_stores(
    duckdb_client: AsyncClient, influx_client: AsyncClient
) -> None:
    # The probe is a query of one microsecond of 1970 of a trial no registry holds.
    duck = await duckdb_client.get("/api/v1/health")
    flux = await influx_client.get("/api/v1/health")
    assert duck.status_code == flux.status_code == 200, (duck.text, flux.text)
    assert duck.json() == flux.json() == {**duck.json(), "status": "ok", "store": "reachable"}
