"""Statistical sanity of what the simulated devices send: ranges, cycles, and cause and effect."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from midika.models.trial import Trial, ValueType
from simulators.environment import Environment
from simulators.messages import messages
from simulators.signals import M2_PERIOD, Episodes, SmoothNoise, TideModel, solar_hour
from simulators.water import SPECIES
from tests.simulators.conftest import AUGUST, shipped

WEEK = timedelta(days=7)


@dataclass
class Week:
    """Everything a trial sent in a week, by device."""

    trial: Trial
    values: dict[tuple[str, str], list[tuple[float, Any]]] = field(default_factory=lambda: defaultdict(list))
    events: list[tuple[str, float, str, dict[str, Any]]] = field(default_factory=list)
    status: Counter[str] = field(default_factory=Counter)

    def series(self, device: str, measurement: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        pairs = self.values[(device, measurement)]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs], dtype=float)


def simulate_week(trial: Trial, start: datetime = AUGUST, devices: list[str] | None = None) -> Week:
    week = Week(trial)
    for m in messages(trial, 1, start, start + WEEK, devices=devices):
        body = json.loads(m.payload)
        t = m.time.timestamp()
        if m.kind == "up":
            for name, value in body["values"].items():
                week.values[(m.device, name)].append((t, value))
        elif m.kind == "evt":
            week.events.append((m.device, t, body["type"], body["data"]))
        else:
            week.status[m.device] += 1
    return week


@pytest.fixture(scope="module")
def weeks() -> dict[str, Week]:
    return {trial_id: simulate_week(shipped(trial_id)) for trial_id in ("onjuku-rip", "goto-tuna")}


@pytest.mark.parametrize("trial_id", ["onjuku-rip", "goto-tuna"])
def test_values_stay_in_profile_ranges_with_profile_types(trial_id: str, weeks: dict[str, Week]) -> None:
    week = weeks[trial_id]
    for device in week.trial.devices:
        profile = week.trial.profile(device.profile)
        assert week.status[device.id] >= 7 * 24 * 6 - 1, device.id  # health every 10 min
        for m in profile.measurements:
            sent = [v for _, v in week.values[(device.id, m.name)]]
            expected = WEEK.total_seconds() / m.period_s
            # Cameras go offline now and then; plankton counts speed up in a bloom.
            assert 0.9 * expected <= len(sent) <= 24 * expected + 1, (device.id, m.name, len(sent))
            if m.type is ValueType.INT:
                assert all(type(v) is int for v in sent), (device.id, m.name)
            else:
                assert all(type(v) is float for v in sent), (device.id, m.name)
            assert m.range is not None
            assert all(m.range[0] <= v <= m.range[1] for v in sent), (device.id, m.name)
            assert len(set(sent)) > 1, f"{device.id}.{m.name} never changes"


def test_values_are_physically_plausible(weeks: dict[str, Week]) -> None:
    goto, onjuku = weeks["goto-tuna"], weeks["onjuku-rip"]
    for depth in ("01m", "05m", "10m", "20m"):
        _, temp = goto.series(f"goto-cage01-wq-{depth}", "water_temperature")
        _, oxygen = goto.series(f"goto-cage01-wq-{depth}", "dissolved_oxygen")
        _, salinity = goto.series(f"goto-cage01-wq-{depth}", "salinity")
        _, ph = goto.series(f"goto-cage01-wq-{depth}", "ph")
        assert 14 <= temp.mean() <= 29 and 5 <= oxygen.mean() <= 8.5  # the normal band of the reference
        assert 32 <= salinity.mean() <= 35 and 7.9 <= ph.mean() <= 8.3
    _, top = goto.series("goto-cage01-wq-01m", "water_temperature")
    _, bottom = goto.series("goto-cage01-wq-20m", "water_temperature")
    assert top.mean() > bottom.mean() + 0.5  # summer stratification
    _, hs = onjuku.series("onjuku-buoy-01", "hs")
    assert 0.3 < hs.mean() < 2.5


def test_sea_state_over_a_year() -> None:
    """Bigger seas come with longer periods, and winter storms make the seas bigger than in summer."""
    env = Environment(shipped("onjuku-rip"), 1)
    t = datetime.fromisoformat("2026-01-01T00:00:00+00:00").timestamp() + np.arange(0, 365 * 86400, 3600.0)
    hs, tp = env.hs(t), env.tp(t)
    assert np.corrcoef(hs, tp)[0, 1] > 0.6
    assert hs.min() >= 0.05 and hs.max() < 4.0 and np.percentile(hs, 99) > 2.0  # storms happen
    winter, summer = hs[: 60 * 24].mean(), hs[150 * 24 : 210 * 24].mean()
    assert winter > summer


def test_tide_has_the_m2_period() -> None:
    """An FFT of a month of buoy tide readings peaks at 12.42 h."""
    trial = shipped("onjuku-rip")
    month = [
        json.loads(m.payload)["values"]["tide"]
        for m in messages(trial, 1, AUGUST, AUGUST + timedelta(days=30), devices=["onjuku-buoy-01"])
        if m.kind == "up"
    ]
    assert len(month) == 30 * 48
    tide = np.array(month) - np.mean(month)
    spectrum = np.abs(np.fft.rfft(tide * np.hanning(tide.size)))
    freqs = np.fft.rfftfreq(tide.size, d=1800.0)
    peak_hours = 1 / freqs[1:][np.argmax(spectrum[1:])] / 3600
    assert peak_hours == pytest.approx(M2_PERIOD / 3600, abs=0.25)
    # The diurnal constituents are there too: a clear secondary peak near 24-26 h.
    diurnal = (freqs > 1 / (27 * 3600)) & (freqs < 1 / (23 * 3600))
    assert spectrum[diurnal].max() > 5 * np.median(spectrum)


def test_tide_model_spring_neap() -> None:
    tide = TideModel(k1=0.0, o1=0.0)
    t = np.arange(0, 30 * 86400, 600.0) + 1.78e9
    level = tide.level(t)
    daily_range = [np.ptp(level[i : i + 144]) for i in range(0, level.size - 144, 144)]
    assert max(daily_range) == pytest.approx(2 * (tide.m2 + tide.s2), rel=0.05)  # springs
    assert min(daily_range) == pytest.approx(2 * (tide.m2 - tide.s2), rel=0.15)  # neaps


def test_water_temperature_has_a_diurnal_cycle_that_fades_with_depth(weeks: dict[str, Week]) -> None:
    goto = weeks["goto-tuna"]
    lon = goto.trial.sites[0].lon

    def day_minus_night(device: str, measurement: str) -> float:
        t, v = goto.series(device, measurement)
        hour = solar_hour(t, lon)
        return float(v[(hour >= 14) & (hour < 17)].mean() - v[(hour >= 3) & (hour < 6)].mean())

    surface = day_minus_night("goto-cage01-wq-01m", "water_temperature")
    assert surface > 0.2
    assert day_minus_night("goto-cage01-wq-20m", "water_temperature") < surface / 3
    assert day_minus_night("goto-cage01-wq-01m", "dissolved_oxygen") > 0.1  # photosynthesis


def test_beach_is_busy_on_summer_afternoons_and_empty_at_night(weeks: dict[str, Week]) -> None:
    onjuku = weeks["onjuku-rip"]
    t, persons = onjuku.series("onjuku-cam-02", "persons_in_water")
    hour = (t / 3600 + 9) % 24  # JST
    assert persons[(hour >= 12) & (hour < 15)].mean() > 30
    assert persons[(hour >= 21) | (hour < 3)].max() == 0


def test_rips_come_with_waves() -> None:
    """Rip onsets per hour are several times higher when waves are above their median."""
    env = Environment(shipped("onjuku-rip"), 1)
    t0 = AUGUST.timestamp()
    t = np.arange(t0, t0 + 365 * 86400, 1800.0)
    hs = env.hs(t)
    median = np.median(hs)
    onsets = np.array([e.start for e in env.rips("main-beach-west").between(t0, t0 + 365 * 86400)])
    at_onset = env.hs(onsets)
    rate_high = (at_onset >= median).sum() / (hs >= median).sum()
    rate_low = (at_onset < median).sum() / (hs < median).sum()
    assert rate_high > 3 * rate_low


def test_rip_detections_are_more_frequent_in_high_waves(weeks: dict[str, Week]) -> None:
    onjuku = weeks["onjuku-rip"]
    t, hs = onjuku.series("onjuku-buoy-01", "hs")
    slot = {int(s // 1800): h for s, h in zip(t, hs, strict=True)}
    median = float(np.median(hs))
    detections = [int(ts // 1800) for _, ts, kind, _ in onjuku.events if kind == "RIP_DETECTED"]
    assert len(detections) >= 10
    high = sum(slot.get(s, median) >= median for s in detections) / sum(h >= median for h in hs)
    low = sum(slot.get(s, median) < median for s in detections) / sum(h < median for h in hs)
    assert high > 1.5 * low


def test_zone_entries_only_while_a_rip_is_reported_and_people_swim(weeks: dict[str, Week]) -> None:
    onjuku = weeks["onjuku-rip"]
    entries = 0
    for camera in ("onjuku-cam-01", "onjuku-cam-02", "onjuku-cam-03"):
        active = False
        timeline = sorted((ts, kind) for dev, ts, kind, _ in onjuku.events if dev == camera)
        crowd = dict(onjuku.values[(camera, "persons_in_water")])
        in_zone = dict(onjuku.values[(camera, "persons_in_rip_zone")])
        for ts, kind in timeline:
            if kind in ("RIP_DETECTED", "RIP_CLEARED"):
                assert active == (kind == "RIP_CLEARED"), "detections and clearances alternate"
                active = kind == "RIP_DETECTED"
            elif kind == "ZONE_ENTRY":
                entries += 1
                assert active and crowd[ts] > 0 and in_zone[ts] > 0
        zone_counts = [v for ts, v in in_zone.items() if v > 0]
        assert all(crowd[ts] >= in_zone[ts] for ts in in_zone)
        assert not zone_counts or active or timeline
    assert entries > 0
    detected = [data for _, _, kind, data in onjuku.events if kind == "RIP_DETECTED"]
    assert all(0 < d["confidence"] <= 1 and d["zone"].startswith("main-beach-") for d in detected)


def test_feeding_twice_a_day_per_cage_unless_stopped(weeks: dict[str, Week]) -> None:
    goto = weeks["goto-tuna"]
    feedings = [(ts, data) for dev, ts, kind, data in goto.events if kind == "FEEDING"]
    stops = [(ts, data) for dev, ts, kind, data in goto.events if kind == "FEED_STOP"]
    assert len(feedings) + 2 * len(stops) == 7 * 2 * 2  # 7 days, 2 slots, 2 cages
    assert {data["cage"] for _, data in feedings} == {"cage-01", "cage-02"}
    hours = {round(((ts / 3600 + 9) % 24) * 2) / 2 for ts, _ in feedings}  # JST, half hours
    assert hours <= {6.5, 7.0, 7.5, 14.0, 14.5, 15.0}
    assert all(100 < data["kg"] < 700 for _, data in feedings)


def test_blooms_raise_alerts_and_hourly_counts() -> None:
    goto = shipped("goto-tuna")
    start = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
    alerts, samples = [], []
    for m in messages(goto, 1, start, start + timedelta(days=120), devices=["goto-cage01-plankton"]):
        body = json.loads(m.payload)
        if m.kind == "evt":
            alerts.append((m.time.timestamp(), body["data"]))
        elif m.kind == "up":
            samples.append(m.time.timestamp())
    assert alerts
    for ts, data in alerts:
        species = SPECIES[data["species"]]
        threshold = species.alarm if data["level"] == "alarm" else species.caution
        assert data["cells_per_ml"] >= threshold
        after = [s for s in samples if s > ts]
        assert after[0] - ts == 3600  # counting goes hourly
    assert min(np.diff(samples)) == 3600 and max(np.diff(samples)) == 86400


def test_new_profiles_and_fields_still_simulate(novel: Trial) -> None:
    week = simulate_week(novel, devices=None)
    for device in novel.devices:
        profile = novel.profile(device.profile)
        for m in profile.measurements:
            sent = [v for _, v in week.values[(device.id, m.name)]]
            expected = WEEK.total_seconds() / m.period_s
            if device.profile == "rip-camera":  # cameras go offline now and then
                assert 0.95 * expected <= len(sent) <= expected + 1
            else:
                assert len(sent) == pytest.approx(expected, abs=1)
            expected_type = {
                ValueType.INT: int,
                ValueType.FLOAT: float,
                ValueType.BOOL: bool,
                ValueType.STR: str,
            }
            assert all(type(v) is expected_type[m.type] for v in sent), m.name
            if m.range is not None:
                assert all(m.range[0] <= v <= m.range[1] for v in sent), m.name
    drift = [v for _, v in week.values[("novel-buoy-01", "drift_speed")]]
    assert 10 < np.mean(drift) < 50 and np.std(drift) > 0.5  # inside the range, not pinned to an edge
    kinds = Counter(kind for _, _, kind, _ in week.events)
    assert kinds["BUOY_ADRIFT"] >= 1 and kinds["FROST"] >= 1
    camera_events = {kind for device, _, kind, _ in week.events if device == "novel-cam-01"}
    assert camera_events <= {"RIP_DETECTED"}  # no RIP_CLEARED, ZONE_ENTRY: the profile does not declare them
    for _, _, kind, data in week.events:
        if kind == "FROST":
            assert type(data["temperature"]) is float and type(data["hours"]) is int


def test_smooth_noise_is_a_pure_function_of_time() -> None:
    noise = SmoothNoise(1, "x", timescale_s=3600.0)
    t = 1.78e9 + np.arange(0, 30 * 86400, 300.0)
    whole = noise(t)
    parts = np.concatenate([noise(t[:1000]), noise(t[1000:])])
    assert np.array_equal(whole, parts)
    assert abs(whole.mean()) < 0.3 and 0.7 < whole.std() < 1.3
    lag1 = np.corrcoef(whole[:-1], whole[1:])[0, 1]
    assert lag1 > 0.9  # correlated over its timescale


def test_episodes_do_not_depend_on_the_window_asked_for() -> None:
    def rate(t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.full(np.shape(t), 1 / 3600.0)

    episodes = Episodes(1, "test", rate=rate, rate_max=1 / 3600.0, mean_duration_s=600, max_duration_s=3600)
    t0 = 1.78e9
    whole = episodes.between(t0, t0 + 30 * 86400)
    pieces = {e for d in range(30) for e in episodes.between(t0 + d * 86400, t0 + (d + 1) * 86400)}
    assert set(whole) == pieces
    assert len(whole) == pytest.approx(30 * 24, rel=0.15)  # a Poisson process at the given rate
