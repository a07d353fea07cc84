"""The admin quarantine routes, in-process over a real DuckDB store: list, filter, re-ingest, roles."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from api.app import API_PREFIX, create_app
from ingest.pipeline import Rejected
from midika.keys import KeyRing, Role
from midika.models.trial import Trial
from midika.settings import Settings
from midika.store.base import ReadingQuery
from midika.store.duckdb import DuckDBStore
from tests.api.conftest import BASE_URL, StaticTrials, bearer
from tests.api.test_errors import assert_envelope
from tests.ingest.helpers import BUOY, CAM, SHIPPED, TRIALS_DIR, Trials, load_trial, pinned_settings, run

pytestmark = pytest.mark.anyio

GOOD = {"ts": "2026-07-20T11:59:00Z", "values": {"hs": 1.2, "tp": 9.0}}
ONJUKU = load_trial(TRIALS_DIR / "onjuku-rip.yaml")
LIST = f"{API_PREFIX}/admin/quarantine"
REINGEST = f"{API_PREFIX}/admin/quarantine/reingest"


class Registry(StaticTrials):
    """Trials that can be registered while the app runs, as `midika devices` does."""

    def register(self, trial: Trial) -> None:
        """Add `trial`."""
        self._trials[trial.id] = trial


@pytest.fixture
async def setup(settings: Settings) -> AsyncIterator[tuple[AsyncClient, KeyRing, DuckDBStore, Registry]]:
    """An app without the Onjuku trial over a store holding three quarantined messages."""
    settings.data_dir.mkdir(parents=True)
    store = DuckDBStore(path=settings.duckdb_file)
    outcomes = [
        run(BUOY + "/up", GOOD, trials=Trials([])),  # unknown_trial until the trial is registered
        run(CAM + "/up", b"\x80", trials=SHIPPED),  # unparseable for good
        run("not/a/topic", b"{}", trials=SHIPPED),
    ]
    store.write_quarantine([o.quarantine for o in outcomes if isinstance(o, Rejected)])
    ring = KeyRing(path=settings.api_keys_file)
    registry = Registry([])
    app = create_app(store=store, trials=registry, settings=pinned_settings(), keys=ring)
    admin = bearer(ring.create(role=Role.ADMIN).secret)
    async with AsyncClient(transport=ASGITransport(app=app), base_url=BASE_URL, headers=admin) as client:
        yield client, ring, store, registry
    store.close()


async def test_list_filters_by_reason_trial_and_time(
    setup: tuple[AsyncClient, KeyRing, DuckDBStore, Registry],
) -> None:
    client, _, _, registry = setup
    body = (await client.get(LIST)).json()
    # All three arrived in the same microsecond: newest first means the greatest id first.
    assert [i["reason"] for i in body["items"]] == ["bad_topic", "unparseable", "unknown_trial"]
    first = body["items"][2]
    assert json.loads(base64.b64decode(first["payload_base64"])) == GOOD
    assert first["trial"] == "onjuku-rip" and first["truncated"] is False and isinstance(first["id"], int)

    only = (await client.get(LIST, params={"reason": ["bad_topic", "unparseable"], "limit": 1})).json()
    assert [i["reason"] for i in only["items"]] == ["bad_topic"]
    later = await client.get(LIST, params={"start": "2026-07-20T12:00:00.000001Z"})
    assert later.json()["items"] == []
    # The trial filter names a registered trial, like every trial parameter of the API.
    assert_envelope(await client.get(LIST, params={"trial": "onjuku-rip"}), 404)
    registry.register(ONJUKU)
    by_trial = (await client.get(LIST, params={"trial": "onjuku-rip"})).json()["items"]
    assert {i["reason"] for i in by_trial} == {"unknown_trial", "unparseable"}


async def test_reingest_stores_what_is_now_valid(
    setup: tuple[AsyncClient, KeyRing, DuckDBStore, Registry],
) -> None:
    client, _, store, registry = setup
    ids = {i["reason"]: i["id"] for i in (await client.get(LIST)).json()["items"]}

    before = (await client.post(REINGEST, params={"id": [ids["unknown_trial"]]})).json()["results"]
    assert [(r["outcome"], r["reason"]) for r in before] == [("rejected", "unknown_trial")]

    registry.register(ONJUKU)
    response = await client.post(REINGEST, params={"id": [ids["unknown_trial"], ids["unparseable"], 424242]})
    results = response.json()["results"]
    assert [(r["id"], r["outcome"]) for r in results] == [
        (ids["unknown_trial"], "stored"),
        (ids["unparseable"], "rejected"),
        (424242, "not_found"),
    ]
    assert results[0]["readings"] == 2
    stored = store.query_readings(ReadingQuery(trial="onjuku-rip")).items
    assert sorted((r.measurement, r.value) for r in stored) == [("hs", 1.2), ("tp", 9.0)]
    left = [i["reason"] for i in (await client.get(LIST)).json()["items"]]
    assert left == ["bad_topic", "unparseable"]


async def test_only_admins(setup: tuple[AsyncClient, KeyRing, DuckDBStore, Registry]) -> None:
    client, ring, _, _ = setup
    evaluator = bearer(ring.create(role=Role.EVALUATOR, trials=["*"]).secret)
    assert_envelope(await client.get(LIST, headers=evaluator), 403)
    assert_envelope(await client.post(REINGEST, params={"id": 1}, headers=evaluator), 403)
    assert_envelope(await client.post(REINGEST, params={"id": 1}, headers={"Authorization": ""}), 401)
    assert_envelope(await client.post(REINGEST), 400)
