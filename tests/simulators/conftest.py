"""Shared fixtures: the shipped trials, a trial whose profiles the simulator has no model for, and
the whole platform for the stack tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml

from midika.models.trial import Trial
from midika.platform import Platform
from midika.settings import Settings
from tests.conftest import REPO

AUGUST = datetime(2026, 8, 1, tzinfo=UTC)


def shipped(trial_id: str) -> Trial:
    """A trial from trials/*.yaml."""
    return Trial.model_validate(yaml.safe_load((REPO / "trials" / f"{trial_id}.yaml").read_text("utf-8")))


@pytest.fixture(scope="session")
def onjuku() -> Trial:
    return shipped("onjuku-rip")


@pytest.fixture(scope="session")
def goto() -> Trial:
    return shipped("goto-tuna")


@pytest.fixture(scope="session")
def novel() -> Trial:
    """Profiles and fields added after the simulator was written: they must still simulate."""
    return Trial.model_validate(
        {
            "id": "novel-trial",
            "name": "A trial from the future",
            "municipality": {"name": "御宿町", "code": "124435"},
            "domain": "testing",
            "sites": [{"id": "field", "name": "Field", "lat": 36.6, "lon": 136.6}],
            "profiles": [
                {
                    "id": "wave-buoy",  # a known profile that gained fields
                    "measurements": [
                        {"name": "hs", "unit": "m", "range": [0, 4], "period_s": 600},
                        {"name": "drift_speed", "unit": "m/s", "range": [0, 60], "period_s": 600},
                        {
                            "name": "spectrum_bins",
                            "unit": "count",
                            "type": "int",
                            "range": [0, 64],
                            "period_s": 600,
                        },
                        {"name": "lamp_on", "unit": "/", "type": "bool", "period_s": 600},
                        {"name": "mode", "unit": "/", "type": "str", "period_s": 600},
                        {"name": "offset", "unit": "m", "period_s": 600},
                    ],
                    "events": [{"type": "BUOY_ADRIFT", "fields": {"distance_m": "float", "zone": "str"}}],
                },
                {
                    "id": "soil-probe",  # a profile nobody modelled
                    "measurements": [
                        {"name": "soil_moisture", "unit": "m3/m3", "range": [0.05, 0.45], "period_s": 1800}
                    ],
                    "events": [{"type": "FROST", "fields": {"temperature": "float", "hours": "int"}}],
                },
                {
                    "id": "rip-camera",  # a known profile that lost fields: only what it declares is sent
                    "measurements": [
                        {
                            "name": "persons_in_water",
                            "unit": "count",
                            "type": "int",
                            "range": [0, 500],
                            "period_s": 10,
                        }
                    ],
                    "events": [{"type": "RIP_DETECTED", "fields": {"confidence": "float", "zone": "str"}}],
                },
            ],
            "devices": [
                {"id": "novel-cam-01", "profile": "rip-camera", "site": "field"},
                {"id": "novel-buoy-01", "profile": "wave-buoy", "site": "field"},
                {"id": "novel-soil-01", "profile": "soil-probe", "site": "field"},
            ],
        }
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole platform on its embedded default (broker, ingest, DuckDB, API), one per test module."""
    data = tmp_path_factory.mktemp("stack")
    settings = Settings.load(data_dir=data / "data", trials_dir=REPO / "trials", broker_port=0, api_port=0)
    running = Platform.start(settings)
    try:
        yield running
    finally:
        running.stop()
