"""Faults do what they say, are logged, are deterministic; scenario files validate and name errors."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.trial_files import read_trial_files
from midika.errors import ConfigError
from midika.models.trial import Trial
from simulators.faults import Fault, FaultKind
from simulators.messages import SimMessage, messages
from simulators.scenario import SCENARIOS_DIR, demo_scenarios, load_scenario
from tests.conftest import REPO
from tests.simulators.conftest import AUGUST
from tests.simulators.test_determinism import digest

DAY = AUGUST + timedelta(days=1)
TRIALS = {source.trial.id: source.trial for source in read_trial_files(REPO / "trials")}


def run(trial: Trial, *faults: Fault, end: datetime = DAY) -> list[SimMessage]:
    return list(messages(trial, 4, AUGUST, end, faults=faults))


def values(stream: list[SimMessage], device: str, name: str) -> dict[str, float]:
    out = {}
    for m in stream:
        if m.device == device and m.kind == "up":
            body = json.loads(m.payload)
            for item in body if isinstance(body, list) else [body]:
                if name in item["values"]:
                    out[item["ts"]] = item["values"][name]
    return out


def fault_lines(stream: list[SimMessage]) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in stream if m.kind == "fault"]


def test_value_faults_change_only_their_window_and_measurement(goto: Trial) -> None:
    probe = "goto-cage01-wq-05m"
    clean = run(goto)
    faults = (
        Fault(kind=FaultKind.DRIFT, devices=(probe,), measurements=("ph",), size=0.5, at_s=6 * 3600),
        Fault(kind=FaultKind.STUCK, devices=(probe,), measurements=("salinity",), at_s=3600, for_s=7200),
    )
    faulty = run(goto, *faults)
    ph_clean, ph_bad = values(clean, probe, "ph"), values(faulty, probe, "ph")
    early = [ts for ts in ph_clean if ts < "2026-08-01T06:00:00Z"]
    late = [ts for ts in ph_clean if ts > "2026-08-01T18:00:00Z"]
    assert all(ph_clean[ts] == ph_bad[ts] for ts in early)
    assert all(0.2 < ph_bad[ts] - ph_clean[ts] < 0.41 for ts in late)  # 0.5 a day, 12-18 h in
    stuck = [v for ts, v in values(faulty, probe, "salinity").items() if "01:00" <= ts[11:16] < "03:00"]
    assert len(set(stuck)) == 1 and len(stuck) == 12
    assert values(clean, probe, "water_temperature") == values(faulty, probe, "water_temperature")
    assert {line["fault"] for line in fault_lines(faulty)} == {"drift", "stuck"}


def test_outage_sends_late_out_of_order_batches_and_drops_the_link(onjuku: Trial) -> None:
    buoy = "onjuku-buoy-01"
    clean = run(onjuku, end=AUGUST + timedelta(hours=12))
    outage = Fault(kind=FaultKind.OUTAGE, devices=(buoy,), at_s=2 * 3600, for_s=6 * 3600, batch=3)
    faulty = run(onjuku, outage, end=AUGUST + timedelta(hours=12))
    assert values(clean, buoy, "hs") == values(faulty, buoy, "hs")  # nothing lost, only late
    batches = [m for m in faulty if m.device == buoy and m.payload.startswith(b"[")]
    assert len(batches) == 4 and all(m.time >= AUGUST + timedelta(hours=8) for m in batches)
    firsts = [json.loads(m.payload)[0]["ts"] for m in batches]
    assert firsts != sorted(firsts)  # out of order
    ctl = [m for m in faulty if m.kind == "ctl" and m.device == buoy]
    assert [json.loads(m.payload)["action"] for m in ctl] == ["drop"]
    back = [
        m for m in faulty if m.device == buoy and m.kind == "status" and m.time == AUGUST + timedelta(hours=8)
    ]
    assert back and json.loads(back[0].payload)["online"] is True


def test_duplicates_repeat_the_bytes_and_clock_faults_move_ts(onjuku: Trial) -> None:
    faulty = run(
        onjuku,
        Fault(kind=FaultKind.DUPLICATES, rate=0.1),
        Fault(kind=FaultKind.CLOCK_SKEW, devices=("onjuku-cam-01",), size=60.0),
        Fault(kind=FaultKind.RTC_RESET, devices=("onjuku-cam-02",), at_s=3600, for_s=600, size=2000),
        end=AUGUST + timedelta(hours=2),
    )
    published = Counter((m.topic, m.payload) for m in faulty if m.kind in ("up", "evt"))
    repeats = sum(n - 1 for n in published.values())
    logged = sum(1 for line in fault_lines(faulty) if line["fault"] == "duplicates")
    assert repeats == logged > 10
    cam1 = [json.loads(m.payload) for m in faulty if m.device == "onjuku-cam-01" and m.kind == "up"]
    sent = [m.time for m in faulty if m.device == "onjuku-cam-01" and m.kind == "up"]
    # ts is 60 s ahead of sending; a retry goes out up to 10 s later with the same ts
    skews = [datetime.fromisoformat(b["ts"]) - t for b, t in zip(cam1, sent, strict=True)]
    assert all(timedelta(seconds=50) <= skew <= timedelta(seconds=60) for skew in skews)
    cam2 = [json.loads(m.payload)["ts"] for m in faulty if m.device == "onjuku-cam-02" and m.kind == "up"]
    assert any(ts.startswith("2000-01-01T00:0") for ts in cam2)


def test_battery_death_and_storms_are_link_actions(goto: Trial) -> None:
    faulty = run(
        goto,
        Fault(kind=FaultKind.BATTERY_DEATH, devices=("goto-feeder-01",), at_s=12 * 3600),
        Fault(kind=FaultKind.RECONNECT_STORM, devices=("goto-cage01-wq-01m",), at_s=3600, for_s=600, rate=1),
    )
    dead_after = AUGUST + timedelta(hours=12)
    assert not [m for m in faulty if m.device == "goto-feeder-01" and m.time > dead_after and m.kind != "ctl"]
    sagging = [
        json.loads(m.payload)["battery"]
        for m in faulty
        if m.device == "goto-feeder-01" and m.kind == "status"
    ]
    assert sagging[-1] < 0.9 * sagging[0]
    storm = [m for m in faulty if m.device == "goto-cage01-wq-01m" and m.kind == "ctl"]
    assert 3 <= len(storm) <= 25


def test_a_device_cut_off_sends_no_retry_after_its_link_went_down(onjuku: Trial) -> None:
    # A retry goes out 1-10 s after its first try; one that fell after the battery's death (or in
    # an outage, or at night) woke the dead device up again: the stack test then saw it say goodbye.
    faults = (
        Fault(kind=FaultKind.DUPLICATES, rate=0.5),
        Fault(kind=FaultKind.BATTERY_DEATH, devices=("onjuku-cam-01",), at_s=1800),
        Fault(kind=FaultKind.OUTAGE, devices=("onjuku-cam-02",), at_s=600, for_s=600, batch=7),
        # Off from 09:15 to 09:30 in Tokyo: 15 to 30 minutes into a run that starts at 00:00 UTC.
        Fault(kind=FaultKind.NIGHTLY_OUTAGE, devices=("onjuku-cam-03",), from_hour=9.25, to_hour=9.5),
    )
    for offset_ms in range(0, 60_000, 1_700):  # where the retries fall against the cuts varies
        start = AUGUST + timedelta(milliseconds=offset_ms)
        stream = list(messages(onjuku, 4, start, start + timedelta(hours=1), faults=faults))
        dead = start + timedelta(seconds=1800)
        assert not [
            m for m in stream if m.device == "onjuku-cam-01" and m.kind in ("up", "evt") and m.time >= dead
        ]
        away = (start + timedelta(seconds=600), start + timedelta(seconds=1200))
        assert not [
            m
            for m in stream
            if m.device == "onjuku-cam-02" and m.kind == "up" and away[0] <= m.time < away[1]
        ]
        night = (AUGUST + timedelta(minutes=15), AUGUST + timedelta(minutes=30))
        assert not [
            m
            for m in stream
            if m.device == "onjuku-cam-03" and m.kind == "up" and night[0] <= m.time < night[1]
        ]


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load_and_replay_exactly(path: Path) -> None:
    scenario, trial = load_scenario(path, TRIALS)
    start = datetime(2026, 8, 1, tzinfo=UTC)
    end = start + timedelta(hours=3)
    ids = scenario.device_ids(trial)
    one = list(messages(trial, scenario.seed, start, end, devices=ids, faults=scenario.fault_list()))
    two = list(messages(trial, scenario.seed, start, end, devices=ids, faults=scenario.fault_list()))
    assert one and digest(one) == digest(two)


def test_every_trial_has_a_live_demo() -> None:
    assert set(demo_scenarios()) == set(TRIALS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trial: nowhere\n", "trial: no trial 'nowhere'"),
        ("trial: goto-tuna\nspeed: fast\n", "speed"),
        ("trial: goto-tuna\nfaults:\n  - {kind: melt}\n", "faults.0.kind"),
        ("trial: goto-tuna\nfaults:\n  - {kind: drift, at: soon}\n", "faults.0.at"),
        (
            "trial: goto-tuna\nfaults:\n  - {kind: drift, devices: [goto-x]}\n",
            "faults.0.devices: no device 'goto-x'",
        ),
        ("trial: goto-tuna\nseeds: 3\n", "seeds"),
    ],
)
def test_scenario_errors_name_the_file_and_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_scenario(path, TRIALS)
    assert str(path) in str(error.value) and message in str(error.value)
