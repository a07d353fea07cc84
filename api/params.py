"""Query parameter types and the checks that need the trial: times, buckets, device and measurement names.

Types that can be checked alone (a time, a bucket size) are pydantic types, so a bad value fails
validation and reaches the client through the one error handler with the parameter's name.
Checks that need the trial (does this device exist?) raise `bad_parameter` from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Query, Request
from pydantic import BeforeValidator, WithJsonSchema

from api.catalog import catalog
from api.errors import bad_parameter
from midika.errors import BadQuery
from midika.models.trial import Trial
from midika.store import buckets
from midika.store.base import MONTH, AggregateQuery
from midika.timeutil import parse_timestamp, to_rfc3339

TIME_EXAMPLE = "2026-07-01T00:00:00Z"
MIN_BUCKET = timedelta(minutes=1)
MAX_BUCKET = timedelta(days=31)
MAX_AGGREGATE_CELLS = 100_000
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000

_BUCKET = re.compile(r"^(\d{1,9})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_HINT = f"expected an RFC 3339 time such as {TIME_EXAMPLE}"
_BUCKET_HINT = (
    "expected a bucket size such as 5m, 1h or 1d (a whole number then s, m, h or d) from 1m to 31d, "
    "or 'month' for calendar months"
)


def _rfc3339(raw: object) -> datetime:
    # Only text with an explicit offset: pydantic alone would also take epoch numbers and bare dates,
    # which in a URL are more likely a mistake than an intent.
    if isinstance(raw, datetime):
        return raw
    if not isinstance(raw, str):
        raise ValueError(_TIME_HINT)
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise ValueError(_TIME_HINT) from None


def _bucket(raw: object) -> timedelta | Literal["month"]:
    if isinstance(raw, timedelta) or raw == MONTH:
        return raw
    match = _BUCKET.match(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        raise ValueError(_BUCKET_HINT)
    size = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not MIN_BUCKET <= size <= MAX_BUCKET:
        raise ValueError("must be from 1m to 31d, such as 5m, 1h or 1d")
    return size


Rfc3339 = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": [TIME_EXAMPLE]}),
]
BucketSize = Annotated[
    timedelta | Literal["month"],
    BeforeValidator(_bucket),
    WithJsonSchema(
        {"type": "string", "pattern": f"{_BUCKET.pattern}|^month$", "examples": ["5m", "1h", "1d", "month"]}
    ),
]


def check_window(start: datetime | None, end: datetime | None) -> None:
    """Refuse an empty or reversed time window."""
    if start is not None and end is not None and start >= end:
        raise bad_parameter(
            "end", f"must be later than start {to_rfc3339(start)}; the window is [start, end)"
        )


def check_devices(trial: Trial, devices: Sequence[str] | None) -> None:
    """Refuse a device the trial does not have."""
    _check_names("device", devices, catalog(trial).device_ids, trial.id)


def check_measurements(trial: Trial, measurements: Sequence[str] | None) -> None:
    """Refuse a measurement no profile of the trial reports."""
    _check_names("measurement", measurements, catalog(trial).measurement_names, trial.id)


def check_event_types(trial: Trial, types: Sequence[str] | None) -> None:
    """Refuse an event type no profile of the trial raises."""
    _check_names("type", types, catalog(trial).event_types, trial.id)


def measurement_names(trial: Trial) -> list[str]:
    """Every measurement some profile of the trial reports, sorted."""
    return list(catalog(trial).measurement_names)


def _check_names(parameter: str, given: Sequence[str] | None, known: Sequence[str], trial: str) -> None:
    for name in given or ():
        if name not in known:
            listing = ", ".join(known) or "none"
            message = f"trial {trial!r} has no {parameter} {name!r}; valid: {listing}"
            raise bad_parameter(parameter, message, allowed=list(known))


def none_if_empty(values: list[str] | None) -> list[str] | None:
    """A repeatable parameter that was not given means "all"."""
    return values or None


def devices_of(trial: Trial, devices: Sequence[str] | None, sites: Sequence[str] | None) -> list[str] | None:
    """The devices named, narrowed to those at the sites named; None (all) when neither is given."""
    names = catalog(trial)
    _check_names("site", sites, names.site_ids, trial.id)
    check_devices(trial, devices)
    if not sites:
        return list(devices) if devices else None
    return [d for d in names.device_ids if names.site_of[d] in sites and (not devices or d in devices)]


def aggregate_series(trial: Trial, query: AggregateQuery) -> list[tuple[str, str | None]]:
    """The (measurement, device) series an aggregate of `query` covers: numeric measurements only."""
    names = catalog(trial)
    wanted = set(query.measurements) if query.measurements is not None else None
    chosen = names.device_ids if query.devices is None else set(query.devices).intersection(names.device_ids)
    return sorted(
        {
            (m, device if query.per_device else None)
            for device in chosen
            # Text measurements have nothing to aggregate, so they add no series.
            for m in names.numeric_of[device]
            if wanted is None or m in wanted
        },
        key=lambda s: (s[0], s[1] or ""),
    )


def check_aggregate_size(query: AggregateQuery, series: Sequence[tuple[str, str | None]]) -> None:
    """Refuse an aggregate whose answer would have more than MAX_AGGREGATE_CELLS buckets × `series`."""
    count = buckets.bucket_count(query)
    series_count = max(len(series), 1)
    if count * series_count > MAX_AGGREGATE_CELLS:
        raise bad_parameter(
            "bucket",
            f"{count} buckets × {series_count} series = {count * series_count} values, over the limit of "
            f"{MAX_AGGREGATE_CELLS}; use a larger bucket, a shorter start..end, fewer device, site or "
            "measurement parameters, or per_device=false",
        )


# Parameters shared by several routes, declared once so their documentation stays the same.
DeviceParam = Annotated[
    list[str] | None, Query(description="device id; repeat for several; all devices when absent")
]
MeasurementParam = Annotated[
    list[str] | None, Query(description="measurement name; repeat for several; all when absent")
]
StartParam = Annotated[Rfc3339 | None, Query(description=f"inclusive start, RFC 3339 such as {TIME_EXAMPLE}")]
EndParam = Annotated[Rfc3339 | None, Query(description="exclusive end, RFC 3339")]
LimitParam = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"items per page (default {DEFAULT_PAGE}), at most {MAX_PAGE}")
]
SiteParam = Annotated[
    list[str] | None,
    Query(description="site id; repeat for several; keeps the devices at those sites (with `device`: both)"),
]
CursorParam = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; absent for the first page")
]


def next_url(request: Request, cursor: str | None) -> str | None:
    """This request's URL with `cursor` replaced, or None on the last page."""
    return None if cursor is None else str(request.url.include_query_params(cursor=cursor))


@contextmanager
def cursor_checked(cursor: str | None) -> Iterator[None]:
    """Report the store refusing `cursor` as a bad `cursor` parameter, in the API's words."""
    try:
        yield
    except BadQuery as exc:
        # Every other parameter is checked before the store sees it, so a refusal is the cursor's.
        if cursor is None:
            raise
        raise bad_parameter(
            "cursor",
            "is not a next_cursor this API returned for the same query; pass it unchanged with the "
            "same other parameters, or leave it out for the first page",
        ) from exc
