"""Small valid trials for registry tests, as plain data so a test can break exactly one thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from midika.models.trial import Trial


def trial_data(
    trial_id: str = "alpha", *, devices: tuple[str, ...] = ("alpha-01", "alpha-02")
) -> dict[str, Any]:
    """A minimal valid trial with one site, one profile and the given devices."""
    return {
        "id": trial_id,
        "name": f"Trial {trial_id}",
        "municipality": {"name": "御宿町", "code": "124435"},
        "domain": "disaster_prevention",
        "sites": [{"id": "beach", "name": "Beach", "lat": 35.18, "lon": 140.35}],
        "profiles": [
            {
                "id": "counter",
                "measurements": [{"name": "count", "unit": "count", "type": "int", "period_s": 10}],
            }
        ],
        "devices": [{"id": d, "profile": "counter", "site": "beach"} for d in devices],
    }


def make_trial(trial_id: str = "alpha", *, devices: tuple[str, ...] = ("alpha-01", "alpha-02")) -> Trial:
    """`trial_data` validated into a Trial."""
    return Trial.model_validate(trial_data(trial_id, devices=devices))


def write_trial(folder: Path, data: dict[str, Any], *, name: str | None = None) -> Path:
    """Write `data` as `<folder>/<name or data['id']>.yaml` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
