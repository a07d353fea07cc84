"""GET /trials and /trials/{trial}: what is being trialled, where, with which devices."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import PathTrial, TrialsDep
from api.errors import error_responses
from api.schemas import TrialDetail, TrialList, TrialSummary
from midika.models.trial import Trial

router = APIRouter(prefix="/trials", tags=["trials"], responses=error_responses(400, 404))


@router.get("", summary="List trials")
def list_trials(trials: TrialsDep) -> TrialList:
    """Every trial with its municipality and how many sites and devices it has."""
    return TrialList(items=[_summary(trial) for trial in trials.trials()])


@router.get("/{trial}", summary="One trial in full")
def get_trial(trial: PathTrial) -> TrialDetail:
    """A trial with its sites, device profiles (measurements and event types) and devices."""
    return TrialDetail.model_validate(trial.model_dump())


def _summary(trial: Trial) -> TrialSummary:
    return TrialSummary.model_validate(
        {
            **trial.model_dump(include={"id", "name", "municipality", "domain", "timezone", "personal_data"}),
            "sites": len(trial.sites),
            "devices": len(trial.devices),
        }
    )
