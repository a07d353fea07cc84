"""Admin routes: list quarantined messages, re-ingest them once their cause is fixed.

Both need an admin key (api.auth.ROUTE_ROLES): a quarantined payload is raw device data of any
trial, including ones no key is granted yet. `midika quarantine` is the same from the command line.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import SettingsDep, StoreDep, TrialsDep, resolve_trial
from api.errors import error_responses
from api.params import DEFAULT_PAGE, EndParam, LimitParam, StartParam, check_window
from ingest.reingest import Outcome, reingest
from midika.models.records import QuarantineReason, QuarantineRecord
from midika.store.base import QuarantineQuery

router = APIRouter(prefix="/admin", tags=["admin"], responses=error_responses(400, 404, 503))

MAX_REINGEST = 1000


class QuarantinedPublic(BaseModel):
    """One quarantined message; `payload_base64` holds the kept bytes, `truncated` if they were capped."""

    id: int
    topic: str
    trial: str | None
    device: str | None
    reason: QuarantineReason
    detail: str
    received_ts: datetime
    payload_size: int
    truncated: bool
    payload_base64: str


class QuarantineList(BaseModel):
    """Quarantined messages, newest first."""

    items: list[QuarantinedPublic]


class ReingestResultPublic(BaseModel):
    """What re-ingesting one quarantined message did."""

    id: int
    outcome: Outcome
    detail: str
    readings: int = 0
    duplicates: int = 0
    reason: QuarantineReason | None = None
    new_id: int | None = Field(None, description="the id of the record that replaced it, if rejected anew")


class ReingestReport(BaseModel):
    """One result per requested id, in the order asked."""

    results: list[ReingestResultPublic]


ReasonParam = Annotated[
    list[QuarantineReason] | None, Query(description="why it was rejected; repeat for several")
]
TrialFilter = Annotated[
    str | None,
    Query(description="registered trial id; for unregistered ones filter by reason=unknown_trial"),
]
IdParam = Annotated[
    list[Annotated[int, Field(ge=1, le=2**62)]],
    Query(max_length=MAX_REINGEST, description="quarantine id; repeat for several"),
]


@router.get("/quarantine", summary="Quarantined messages")
def list_quarantine(
    store: StoreDep,
    trials: TrialsDep,
    trial: TrialFilter = None,
    reason: ReasonParam = None,
    start: StartParam = None,
    end: EndParam = None,
    limit: LimitParam = DEFAULT_PAGE,
) -> QuarantineList:
    """Messages the ingest kept instead of storing, with why, newest first (by receive time)."""
    check_window(start, end)
    if trial is not None:
        resolve_trial(trials, trial, "query")  # 404 listing the known trials, as everywhere else
    query = QuarantineQuery(trial=trial, reasons=reason, start=start, end=end, limit=limit)
    return QuarantineList(items=[_public(q) for q in store.query_quarantine(query)])


@router.post("/quarantine/reingest", summary="Re-ingest quarantined messages")
def reingest_quarantine(
    store: StoreDep, trials: TrialsDep, settings: SettingsDep, id: IdParam
) -> ReingestReport:
    """Run the messages through the ingest's checks again, with the trials as registered now.

    Accepted ones are stored and leave quarantine; rejected ones stay, with the new reason; one
    whose payload was capped (`truncated`) cannot be replayed.
    """
    results = reingest(id, store=store, trials=trials, settings=settings)
    return ReingestReport(
        results=[
            ReingestResultPublic(
                id=r.id,
                outcome=r.outcome,
                detail=r.detail,
                readings=r.readings,
                duplicates=r.duplicates,
                reason=r.reason,
                new_id=r.new_id,
            )
            for r in results
        ]
    )


def _public(record: QuarantineRecord) -> QuarantinedPublic:
    assert record.id is not None  # the store assigns ids
    return QuarantinedPublic(
        id=record.id,
        topic=record.topic,
        trial=record.trial,
        device=record.device,
        reason=record.reason,
        detail=record.detail,
        received_ts=record.received_ts,
        payload_size=record.payload_size,
        truncated=record.payload_size > len(record.payload),
        payload_base64=base64.b64encode(record.payload).decode("ascii"),
    )
