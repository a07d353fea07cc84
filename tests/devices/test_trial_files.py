"""The shipped trial files load, and say what REFERENCE_MODELS.md (sections 1 and 2) describes."""

from __future__ import annotations

import math

import pytest

from devices.registry import Registry
from midika.models.trial import Trial, ValueType
from tests.conftest import REPO

TRIALS_DIR = REPO / "trials"

# Units from the IANA SenML registry (RFC 8428, RFC 8798, ISO 7027-1 NTU) that the trials use, and
# the few quantities the registry has no unit for, each used on purpose (see the YAML comments).
SENML_UNITS = {
    *("count", "m", "s", "deg", "m/s", "Cel", "/", "pH", "NTU", "%RH", "V", "dB", "Pa", "W/m2"),
    *("W", "lx", "beat/min"),
}
NON_SENML_UNITS = {"mg/L", "PSU", "ug/L", "cells/mL", "mmHg"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.load(trials_dir=TRIALS_DIR, state_file=tmp_path_factory.mktemp("state") / "registry.json")


def _trial(registry: Registry, trial_id: str) -> Trial:
    trial = registry.trial(trial_id)
    assert trial is not None, f"{trial_id} is not shipped"
    return trial


def test_shipped_trials(registry: Registry) -> None:
    assert {t.id for t in registry.trials()} >= {"onjuku-rip", "goto-tuna"}
    for path in TRIALS_DIR.glob("*.yaml"):
        assert registry.trial(path.stem) is not None


def test_every_device_has_a_profile_and_site_and_every_profile_is_used(registry: Registry) -> None:
    for trial in registry.trials():
        sites = {s.id for s in trial.sites}
        for device in trial.devices:
            assert trial.profile_of(device.id) is not None
            assert device.site in sites
        used = {d.profile for d in trial.devices}
        assert used == {p.id for p in trial.profiles}, f"{trial.id}: a profile no device uses"


def test_ranges_are_sensible(registry: Registry) -> None:
    for trial in registry.trials():
        for profile in trial.profiles:
            for m in profile.measurements:
                where = f"{trial.id}/{profile.id}/{m.name}"
                assert m.unit in SENML_UNITS | NON_SENML_UNITS, f"{where}: unit {m.unit!r}"
                if m.type in (ValueType.STR, ValueType.BOOL):
                    continue  # a session name or a flag has no range
                assert m.range is not None, f"{where}: no plausible range"
                low, high = m.range
                assert low < high, where
                if m.type is ValueType.INT:
                    assert low == math.floor(low) and high == math.floor(high), where
                if m.unit == "deg":
                    assert (low, high) == (0, 360), where
                if m.unit in {"count", "cells/mL", "m/s", "mg/L", "ug/L", "NTU", "/"}:
                    assert low >= 0, f"{where}: a quantity that cannot be negative"


def test_sites_and_devices_are_where_the_trial_is(registry: Registry) -> None:
    centres = {
        "onjuku-rip": (35.18, 140.36),
        "goto-tuna": (32.7, 128.8),
        "mashike-acoustics": (43.82, 141.48),
        "fuji-climbing": (35.35, 138.73),
        "masuda-bp": (34.67, 131.84),
        "kahoku-grape": (36.77, 136.74),
    }
    for trial_id, (lat, lon) in centres.items():
        trial = _trial(registry, trial_id)
        points = [(s.lat, s.lon) for s in trial.sites]
        points += [(d.location.lat, d.location.lon) for d in trial.devices if d.location is not None]
        for p_lat, p_lon in points:
            assert abs(p_lat - lat) < 0.1 and abs(p_lon - lon) < 0.1, (trial_id, p_lat, p_lon)


def test_onjuku(registry: Registry) -> None:
    trial = _trial(registry, "onjuku-rip")
    assert (trial.municipality.name, trial.municipality.code) == ("御宿町", "124435")
    assert trial.domain == "disaster_prevention"
    cameras = [d for d in trial.devices if d.profile == "rip-camera"]
    buoys = [d for d in trial.devices if d.profile == "wave-buoy"]
    assert len(cameras) == 3 and len(buoys) == 1
    camera = trial.profile("rip-camera")
    for name in ("persons_in_water", "persons_in_rip_zone"):
        m = camera.measurement(name)
        assert m is not None and (m.unit, m.type, m.range, m.period_s) == (
            "count",
            ValueType.INT,
            (0, 500),
            10,
        )
    rip_index = camera.measurement("rip_index")
    assert rip_index is not None and rip_index.range == (1, 4) and rip_index.period_s == 1800
    entry = camera.event_type("ZONE_ENTRY")
    assert entry is not None and entry.fields == {"zone": ValueType.STR, "persons": ValueType.INT}
    for event in ("RIP_DETECTED", "RIP_CLEARED"):
        detected = camera.event_type(event)
        assert detected is not None and detected.fields == {
            "confidence": ValueType.FLOAT,
            "zone": ValueType.STR,
        }
    assert camera.event_type("CAMERA_OFFLINE") is not None
    buoy = trial.profile("wave-buoy")
    current = buoy.measurement("current_speed")
    assert current is not None and current.range == (0, 2.5)  # rip currents reach ~2.5 m/s
    assert {m.period_s for m in buoy.measurements} == {1800}


# Normal band from REFERENCE_MODELS.md §2: the plausible range must hold it with room to spare,
# since the alarms fire outside it.
GOTO_NORMAL = {
    "water_temperature": (13, 29),
    "dissolved_oxygen": (4, 8),
    "salinity": (28, 35),
    "ph": (7.7, 8.3),
    "chlorophyll_a": (0.2, 10),
    "turbidity": (0.5, 5),
    "current_speed": (0, 1.0),
}


def test_goto(registry: Registry) -> None:
    trial = _trial(registry, "goto-tuna")
    assert (trial.municipality.name, trial.municipality.code) == ("五島市", "422118")
    assert trial.domain == "fisheries"
    quality = trial.profile("water-quality")
    for name, (low, high) in GOTO_NORMAL.items():
        m = quality.measurement(name)
        assert m is not None and m.range is not None and m.period_s == 600, name
        assert m.range[0] <= low and high < m.range[1], name
    probes = [d for d in trial.devices if d.profile == "water-quality"]
    positions = [
        (d.site, d.location.depth_m) for d in probes if d.location and d.location.depth_m is not None
    ]
    assert len(positions) == len(probes), "a water-quality probe without location.depth_m"
    assert len(set(positions)) == len(positions), "two probes at one (cage, depth)"
    cages = {site for site, _ in positions}
    assert len(cages) >= 2
    for cage in cages:
        assert sorted(depth for site, depth in positions if site == cage) == [1, 5, 10, 20]
    plankton = trial.profile("plankton-counter")
    assert {m.name for m in plankton.measurements} == {
        "chattonella",
        "karenia_mikimotoi",
        "cochlodinium",
        "heterosigma",
    }
    assert all(m.period_s == 86400 and m.range == (0, 1e6) for m in plankton.measurements)
    bloom = plankton.event_type("BLOOM_ALERT")
    assert bloom is not None and set(bloom.fields) == {"species", "cells_per_ml", "level"}
    feeder = trial.profile("feeder")
    feeding = feeder.event_type("FEEDING")
    assert feeding is not None and feeding.fields == {"kg": ValueType.FLOAT, "cage": ValueType.STR}
    assert feeder.event_type("FEED_STOP") is not None


def test_device_ids_name_their_trial(registry: Registry) -> None:
    # Ids are global MQTT usernames: prefixing them with the place keeps future trials from colliding.
    prefixes = {"onjuku-rip": "onjuku-", "goto-tuna": "goto-"}
    for trial_id, prefix in prefixes.items():
        assert all(d.id.startswith(prefix) for d in _trial(registry, trial_id).devices)


@pytest.mark.parametrize(
    ("trial_id", "name", "code", "personal"),
    [
        ("mashike-acoustics", "増毛町", "014818", False),
        ("fuji-climbing", "富士宮市", "222071", False),
        ("masuda-bp", "益田市", "322041", True),
        ("kahoku-grape", "かほく市", "172090", False),
    ],
)
def test_reference_model_trials_3_to_6(
    registry: Registry, trial_id: str, name: str, code: str, personal: bool
) -> None:
    trial = _trial(registry, trial_id)
    assert (trial.municipality.name, trial.municipality.code, trial.personal_data) == (name, code, personal)
    assert len(trial.devices) >= 3
