"""Through the embedded stack: bad messages are counted in /metrics, then re-ingested once registered.

A camera sends a measurement its trial file does not have yet, and a message that is not JSON.
/api/v1/metrics of `midika up`'s process shows what the ingest did; the trial file then gains the
measurement, the platform restarts on the same data, and POST /api/v1/admin/quarantine/reingest
stores the reading and resolves its quarantine record, while the unparseable one stays.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from midika.platform import Platform
from midika.settings import Settings
from tests.conftest import REPO
from tests.mqtt import DeviceClient

CAM = "onjuku-cam-01"
UP = f"midika/v1/onjuku-rip/{CAM}/up"
NEW_MEASUREMENT = """\
      - name: crowd_density
        unit: "/"
        range: [0, 1]
        period_s: 10
"""


def _samples(http: httpx.Client, platform: Platform) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get(f"{platform.api_url}/api/v1/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _publish_and_scrape(
    settings: Settings, stamp: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Publish one good and two bad messages as the camera; /api/v1/metrics once they are written."""
    platform = Platform.start(settings)
    try:
        headers = {"Authorization": f"Bearer {platform.admin_key}"}
        secret = platform.registry.issue_secret("onjuku-rip", CAM)
        address = platform.broker_address
        with DeviceClient(host=address.host, port=address.port, username=CAM, password=secret) as cam:
            cam.publish(UP, json.dumps({"ts": stamp, "values": {"glare_score": 0.25}}))
            cam.publish(UP, json.dumps({"ts": stamp, "values": {"crowd_density": 0.4}}))
            cam.publish(UP, b"\x80 not json")
        deadline = time.monotonic() + 30
        while platform.worker.stats.received < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        platform.wait_idle()
        with httpx.Client(headers=headers, timeout=30) as http:
            got = _samples(http, platform)
            anonymous = httpx.get(f"{platform.api_url}/api/v1/metrics", timeout=30)
        assert anonymous.status_code == 401
    finally:
        platform.stop()
    return got


def test_metrics_then_reingest_after_the_trial_file_is_fixed(tmp_path: Path) -> None:
    trials = tmp_path / "trials"
    trials.mkdir()
    shutil.copy(REPO / "trials" / "onjuku-rip.yaml", trials / "onjuku-rip.yaml")
    settings = Settings.load(data_dir=tmp_path / "data", trials_dir=trials, broker_port=0, api_port=0)
    ts = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    stamp = ts.isoformat().replace("+00:00", "Z")

    got = _publish_and_scrape(settings, stamp)
    assert got[("midika_ingest_messages_received_total", ())] == 3
    assert got[("midika_ingest_readings_stored_total", ())] == 1
    assert got[("midika_ingest_quarantined_total", (("reason", "unknown_measurement"),))] == 1
    assert got[("midika_ingest_quarantined_total", (("reason", "unparseable"),))] == 1
    assert got[("midika_ingest_quarantined_total", (("reason", "too_large"),))] == 0
    assert got[("midika_ingest_duplicates_total", (("kind", "reading"),))] == 0
    assert got[("midika_ingest_pending", ())] == 0
    assert got[("midika_ingest_connected", ())] == 1
    assert got[("midika_ingest_write_seconds_count", ())] >= 2  # readings and quarantine, at least

    # Register the measurement, as an operator would, and start again on the same data.
    path = trials / "onjuku-rip.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("    measurements:\n", "    measurements:\n" + NEW_MEASUREMENT, 1), encoding="utf-8"
    )
    platform = Platform.start(settings)
    headers = {"Authorization": f"Bearer {platform.admin_key}"}
    try:
        with httpx.Client(base_url=platform.api_url, headers=headers, timeout=30) as http:
            listed = http.get("/api/v1/admin/quarantine").json()["items"]
            ids = {item["reason"]: item["id"] for item in listed}
            assert set(ids) == {"unknown_measurement", "unparseable"}
            report = http.post(
                "/api/v1/admin/quarantine/reingest",
                params={"id": [ids["unknown_measurement"], ids["unparseable"]]},
            )
            assert report.status_code == 200, report.text
            assert [(r["outcome"], r["reason"]) for r in report.json()["results"]] == [
                ("stored", None),
                ("rejected", "unparseable"),
            ]
            readings = http.get("/api/v1/readings", params={"trial": "onjuku-rip"}).json()["items"]
            left = http.get("/api/v1/admin/quarantine").json()["items"]
    finally:
        platform.stop()
    assert sorted((r["measurement"], r["value"]) for r in readings) == [
        ("crowd_density", 0.4),
        ("glare_score", 0.25),
    ]
    assert [item["id"] for item in left] == [ids["unparseable"]]
