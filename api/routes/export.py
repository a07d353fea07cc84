"""GET /export: a trial's readings as a CSV, NDJSON or Parquet download, streamed."""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import QueryTrial, StoreDep
from api.errors import error_responses
from api.export import ExportFormat, stream, tables
from api.params import (
    DeviceParam,
    MeasurementParam,
    Rfc3339,
    SiteParam,
    check_measurements,
    check_window,
    devices_of,
    measurement_names,
)
from midika.models.trial import Trial
from midika.store.base import ReadingQuery

router = APIRouter(tags=["export"], responses=error_responses(400, 404, 503))

_DOCUMENTED = {fmt.media_type.split(";")[0]: {"schema": {"type": "string"}} for fmt in ExportFormat}


@router.get(
    "/export",
    summary="Download a trial's readings as CSV, NDJSON or Parquet",
    response_class=StreamingResponse,
    responses={200: {"description": "the export, as a download", "content": _DOCUMENTED}},
)
def export(
    store: StoreDep,
    trial: QueryTrial,
    start: Annotated[Rfc3339, Query(description="inclusive start, RFC 3339")],
    end: Annotated[Rfc3339, Query(description="exclusive end, RFC 3339")],
    device: DeviceParam = None,
    site: SiteParam = None,
    measurement: MeasurementParam = None,
    format: Annotated[ExportFormat, Query(description="csv (wide), ndjson or parquet (one reading each)")] = (
        ExportFormat.CSV
    ),
) -> StreamingResponse:
    """Streams however long the range: memory holds one page of readings at a time.

    CSV has one row per time and device and a column per measurement, its unit in the header;
    NDJSON and Parquet have one record per reading, with unit, ingest time and quality flags.
    Times are ISO 8601 in UTC. A store failure after the first bytes cuts the download short.
    """
    check_measurements(trial, measurement)
    check_window(start, end)
    devices = devices_of(trial, device, site)
    query = ReadingQuery(
        trial=trial.id,
        devices=devices,
        measurements=measurement or None,
        start=start,
        end=end,
    )
    # The first table is read before the response starts, so a store that is down gets a proper 503.
    readings = tables(store, query)
    first = next(readings)
    columns = measurement or _measurements_of(trial, devices)
    body = stream(format, trial, columns, itertools.chain([first], readings))
    stamp = f"{start.astimezone(UTC):%Y%m%dT%H%M%SZ}-{end.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    filename = f"{trial.id}_{stamp}.{format.value}"
    return StreamingResponse(
        body,
        media_type=format.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _measurements_of(trial: Trial, devices: list[str] | None) -> list[str]:
    chosen = [d for d in trial.devices if devices is None or d.id in devices]
    names = {m.name for d in chosen for m in trial.profile(d.profile).measurements}
    return [m for m in measurement_names(trial) if m in names]
