"""GET /events: what a trial's devices detected."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import QueryTrial, StoreDep
from api.errors import error_responses
from api.params import (
    DEFAULT_PAGE,
    CursorParam,
    DeviceParam,
    EndParam,
    LimitParam,
    SiteParam,
    StartParam,
    check_event_types,
    check_window,
    cursor_checked,
    devices_of,
    next_url,
    none_if_empty,
)
from api.schemas import EventPage, EventPublic
from midika.store.base import EventQuery

router = APIRouter(prefix="/events", tags=["events"], responses=error_responses(400, 404, 503))

TypeParam = Annotated[
    list[str] | None, Query(description="event type such as RIP_DETECTED; repeat for several")
]


@router.get("", summary="Events, paged")
def list_events(
    request: Request,
    store: StoreDep,
    trial: QueryTrial,
    device: DeviceParam = None,
    site: SiteParam = None,
    type: TypeParam = None,
    start: StartParam = None,
    end: EndParam = None,
    limit: LimitParam = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> EventPage:
    """Events ordered by (ts, device, type); follow `next` until it is null."""
    devices = devices_of(trial, device, site)
    check_event_types(trial, type)
    check_window(start, end)
    query = EventQuery(
        trial=trial.id,
        devices=devices,
        types=none_if_empty(type),
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    with cursor_checked(cursor):
        page = store.query_events(query)
    return EventPage(
        items=[
            EventPublic(
                trial=e.trial,
                device=e.device,
                type=e.type,
                ts=e.ts,
                ingest_ts=e.ingest_ts,
                data=e.data,
                seq=e.seq,
            )
            for e in page.items
        ],
        next_cursor=page.next_cursor,
        next=next_url(request, page.next_cursor),
    )
