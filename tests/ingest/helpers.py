"""What the ingest tests share: the shipped trials as a TrialLookup, settings, a fixed receive time."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ingest.pipeline import Accepted, Rejected, process
from midika.models.trial import Trial
from midika.settings import Settings
from tests.conftest import REPO

TRIALS_DIR = REPO / "trials"
# The receive time of the pure tests and of the examples in devices/CONTRACT.md.
RECEIVED = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
CAM = "midika/v1/onjuku-rip/onjuku-cam-01"
BUOY = "midika/v1/onjuku-rip/onjuku-buoy-01"


class Trials:
    """A TrialLookup over a fixed set of trials."""

    def __init__(self, trials: Iterable[Trial]) -> None:
        self._trials = {t.id: t for t in trials}

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None."""
        return self._trials.get(trial_id)


def load_trial(path: Path) -> Trial:
    """One trial file, validated by the Trial model alone (the registry is not under test here)."""
    return Trial.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def shipped_trials() -> Trials:
    """The trials of `trials/*.yaml`."""
    return Trials(load_trial(path) for path in sorted(TRIALS_DIR.glob("*.yaml")))


def pinned_settings(**overrides: Any) -> Settings:
    """Settings with the ingest limits at their documented defaults, whatever the environment says."""
    values: dict[str, Any] = {
        "future_tolerance_s": 300.0,
        "max_payload_bytes": 1_048_576,
        "quarantine_payload_cap": 8192,
    }
    values.update(overrides)
    return Settings.load(**values)


SHIPPED = shipped_trials()
SETTINGS = pinned_settings()


def run(
    topic: str,
    payload: bytes | str | Any,
    *,
    received: datetime = RECEIVED,
    settings: Settings = SETTINGS,
    trials: Trials = SHIPPED,
) -> Accepted | Rejected:
    """`process` one message; a payload that is not bytes or str is sent as its JSON."""
    if isinstance(payload, str):
        raw = payload.encode()
    elif isinstance(payload, bytes):
        raw = payload
    else:
        raw = json.dumps(payload).encode()
    return process(topic, raw, received=received, trials=trials, settings=settings)


def accepted(topic: str, payload: bytes | str | Any, **kwargs: Any) -> Accepted:
    """`run`, asserting the message is accepted."""
    outcome = run(topic, payload, **kwargs)
    assert isinstance(outcome, Accepted), outcome.quarantine.detail
    return outcome


def rejected(topic: str, payload: bytes | str | Any, **kwargs: Any) -> Rejected:
    """`run`, asserting the message is rejected."""
    outcome = run(topic, payload, **kwargs)
    assert isinstance(outcome, Rejected), f"accepted: {outcome}"
    return outcome
