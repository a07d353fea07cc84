"""What the platform serves next to what the ground-truth log says was sent: events and device states."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from midika.platform import Platform
from simulators.truth import read_truth
from tests.test_end_to_end import _api, _iso, api_items

EventKey = tuple[str, str, str]  # device, type, RFC 3339 time: what the store keeps once
EventBody = tuple[int | None, dict[str, Any]]  # seq, data


def truth_events(path: Path) -> dict[EventKey, EventBody]:
    """Every event of a ground-truth log; a retried (duplicate) event collapses to one key."""
    expected: dict[EventKey, EventBody] = {}
    for record in read_truth(path):
        if record.kind != "evt":
            continue
        sent = json.loads(record.payload)
        for item in sent if isinstance(sent, list) else [sent]:
            key = (record.device, item["type"], _iso(datetime.fromisoformat(item["ts"])))
            body = (item.get("seq"), item.get("data", {}))
            # The store keeps one event per key: two different ones would lose one.
            assert expected.setdefault(key, body) == body, f"two different events share {key}"
    return expected


def api_events(platform: Platform, trial: str) -> dict[EventKey, EventBody]:
    """Every event of `trial` the API serves, walking its pages; none may be served twice."""
    found: dict[EventKey, EventBody] = {}
    for item in api_items(platform, f"/api/v1/events?trial={trial}&limit=1000"):
        key = (item["device"], item["type"], _iso(datetime.fromisoformat(item["ts"])))
        assert key not in found, f"event served twice: {key}"
        found[key] = (item["seq"], item["data"])
    return found


def events_when_complete(platform: Platform, trial: str, expected: int) -> dict[EventKey, EventBody]:
    """The API's events once the ingest has caught up (the broker forwards asynchronously)."""
    deadline = time.monotonic() + 60.0
    served = api_events(platform, trial)
    while len(served) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        served = api_events(platform, trial)
    return served


def assert_same_events(expected: dict[EventKey, EventBody], served: dict[EventKey, EventBody]) -> None:
    """The same events, each with the same sequence number and data."""
    missing = sorted(expected.keys() - served.keys())
    extra = sorted(served.keys() - expected.keys())
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]}"
    )
    for key, body in expected.items():
        assert served[key] == body, (key, served[key], body)


def device_status(platform: Platform, trial: str) -> dict[str, str]:
    """Each device's status (online, offline, unknown) as the API lists it."""
    with _api(platform) as http:
        response = http.get(f"{platform.api_url}/api/v1/trials/{trial}/devices")
    assert response.status_code == 200, response.text
    return {d["id"]: d["status"] for d in response.json()["items"]}
