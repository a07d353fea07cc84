"""The API over a real DuckDB store seeded with known data, and that data for computing expectations.

The store is seeded once per session (the routes only read); tests that need a failing store build
their own app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from midika.keys import KeyRing, Role
from midika.models.records import Event, Quality, Reading, StatusReport
from midika.models.trial import Trial
from midika.settings import Settings
from midika.store.base import Store
from midika.store.duckdb import DuckDBStore
from midika.store.influx import InfluxStore

if TYPE_CHECKING:  # tests.conftest's harness modules import it: only for annotations here
    from tests.influx_server import InfluxServer
    from tests.influx_v2_shim import V2WriteShim

T0 = datetime(2026, 7, 1, tzinfo=UTC)
HOURS = 6
RECEIVE_DELAY = timedelta(seconds=2)
BASE_URL = "http://testserver"


class StaticTrials:
    """A fixed list of trials: the part of the device registry the API uses."""

    def __init__(self, trials: list[Trial]) -> None:
        self._trials = {t.id: t for t in trials}

    def trials(self) -> list[Trial]:
        """Every trial, by id."""
        return [self._trials[k] for k in sorted(self._trials)]

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None."""
        return self._trials.get(trial_id)


ALPHA = Trial.model_validate(
    {
        "id": "alpha",
        "name": "Alpha beach",
        "municipality": {"name": "御宿町", "code": "124435"},
        "domain": "disaster_prevention",
        "sites": [
            {"id": "beach", "name": "Main beach", "lat": 35.18, "lon": 140.35},
            {"id": "offshore", "name": "Offshore", "lat": 35.17, "lon": 140.35},
        ],
        "profiles": [
            {
                "id": "buoy",
                "description": "wave buoy",
                "measurements": [
                    {"name": "water_temp", "unit": "Cel", "range": [0, 40], "period_s": 600},
                    {"name": "wave_height", "unit": "m", "range": [0, 4], "period_s": 1800},
                ],
            },
            {
                "id": "camera",
                "measurements": [
                    {"name": "persons", "unit": "count", "type": "int", "range": [0, 500], "period_s": 300},
                    {"name": "label", "unit": "/", "type": "str", "period_s": 3600},
                ],
                "events": [
                    {"type": "RIP_DETECTED", "fields": {"confidence": "float"}},
                    {"type": "RIP_CLEARED"},
                ],
            },
        ],
        "devices": [
            {"id": "buoy-1", "profile": "buoy", "site": "offshore"},
            {"id": "buoy-2", "profile": "buoy", "site": "offshore", "location": {"lat": 35.1, "lon": 140.3}},
            {"id": "cam-1", "profile": "camera", "site": "beach"},
            {"id": "cam-2", "profile": "camera", "site": "beach", "description": "never switched on"},
        ],
    }
)

BETA = Trial.model_validate(
    {
        "id": "beta",
        "name": "Beta vineyard",
        "municipality": {"name": "かほく市", "code": "172278"},
        "domain": "agriculture",
        "personal_data": True,
        "sites": [{"id": "field", "name": "Field", "lat": 36.7, "lon": 136.7}],
        "profiles": [
            {"id": "weather", "measurements": [{"name": "water_temp", "unit": "Cel", "period_s": 600}]}
        ],
        "devices": [{"id": "wx-1", "profile": "weather", "site": "field"}],
    }
)


@dataclass(frozen=True)
class Seed:
    """Everything written to the test store."""

    readings: list[Reading]
    events: list[Event]
    status: list[StatusReport]

    def readings_of(self, trial: str) -> list[Reading]:
        """The readings of one trial in the API's order."""
        rows = [r for r in self.readings if r.trial == trial]
        return sorted(rows, key=lambda r: (r.ts, r.device, r.measurement))


def _reading(
    trial: str, device: str, measurement: str, ts: datetime, value: float | None, seq: int, **kw: object
) -> Reading:
    return Reading(trial, device, measurement, ts, value, ts + RECEIVE_DELAY, seq=seq, **kw)  # type: ignore[arg-type]


def build_seed() -> Seed:
    """Six hours of readings from three alpha devices and one beta device, events, status."""
    readings: list[Reading] = []
    for n, device in enumerate(("buoy-1", "buoy-2")):
        for i in range(HOURS * 6):
            ts = T0 + timedelta(minutes=10 * i)
            quality = Quality.OK
            value = 20.0 + n + 0.1 * i
            if device == "buoy-2" and i == 5:
                value, quality = 45.0, Quality.OUT_OF_RANGE
            if device == "buoy-1" and i == 7:
                quality = Quality.NO_DEVICE_TIME | Quality.CLOCK_SUSPECT
            readings.append(_reading("alpha", device, "water_temp", ts, value, i, quality=quality))
        for i in range(HOURS * 2):
            ts = T0 + timedelta(minutes=30 * i)
            readings.append(_reading("alpha", device, "wave_height", ts, 0.5 + 0.05 * i * (n + 1), 100 + i))
    for i in range(HOURS * 12):
        ts = T0 + timedelta(minutes=5 * i, seconds=30)
        readings.append(_reading("alpha", "cam-1", "persons", ts, float(i % 7), i))
    for i in range(3):
        ts = T0 + timedelta(hours=2 * i)
        readings.append(_reading("alpha", "cam-1", "label", ts, None, 500 + i, text=f"scene-{i}"))
    for i in range(HOURS * 6):
        readings.append(_reading("beta", "wx-1", "water_temp", T0 + timedelta(minutes=10 * i), 10.0 + i, i))

    events = [
        Event(
            "alpha",
            "cam-1",
            "RIP_DETECTED" if i % 2 == 0 else "RIP_CLEARED",
            T0 + timedelta(minutes=40 * i + 1),
            T0 + timedelta(minutes=40 * i + 1) + RECEIVE_DELAY,
            {"confidence": 0.5 + i / 20} if i % 2 == 0 else {},
            seq=1000 + i,
        )
        for i in range(7)
    ]
    status = [
        StatusReport(
            "alpha", "buoy-1", T0, T0 + RECEIVE_DELAY, online=True, battery=3.7, rssi=-71.0, firmware="1.2.0"
        ),
        StatusReport(
            "alpha", "buoy-2", T0, T0 + RECEIVE_DELAY, online=True, battery=3.5, rssi=-80.0, firmware="1.1.0"
        ),
        # The broker's last will: buoy-2 went away an hour in.
        StatusReport("alpha", "buoy-2", T0 + timedelta(hours=1), T0 + timedelta(hours=1), online=False),
    ]
    return Seed(readings, events, status)


def open_store(path: Path) -> Store:
    """A real embedded store at `path`."""
    return DuckDBStore(path=path)


@pytest.fixture(scope="session")
def seed() -> Seed:
    """The data in `store`."""
    return build_seed()


@pytest.fixture(scope="session")
def duckdb_store(tmp_path_factory: pytest.TempPathFactory, seed: Seed) -> Iterator[Store]:
    """A DuckDB store holding `seed`."""
    store = open_store(tmp_path_factory.mktemp("api") / "midika.duckdb")
    _write(store, seed)
    yield store
    store.close()


@pytest.fixture(scope="session")
def influx_store(influx: tuple[InfluxServer, V2WriteShim], seed: Seed) -> Iterator[Store]:
    """An InfluxDB store holding `seed`, on the session's real influxd (through the v2 write shim)."""
    server, shim = influx
    server.create_database("api_seed")
    store = InfluxStore(url=shim.url, database="api_seed", retention_policy="autogen")
    _write(store, seed)
    yield store
    store.close()
    server.drop_database("api_seed")


def _write(store: Store, seed: Seed) -> None:
    store.write_readings(seed.readings)
    store.write_events(seed.events)
    store.write_status(seed.status)


# Every test of the API that takes `store` (or `app`, `client`) runs once per store: the issue asks
# for the same answers from both, and a store-specific bug shows as a test failing on one of them.
@pytest.fixture(scope="session", params=["duckdb", pytest.param("influx", marks=pytest.mark.servers)])
def store(request: pytest.FixtureRequest) -> Store:
    """A store holding `seed`: the DuckDB store, then the InfluxDB store."""
    return cast(Store, request.getfixturevalue(f"{request.param}_store"))


@pytest.fixture(scope="session")
def trials() -> StaticTrials:
    """The trials the app serves."""
    return StaticTrials([ALPHA, BETA])


def bearer(key: str) -> dict[str, str]:
    """The header that authenticates a request with `key`."""
    return {"Authorization": f"Bearer {key}"}


def admin_headers(settings: Settings) -> dict[str, str]:
    """The header of a new admin key in the key file of `settings`."""
    return bearer(KeyRing(path=settings.api_keys_file).create(role=Role.ADMIN).secret)


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The settings of `app`: a data folder of its own, holding its key file."""
    return Settings.load(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def keys(api_settings: Settings) -> KeyRing:
    """The API keys `app` accepts."""
    return KeyRing(path=api_settings.api_keys_file)


@pytest.fixture(scope="session")
def admin_key(keys: KeyRing) -> str:
    """An admin key of `app`."""
    return keys.create(role=Role.ADMIN, name="tests").secret


@pytest.fixture(scope="session")
def app(store: Store, trials: StaticTrials, api_settings: Settings, keys: KeyRing) -> FastAPI:
    """The API over the seeded store."""
    return create_app(store=store, trials=trials, settings=api_settings, keys=keys)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio only."""
    return "asyncio"


@pytest.fixture
async def client(app: FastAPI, admin_key: str) -> AsyncIterator[AsyncClient]:
    """An in-process HTTP client of `app`, authenticated with an admin key."""
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url=BASE_URL, headers=bearer(admin_key)) as client:
        yield client


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An in-process HTTP client of `app` without a key."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url=BASE_URL) as client:
        yield client
