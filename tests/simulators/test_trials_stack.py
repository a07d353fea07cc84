"""Every trial, with faults, through the embedded stack: the store holds exactly the ground truth.

A short accelerated run per trial, with retries (duplicates), an outage whose data comes late in
out-of-order batches, a skewed clock, lost messages and a device whose battery dies, each device on
its own connection of the runner's pooled links. The API must serve every reading and every event
of the ground-truth log once, at its event time, and nothing else; the dead device must show
offline (only its last will can have said so).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from midika.platform import Platform
from simulators.faults import Fault, FaultKind
from simulators.runner import SimulationRunner
from simulators.truth import read_truth
from tests.simulators.stack import assert_same_events, device_status, events_when_complete, truth_events
from tests.test_end_to_end import _assert_same, _served_when_complete, _truth

WINDOWS = {
    "onjuku-rip": timedelta(minutes=20),
    "goto-tuna": timedelta(minutes=40),
    "mashike-acoustics": timedelta(minutes=30),
    "fuji-climbing": timedelta(hours=2),
    "masuda-bp": timedelta(days=3),
    "kahoku-grape": timedelta(hours=6),
}


def faults_for(devices: list[str], window: timedelta) -> list[Fault]:
    """Late data on the first device, a skewed and lossy clock on the second, death of the third."""
    w = window.total_seconds()
    late, skewed, dying = devices[0], devices[1], devices[2]
    return [
        Fault(kind=FaultKind.DUPLICATES, rate=0.05),
        Fault(kind=FaultKind.OUTAGE, devices=(late,), at_s=0.25 * w, for_s=0.3 * w, batch=7),
        Fault(kind=FaultKind.SPIKES, devices=(late,), rate=0.02, size=0.3),
        Fault(kind=FaultKind.CLOCK_SKEW, devices=(skewed,), size=30.0),
        Fault(kind=FaultKind.DROPOUTS, devices=(skewed,), for_s=w, rate=4 * 3600 / w, tau_s=0.02 * w),
        Fault(kind=FaultKind.BATTERY_DEATH, devices=(dying,), at_s=0.75 * w),
    ]


@pytest.mark.parametrize("trial_id", sorted(WINDOWS))
def test_the_store_holds_the_ground_truth(platform: Platform, tmp_path: Path, trial_id: str) -> None:
    trial = platform.registry.trial(trial_id)
    assert trial is not None
    window = WINDOWS[trial_id]
    devices = [d.id for d in trial.devices]
    truth_file = tmp_path / "truth.ndjson"
    runner = SimulationRunner(
        trial=trial,
        broker=platform.broker_address.with_credentials("unused", None),
        secrets={d: platform.registry.issue_secret(trial_id, d) for d in devices},
        seed=11,
        start=datetime.now(UTC) - window,
        speed=math.inf,
        truth=truth_file,
        faults=faults_for(devices, window),
    )
    summary = runner.run(duration=window)
    assert summary.unacknowledged == 0 and summary.faults >= 3

    truth = list(read_truth(truth_file))
    faults = [json.loads(t.payload) for t in truth if t.kind == "fault"]
    kinds = {f["fault"] for f in faults}
    assert {"outage", "clock_skew", "battery_death"} <= kinds
    ups = [t for t in truth if t.kind == "up"]
    batches = [t for t in ups if t.payload.startswith(b"[")]
    if any(t.device == devices[0] for t in ups):  # the late device measures often enough to buffer
        assert batches, "the outage sent nothing late"
        late = [r.ts for t in batches for r in t.readings]
        assert all(ts is not None and ts < t.time for t in batches for ts in late[:1])
    expected = _truth(truth_file)  # duplicates collapse: one key per (device, measurement, ts)
    assert len(expected) > 20
    _assert_same(expected, _served_when_complete(platform, trial_id, len(expected)))
    events = truth_events(truth_file)  # a retried event collapses to one key too
    assert_same_events(events, events_when_complete(platform, trial_id, len(events)))

    states = device_status(platform, trial_id)
    # The dying device never said goodbye: only the broker's last will can have marked it offline.
    assert not any(
        t.device == devices[2] and t.kind == "status" and b'"online":false' in t.payload for t in truth
    )
    assert states[devices[2]] == "offline"
