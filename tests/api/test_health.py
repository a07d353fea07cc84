"""GET /api/v1/health."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from midika import __version__

pytestmark = pytest.mark.anyio


async def test_health_reports_ok_version_and_trials(client: AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "reachable", "version": __version__, "trials": 2}
