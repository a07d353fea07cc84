"""The API over the real device registry and the shipped trial files, and the README's API examples."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from devices.registry import Registry
from midika.settings import Settings
from midika.store.duckdb import DuckDBStore
from tests.api.conftest import BASE_URL, admin_headers
from tests.conftest import REPO

pytestmark = pytest.mark.anyio

README_URL = re.compile(
    r"""curl -s -H "Authorization: Bearer \$MIDIKA_KEY" '(?:https?://[^/']+)(/api/v1/[^']+)'"""
)


@pytest.fixture
def registry(settings: Settings) -> Registry:
    """The registry over the shipped trials/ folder."""
    return Registry.from_settings(settings)


@pytest.fixture
async def shipped(settings: Settings, registry: Registry) -> AsyncIterator[AsyncClient]:
    """A client of the API over the shipped trials and an empty store."""
    settings.data_dir.mkdir(parents=True)
    store = DuckDBStore(path=settings.duckdb_file)
    app = create_app(store=store, trials=registry, settings=settings)
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url=BASE_URL, headers=admin_headers(settings)) as client:
        yield client
    store.close()


async def test_every_shipped_trial_is_served_in_full(shipped: AsyncClient, registry: Registry) -> None:
    trials = registry.trials()
    assert trials
    listed = (await shipped.get("/api/v1/trials")).json()["items"]
    assert [t["id"] for t in listed] == [t.id for t in trials]
    for trial in trials:
        body = (await shipped.get(f"/api/v1/trials/{trial.id}")).json()
        assert [d["id"] for d in body["devices"]] == [d.id for d in trial.devices]
        assert [p["id"] for p in body["profiles"]] == [p.id for p in trial.profiles]
        devices = (await shipped.get(f"/api/v1/trials/{trial.id}/devices")).json()["items"]
        # Nothing was received yet: every device is known, none has been seen.
        assert {(d["status"], d["last_seen"]) for d in devices} == {("unknown", None)}


async def test_readme_api_examples_work(shipped: AsyncClient) -> None:
    urls = README_URL.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert urls, "the README shows no API example"
    for url in urls:
        response = await shipped.get(url)
        assert response.status_code == 200, (url, response.text)
