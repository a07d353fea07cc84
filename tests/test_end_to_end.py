"""The platform as `make up` runs it: embedded broker, ingest, DuckDB store, HTTP API, simulators.

Simulated devices of both shipped trials backfill the last half hour; a firmware-like client adds a
batch, a SenML pack and bad messages. The API must then serve exactly what was published (read back
from the simulators' ground-truth log), and the bad messages must sit in quarantine with the right
reason codes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from midika.models.records import QuarantineReason
from midika.platform import Platform
from midika.settings import Settings
from midika.store.base import QuarantineQuery
from simulators.runner import SimulationRunner
from simulators.truth import read_readings
from tests.conftest import REPO
from tests.mqtt import DeviceClient

Key = tuple[str, str, str]  # device, measurement, RFC 3339 time


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    settings = Settings.load(
        data_dir=tmp_path / "data", trials_dir=REPO / "trials", broker_port=0, api_port=0
    )
    running = Platform.start(settings)
    try:
        yield running
    finally:
        running.stop()


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _api(platform: Platform) -> httpx.Client:
    """An HTTP client of the platform's API, authenticated with the admin key `midika up` made."""
    return httpx.Client(timeout=30.0, headers={"Authorization": f"Bearer {platform.admin_key}"})


def api_items(platform: Platform, path: str) -> Iterator[dict[str, Any]]:
    """Every item of an API listing (`path` with its query), walking the pages it links."""
    url: str | None = platform.api_url + path
    with _api(platform) as http:
        while url is not None:
            response = http.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            yield from body["items"]
            nxt = body["next"]
            url = nxt if nxt is None or nxt.startswith("http") else platform.api_url + nxt


def _api_readings(platform: Platform, trial: str) -> dict[Key, float | None]:
    """Every reading of `trial`, walking the API's pages; none may be served twice."""
    found: dict[Key, float | None] = {}
    for item in api_items(platform, f"/api/v1/readings?trial={trial}&limit=5000"):
        key = (item["device"], item["measurement"], _iso(datetime.fromisoformat(item["ts"])))
        assert key not in found, f"reading served twice: {key}"
        found[key] = item["value"]
    return found


def _served_when_complete(platform: Platform, trial: str, expected: int) -> dict[Key, float | None]:
    """The API's readings once the ingest has caught up (the broker forwards asynchronously)."""
    deadline = time.monotonic() + 60.0
    served = _api_readings(platform, trial)
    while len(served) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        served = _api_readings(platform, trial)
    return served


def _simulate(platform: Platform, trial_id: str, truth: Path, minutes: int) -> None:
    trial = platform.registry.trial(trial_id)
    assert trial is not None
    secrets = {d.id: platform.registry.issue_secret(trial.id, d.id) for d in trial.devices}
    runner = SimulationRunner(
        trial=trial,
        broker=platform.broker_address.with_credentials("unused", None),
        secrets=secrets,
        seed=7,
        start=datetime.now(UTC) - timedelta(minutes=minutes),
        speed=math.inf,
        truth=truth,
    )
    summary = runner.run(duration=timedelta(minutes=minutes))
    assert summary.readings > 0
    assert summary.unacknowledged == 0


def _truth(path: Path) -> dict[Key, float | None]:
    expected: dict[Key, float | None] = {}
    for reading in read_readings(path):
        assert reading.ts is not None, "the simulators always send a device timestamp"
        value: Any = reading.value
        number = float(value) if isinstance(value, int | float) else None
        expected[(reading.device, reading.measurement, _iso(reading.ts))] = number
    return expected


def _assert_same(expected: dict[Key, float | None], served: dict[Key, float | None]) -> None:
    missing = sorted(expected.keys() - served.keys())
    extra = sorted(served.keys() - expected.keys())
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]}"
    )
    for key, value in expected.items():
        got = served[key]
        assert (got is None) == (value is None), key
        if value is not None and got is not None:
            assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), key


def test_simulated_trials_reach_the_api_exactly(platform: Platform, tmp_path: Path) -> None:
    _simulate(platform, "onjuku-rip", tmp_path / "onjuku.ndjson", minutes=20)
    _simulate(platform, "goto-tuna", tmp_path / "goto.ndjson", minutes=40)
    for trial, truth in (("onjuku-rip", "onjuku.ndjson"), ("goto-tuna", "goto.ndjson")):
        expected = _truth(tmp_path / truth)
        assert len(expected) > 100
        _assert_same(expected, _served_when_complete(platform, trial, len(expected)))

    # Simulators stop cleanly, so every device's retained status now says offline.
    with _api(platform) as http:
        assert http.get(f"{platform.api_url}/api/v1/trials", headers={"Authorization": ""}).status_code == 401
        devices = http.get(f"{platform.api_url}/api/v1/trials/onjuku-rip/devices").json()
    assert {d["status"] for d in devices["items"]} == {"offline"}
    assert all(d["last_seen"] is not None for d in devices["items"])


def test_firmware_batch_senml_and_bad_messages(platform: Platform) -> None:
    registry = platform.registry
    address = platform.broker_address
    cam_secret = registry.issue_secret("onjuku-rip", "onjuku-cam-01")
    buoy_secret = registry.issue_secret("onjuku-rip", "onjuku-buoy-01")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    cam_up = "midika/v1/onjuku-rip/onjuku-cam-01/up"
    buoy_up = "midika/v1/onjuku-rip/onjuku-buoy-01/up"

    single = {"ts": _iso(base), "seq": 1, "values": {"persons_in_water": 12, "glare_score": 0.25}}
    batch = [
        {
            "ts": int((base + timedelta(seconds=10 * i)).timestamp() * 1000),
            "seq": 1 + i,
            "values": {"persons_in_water": i},
        }
        for i in range(1, 4)
    ]
    senml = [
        {"bn": "urn:dev:midika:onjuku-buoy-01:", "bt": base.timestamp(), "n": "hs", "u": "m", "v": 1.25},
        {"n": "tp", "u": "s", "v": 9.5},
        {"n": "water_temp", "u": "Cel", "v": 21.5, "t": 1},
    ]
    bad: dict[QuarantineReason, tuple[str, bytes]] = {
        QuarantineReason.UNPARSEABLE: (cam_up, b"{not json"),
        QuarantineReason.UNKNOWN_MEASUREMENT: (
            cam_up,
            json.dumps({"ts": _iso(base), "values": {"wind": 3}}).encode(),
        ),
        QuarantineReason.NON_FINITE: (
            cam_up,
            b'{"ts": "2026-01-01T00:00:00Z", "values": {"glare_score": NaN}}',
        ),
        QuarantineReason.WRONG_TYPE: (
            cam_up,
            json.dumps({"ts": _iso(base), "values": {"persons_in_water": "x"}}).encode(),
        ),
        QuarantineReason.FUTURE_TIMESTAMP: (
            cam_up,
            json.dumps({"ts": _iso(base + timedelta(days=2)), "values": {"persons_in_water": 1}}).encode(),
        ),
        QuarantineReason.PAST_TIMESTAMP: (
            cam_up,
            json.dumps({"ts": "1969-12-31T23:59:59Z", "values": {"persons_in_water": 1}}).encode(),
        ),
        QuarantineReason.UNIT_MISMATCH: (buoy_up, json.dumps([{"n": "hs", "u": "Cel", "v": 1.0}]).encode()),
    }
    with DeviceClient(
        host=address.host, port=address.port, username="onjuku-cam-01", password=cam_secret
    ) as cam:
        cam.publish(cam_up, json.dumps(single))
        cam.publish(cam_up, json.dumps(batch))
        cam.publish(cam_up, json.dumps(single))  # a retry: stored once
        # Publishing as another device is dropped by the broker's ACL, never stored.
        cam.publish("midika/v1/onjuku-rip/onjuku-cam-02/up", json.dumps(single))
        for topic, payload in bad.values():
            if topic == cam_up:
                cam.publish(topic, payload)
    with DeviceClient(
        host=address.host, port=address.port, username="onjuku-buoy-01", password=buoy_secret
    ) as buoy:
        buoy.publish(buoy_up, json.dumps(senml))
        buoy.publish(buoy_up, bad[QuarantineReason.UNIT_MISMATCH][1])
    served = _served_when_complete(platform, "onjuku-rip", 8)
    expected: dict[Key, float | None] = {
        ("onjuku-cam-01", "persons_in_water", _iso(base)): 12.0,
        ("onjuku-cam-01", "glare_score", _iso(base)): 0.25,
        **{
            ("onjuku-cam-01", "persons_in_water", _iso(base + timedelta(seconds=10 * i))): float(i)
            for i in range(1, 4)
        },
        ("onjuku-buoy-01", "hs", _iso(base)): 1.25,
        ("onjuku-buoy-01", "tp", _iso(base)): 9.5,
        ("onjuku-buoy-01", "water_temp", _iso(base + timedelta(seconds=1))): 21.5,
    }
    _assert_same(expected, served)

    deadline = time.monotonic() + 30.0
    quarantined = platform.store.query_quarantine(QuarantineQuery(trial="onjuku-rip"))
    while len(quarantined) < len(bad) and time.monotonic() < deadline:
        time.sleep(0.2)
        quarantined = platform.store.query_quarantine(QuarantineQuery(trial="onjuku-rip"))
    assert sorted(q.reason for q in quarantined) == sorted(bad)
    for record in quarantined:
        assert record.payload == bad[record.reason][1]
        assert record.topic == bad[record.reason][0]
        assert record.detail
