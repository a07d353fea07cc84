"""Statistical sanity of the four newer trials' models: physical ranges and the cycles that must be there.

Each check is one a broken model would fail: a lapse rate of the wrong sign, a day cycle peaking at
night, boats by day, a morning surge missing, climbers reaching the summit before the 5th station.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pytest

from midika.models.trial import Trial
from simulators.messages import SimMessage, messages
from tests.simulators.conftest import shipped

JST = timedelta(hours=9)
AUG = datetime(2026, 8, 8, tzinfo=UTC)


@cache
def run(trial_id: str, start: datetime, hours: float) -> tuple[SimMessage, ...]:
    return tuple(messages(shipped(trial_id), 3, start, start + timedelta(hours=hours)))


def series(stream: tuple[SimMessage, ...], device: str, name: str) -> tuple[np.ndarray[Any, Any], list[Any]]:
    """(epoch seconds, values) of one measurement of one device."""
    times, values = [], []
    for m in stream:
        if m.device == device and m.kind == "up":
            body = json.loads(m.payload)
            if name in body["values"]:
                times.append(datetime.fromisoformat(body["ts"]).timestamp())
                values.append(body["values"][name])
    return np.array(times), values


def events(stream: tuple[SimMessage, ...], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m.device, body)
        for m in stream
        if m.kind == "evt" and (body := json.loads(m.payload))["type"] == kind
    ]


def local_hour(t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(((t + JST.total_seconds()) % 86400) / 3600)


def daily_peak_hour(t: np.ndarray[Any, Any], v: np.ndarray[Any, Any]) -> float:
    """The local hour of the mean day's maximum (from the 24-h harmonic)."""
    phase = 2 * np.pi * local_hour(t) / 24
    angle = np.angle(np.sum((v - v.mean()) * np.exp(1j * phase)))
    return float((angle % (2 * np.pi)) * 24 / (2 * np.pi))


def test_every_value_is_inside_its_declared_range() -> None:
    for trial_id in ("mashike-acoustics", "fuji-climbing", "masuda-bp", "kahoku-grape"):
        trial: Trial = shipped(trial_id)
        for m in run(trial_id, AUG, 48):
            if m.kind != "up":
                continue
            profile = trial.profile_of(m.device)
            assert profile is not None
            for name, value in json.loads(m.payload)["values"].items():
                declared = profile.measurement(name)
                assert (
                    declared is not None and declared.in_range(value) if not isinstance(value, str) else True
                )


def test_kahoku_air_follows_the_sun() -> None:
    stream = run("kahoku-grape", AUG, 24 * 6)
    t, temp = series(stream, "kahoku-field-a", "air_temperature")
    v = np.array(temp)
    assert 18 < v.mean() < 32 and v.max() - v.min() > 5  # an August in Hokuriku
    assert 12.0 < daily_peak_hour(t, v) < 17.0  # warmest in the afternoon
    t, lux = series(stream, "kahoku-field-a", "illuminance")
    night = (local_hour(t) < 4) | (local_hour(t) > 20)
    assert np.all(np.array(lux)[night] == 0) and 60_000 < max(lux) <= 130_000
    t, rh = series(stream, "kahoku-field-a", "relative_humidity")
    assert not 10.0 < daily_peak_hour(t, np.array(rh)) < 18.0  # humidity peaks at night
    # The unshielded station reads high in the sun, not at night.
    t_c, temp_c = series(stream, "kahoku-field-c", "air_temperature")
    _, temp_a = series(stream, "kahoku-field-a", "air_temperature")
    diff = np.array(temp_c) - np.array(temp_a)
    noon = (local_hour(t_c) > 11) & (local_hour(t_c) < 14)
    assert diff[noon].mean() > 2.0 > abs(diff[~noon & night[: diff.size]].mean())
    work = events(stream, "WORK")
    assert work and {e["data"]["task"] for _, e in work} <= {"harvest", "spraying", "mowing"}


def test_fuji_lapse_rate_and_summit_climate() -> None:
    stream = run("fuji-climbing", AUG, 48)
    summit = np.mean(series(stream, "fuji-wx-summit", "air_temperature")[1])
    fifth = np.mean(series(stream, "fuji-wx-05", "air_temperature")[1])
    assert 0 < summit < 10 and 4.5 < fifth - summit < 10  # ~1300 m at ~6 °C/km
    pressure = np.mean(series(stream, "fuji-wx-summit", "air_pressure")[1])
    assert 62_000 < pressure < 67_000  # ~647 hPa
    wind = np.array(series(stream, "fuji-wx-summit", "wind_speed")[1])
    gust = np.array(series(stream, "fuji-wx-summit", "wind_gust")[1])
    assert np.mean(gust) > 1.2 * np.mean(wind)


def test_fuji_climbers_go_up_first() -> None:
    # 05:00-19:00 JST on a Saturday: the day's climbers, before the evening's bullet climbers come.
    stream = run("fuji-climbing", AUG - timedelta(hours=4), 14)
    seen: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for device, body in events(stream, "SIGHTING"):
        when = datetime.fromisoformat(body["ts"]).timestamp()
        seen[body["data"]["beacon_id"]][device].append(when)
        assert -100 <= body["data"]["rssi"] <= -40
    climbed = [s for s in seen.values() if "fuji-rx-05" in s and "fuji-rx-summit" in s]
    assert len(climbed) > 100  # August: hundreds a day
    # A beacon is first seen at the 5th station, then at the summit (beacons are lent again each
    # day, and those on the way down from a night climb are seen the other way round).
    ordered = [min(s["fuji-rx-05"]) < min(s["fuji-rx-summit"]) for s in climbed]
    assert np.mean(ordered) > 0.8
    starts = np.array([min(s["fuji-rx-05"]) for s in seen.values() if "fuji-rx-05" in s])
    hours = local_hour(starts)
    assert np.mean((hours > 4) & (hours < 16)) > 0.5  # most climb by day, some by night


def test_mashike_ambient_and_boats_at_night() -> None:
    stream = run("mashike-acoustics", AUG, 24 * 7)
    broadband = np.array(series(stream, "mashike-buoy-02", "spl_broadband")[1])
    assert 90 < np.median(broadband) < 120  # ambient, dB re 1 µPa
    bands = {
        name: np.median(series(stream, "mashike-buoy-02", name)[1]) for name in ("spl_31_5hz", "spl_1000hz")
    }
    assert all(70 < level < 115 for level in bands.values())
    vessels = events(stream, "VESSEL")
    assert len(vessels) >= 5
    hours = local_hour(np.array([datetime.fromisoformat(b["ts"]).timestamp() for _, b in vessels]))
    assert np.mean((hours >= 19) | (hours < 7)) > 0.6  # squid boats and poachers work at night
    assert all(0 < b["data"]["range_m"] < 5000 and b["data"]["peak_band_hz"] == 200.0 for _, b in vessels)


@pytest.mark.parametrize("start", [AUG, datetime(2026, 1, 12, tzinfo=UTC)])
def test_blood_pressure_morning_surge(start: datetime) -> None:
    stream = run("masuda-bp", start, 24 * 21)
    by_session: dict[str, list[int]] = defaultdict(list)
    for m in stream:
        if m.kind == "up":
            values = json.loads(m.payload)["values"]
            by_session[values["session"]].append(values["systolic"])
            assert values["systolic"] > values["diastolic"] > 30
    assert np.mean(by_session["morning"]) > np.mean(by_session["evening"]) + 3
    assert 120 < np.mean(by_session["morning"]) < 160
    high = events(stream, "HOME_BP_HIGH")
    assert high and all(
        e["data"]["systolic_mean"] >= 135 or e["data"]["diastolic_mean"] >= 85 for _, e in high
    )
