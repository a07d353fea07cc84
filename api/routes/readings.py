"""GET /readings, /readings/aggregate and /readings/latest: a trial's measured values."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

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
    SiteParam,
    StartParam,
    aggregate_series,
    check_aggregate_size,
    check_measurements,
    check_window,
    cursor_checked,
    devices_of,
    next_url,
    none_if_empty,
)
from api.rendering import aggregate_body
from api.schemas import (
    AggregateFunction,
    AggregateResult,
    LatestReadings,
    QualityFlag,
    ReadingPage,
    ReadingPublic,
    quality_names,
)
from midika.models.records import Quality, Reading
from midika.store import buckets
from midika.store.base import MONTH, AggregateQuery, ReadingQuery
from midika.timeutil import to_us

DEFAULT_FUNCTIONS = (AggregateFunction.MEAN, AggregateFunction.MIN, AggregateFunction.MAX)

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
    site: SiteParam = None,
    measurement: MeasurementParam = None,
    start: StartParam = None,
    end: EndParam = None,
    quality: QualityParam = None,
    limit: LimitParam = DEFAULT_PAGE,
    cursor: CursorParam = None,
) -> ReadingPage:
    """Readings ordered by (ts, device, measurement); follow `next` until it is null."""
    devices = devices_of(trial, device, site)
    check_measurements(trial, measurement)
    check_window(start, end)
    query = ReadingQuery(
        trial=trial.id,
        devices=devices,
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


FunctionParam = Annotated[
    list[AggregateFunction] | None,
    Query(
        alias="fn",
        description="function per bucket; repeat for several (default mean, min, max; count is always "
        "there); p50..p99 are nearest-rank percentiles",
    ),
]
PercentileParam = Annotated[
    list[Annotated[float, Field(gt=0, le=100)]] | None,
    Query(description="any other percentile, above 0 and at most 100, e.g. 99.9; repeat for several"),
]


# The body is written by api.rendering, not built as models (see there why); the model documents it.
@router.get(
    "/aggregate", summary="Time-bucketed aggregates, every bucket reported", response_model=AggregateResult
)
def aggregate_readings(
    store: StoreDep,
    trial: QueryTrial,
    start: Annotated[Rfc3339, Query(description="inclusive start, RFC 3339")],
    end: Annotated[Rfc3339, Query(description="exclusive end, RFC 3339")],
    bucket: Annotated[
        BucketSize, Query(description="bucket size: 1m to 31d, e.g. 5m, 1h, 1d; or `month` (calendar)")
    ],
    device: DeviceParam = None,
    site: SiteParam = None,
    measurement: MeasurementParam = None,
    per_device: Annotated[bool, Query(description="one series per device; false pools devices")] = True,
    fn: FunctionParam = None,
    percentile: PercentileParam = None,
) -> Response:
    """Buckets aligned in the trial's time zone (a 1-day bucket in Asia/Tokyo starts at 00:00 JST).

    Every bucket of [start, end) is listed for every selected device and numeric measurement;
    an empty bucket has count 0 and null values, so gaps show.
    """
    check_measurements(trial, measurement)
    check_window(start, end)
    functions = list(dict.fromkeys(fn or DEFAULT_FUNCTIONS))
    percentiles = [f.percentile for f in functions if f.percentile is not None] + list(percentile or [])
    query = AggregateQuery(
        trial=trial.id,
        start=start,
        end=end,
        bucket=bucket,
        devices=devices_of(trial, device, site),
        measurements=none_if_empty(measurement),
        per_device=per_device,
        functions=[f.value for f in functions if f.percentile is None],  # type: ignore[misc]
        percentiles=list(dict.fromkeys(percentiles)),
        timezone=trial.timezone,
    )
    # The store reports series with data; the trial says which others exist: their buckets are empty.
    series = aggregate_series(trial, query)
    check_aggregate_size(query, series)
    grid = buckets.aggregate_grid(store, query, series=series)
    body = aggregate_body(
        bucket="month" if bucket == MONTH else _bucket_name(bucket),
        bucket_seconds=None if bucket == MONTH else int(bucket.total_seconds()),
        timezone=trial.timezone,
        functions=buckets.value_names(query),
        grid=grid,
        ends_us=_bucket_ends_us(query, grid.starts_us),
    )
    return Response(content=body, media_type="application/json")


def _bucket_name(size: timedelta) -> str:
    seconds = int(size.total_seconds())
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % length == 0:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


def _bucket_ends_us(query: AggregateQuery, starts_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if query.bucket == MONTH:
        bounds = buckets.month_starts(query)[1 : len(starts_us) + 1]
        return np.array([to_us(b) for b in bounds], dtype=np.int64)
    assert isinstance(query.bucket, timedelta)
    return starts_us + query.bucket // timedelta(microseconds=1)


@router.get("/latest", summary="Latest reading per device and measurement")
def latest_readings(
    store: StoreDep,
    trial: QueryTrial,
    device: DeviceParam = None,
    site: SiteParam = None,
    measurement: MeasurementParam = None,
) -> LatestReadings:
    """The reading with the greatest event time for each (device, measurement)."""
    devices = devices_of(trial, device, site)
    check_measurements(trial, measurement)
    readings = store.latest(trial=trial.id, devices=devices, measurements=none_if_empty(measurement))
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
