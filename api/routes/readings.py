"""GET /readings, /readings/aggregate and /readings/latest: a trial's measured values."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import QueryTrial, StoreDep
from api.errors import bad_parameter, error_responses
from api.params import (
    DEFAULT_PAGE,
    BucketSize,
    CursorParam,
    DeviceParam,
    EndParam,
    LimitParam,
    MeasurementParam,
    Rfc3339,
    StartParam,
    check_aggregate_size,
    check_devices,
    check_measurements,
    check_window,
    cursor_checked,
    next_url,
    none_if_empty,
)
from api.schemas import (
    AggregateResult,
    BucketPublic,
    LatestReadings,
    QualityFlag,
    ReadingPage,
    ReadingPublic,
    quality_names,
)
from midika.models.records import Quality, Reading
from midika.store.base import AggregateQuery, ReadingQuery

router = APIRouter(prefix="/readings", tags=["readings"], responses=error_responses(400, 404, 503))

QualityParam = Annotated[
    list[QualityFlag] | None,
    Query(
        description="keep readings with every given flag set; `ok` keeps only unflagged readings "
        "and cannot be combined with a flag"
    ),
]


@router.get("", summary="Raw readings, paged")
def list_readings(
    request: Request,
    store: StoreDep,
    trial: QueryTrial,
    device: DeviceParam = None,
    measurement: MeasurementParam = None,
    start: StartParam = None,
    end: EndParam = None,
    quality: QualityParam = None,
    limit: LimitParam = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> ReadingPage:
    """Readings ordered by (ts, device, measurement); follow `next` until it is null."""
    check_devices(trial, device)
    check_measurements(trial, measurement)
    check_window(start, end)
    query = ReadingQuery(
        trial=trial.id,
        devices=none_if_empty(device),
        measurements=none_if_empty(measurement),
        start=start,
        end=end,
        quality=_quality(quality),
        limit=limit,
        cursor=cursor,
    )
    with cursor_checked(cursor):
        page = store.query_readings(query)
    return ReadingPage(
        items=[_reading(r) for r in page.items],
        next_cursor=page.next_cursor,
        next=next_url(request, page.next_cursor),
    )


@router.get("/aggregate", summary="Time-bucketed mean, min, max and count")
def aggregate_readings(
    store: StoreDep,
    trial: QueryTrial,
    start: Annotated[Rfc3339, Query(description="inclusive start, RFC 3339")],
    end: Annotated[Rfc3339, Query(description="exclusive end, RFC 3339")],
    bucket: Annotated[BucketSize, Query(description="bucket size: 1m to 31d, e.g. 5m, 1h, 1d")],
    device: DeviceParam = None,
    measurement: MeasurementParam = None,
    per_device: Annotated[bool, Query(description="one series per device; false pools devices")] = True,
) -> AggregateResult:
    """Non-empty buckets aligned to the Unix epoch (whole hours and days are UTC-aligned)."""
    check_devices(trial, device)
    check_measurements(trial, measurement)
    check_window(start, end)
    check_aggregate_size(
        trial,
        start=start,
        end=end,
        bucket=bucket,
        devices=device,
        measurements=measurement,
        per_device=per_device,
    )
    query = AggregateQuery(
        trial=trial.id,
        start=start,
        end=end,
        bucket=bucket,
        devices=none_if_empty(device),
        measurements=none_if_empty(measurement),
        per_device=per_device,
    )
    buckets = store.aggregate(query)
    return AggregateResult(
        bucket_seconds=int(bucket.total_seconds()),
        items=[
            BucketPublic(
                start=b.start,
                device=b.device,
                measurement=b.measurement,
                count=b.count,
                mean=b.mean,
                min=b.min,
                max=b.max,
            )
            for b in buckets
        ],
    )


@router.get("/latest", summary="Latest reading per device and measurement")
def latest_readings(
    store: StoreDep,
    trial: QueryTrial,
    device: DeviceParam = None,
    measurement: MeasurementParam = None,
) -> LatestReadings:
    """The reading with the greatest event time for each (device, measurement)."""
    check_devices(trial, device)
    check_measurements(trial, measurement)
    readings = store.latest(
        trial=trial.id, devices=none_if_empty(device), measurements=none_if_empty(measurement)
    )
    return LatestReadings(items=[_reading(r) for r in readings])


def _quality(flags: list[QualityFlag] | None) -> Quality | None:
    if not flags:
        return None
    if QualityFlag.OK in flags and len(set(flags)) > 1:
        raise bad_parameter("quality", "'ok' means no flag set, so it cannot be combined with a flag")
    combined = Quality.OK
    for flag in flags:
        combined |= flag.bit
    return combined


def _reading(r: Reading) -> ReadingPublic:
    return ReadingPublic(
        trial=r.trial,
        device=r.device,
        measurement=r.measurement,
        ts=r.ts,
        ingest_ts=r.ingest_ts,
        value=r.value,
        text=r.text,
        seq=r.seq,
        quality=quality_names(r.quality),
    )
