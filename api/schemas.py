"""The public shapes of the API: what `/openapi.json` documents and what clients may rely on.

They are separate from `midika.models` on purpose: the kernel's models can change shape for the
ingest's sake without silently changing the API's contract.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from midika.models.records import Quality
from midika.models.trial import ValueType


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- errors -------------------------------------------------------------------------------------


class ErrorDetail(_Public):
    """One thing wrong with a request."""

    location: str | None = Field(None, description="where the problem is: query, path, body")
    parameter: str | None = Field(None, description="the parameter at fault")
    message: str = Field(description="what is wrong and what was expected")
    allowed: list[str] | None = Field(None, description="the values that would have been accepted")


class ErrorBody(_Public):
    """What went wrong, for people (`message`) and programs (`status`, `code`)."""

    status: int = Field(description="the HTTP status, repeated for clients that lose it")
    code: str = Field(description="stable machine-readable code, e.g. bad_parameter, not_found")
    message: str = Field(description="what went wrong and how to fix the request")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(_Public):
    """The envelope of every 4xx and 5xx response."""

    error: ErrorBody


# --- health -------------------------------------------------------------------------------------


class Health(_Public):
    """The service is up and its store answers."""

    status: Literal["ok"] = "ok"
    store: Literal["reachable"] = "reachable"
    version: str
    trials: int = Field(description="number of trials served")


# --- trials -------------------------------------------------------------------------------------


class MunicipalityPublic(_Public):
    """The local government running a trial."""

    name: str
    code: str = Field(description="6-digit 全国地方公共団体コード")


class TrialSummary(_Public):
    """A trial as listed."""

    id: str
    name: str
    municipality: MunicipalityPublic
    domain: str
    timezone: str
    personal_data: bool
    sites: int = Field(description="number of sites")
    devices: int = Field(description="number of devices")


class TrialList(_Public):
    """Every trial served."""

    items: list[TrialSummary]


class SitePublic(_Public):
    """A named place of a trial."""

    id: str
    name: str
    lat: float
    lon: float


class MeasurementPublic(_Public):
    """A quantity a profile reports."""

    name: str
    unit: str
    type: ValueType
    range: tuple[float, float] | None = Field(description="plausible [min, max]; outside is flagged")
    period_s: float = Field(description="expected seconds between readings")
    description: str


class EventTypePublic(_Public):
    """An event a profile can raise, with the fields of its data."""

    type: str
    fields: dict[str, ValueType]
    description: str


class ProfilePublic(_Public):
    """A kind of device: what it measures and which events it raises."""

    id: str
    description: str
    measurements: list[MeasurementPublic]
    events: list[EventTypePublic]


class LocationPublic(_Public):
    """A WGS84 position."""

    lat: float
    lon: float
    depth_m: float | None


class DevicePublic(_Public):
    """A device as declared in the trial file."""

    id: str
    profile: str
    site: str
    location: LocationPublic | None
    description: str


class TrialDetail(_Public):
    """A trial with its sites, device profiles and devices."""

    id: str
    name: str
    municipality: MunicipalityPublic
    domain: str
    timezone: str
    personal_data: bool
    description: str
    sites: list[SitePublic]
    profiles: list[ProfilePublic]
    devices: list[DevicePublic]


# --- devices ------------------------------------------------------------------------------------


class DeviceStatus(StrEnum):
    """What the latest status message said; `unknown` when the device never sent one."""

    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class DeviceStatePublic(_Public):
    """A device of a trial with what is known about it right now."""

    id: str
    profile: str
    site: str
    status: DeviceStatus
    online: bool | None = Field(description="from the latest status message; null if none was sent")
    last_seen: datetime | None = Field(description="when anything from the device last arrived")
    status_ts: datetime | None = Field(description="event time of the latest status message")
    battery: float | None
    rssi: float | None = Field(description="dBm")
    firmware: str | None


class DeviceStateList(_Public):
    """Every device of a trial."""

    items: list[DeviceStatePublic]


# --- readings -----------------------------------------------------------------------------------


class QualityFlag(StrEnum):
    """A reason a reading deserves a second look; `ok` filters for readings with none."""

    OK = "ok"
    OUT_OF_RANGE = "out_of_range"
    NO_DEVICE_TIME = "no_device_time"
    CLOCK_SUSPECT = "clock_suspect"

    @property
    def bit(self) -> Quality:
        """The store's flag for this name."""
        return Quality[self.name]


def quality_names(quality: Quality) -> list[str]:
    """The names of the flags set in `quality`, in bit order; empty for a clean reading."""
    return [flag.value for flag in QualityFlag if flag is not QualityFlag.OK and flag.bit in quality]


class ReadingPublic(_Public):
    """One value of one measurement of one device at one event time."""

    trial: str
    device: str
    measurement: str
    ts: datetime = Field(description="event time: when the device measured it")
    ingest_ts: datetime = Field(description="when midika received it")
    value: float | None = Field(description="numbers, and booleans as 0/1; null for text measurements")
    text: str | None = Field(None, description="the value of a text measurement")
    seq: int | None = Field(description="the device's sequence number of the message")
    quality: list[str] = Field(description="quality flags set on the reading; empty when none")


class ReadingPage(_Public):
    """One page of readings."""

    items: list[ReadingPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="URL of the next page; null on the last")


class LatestReadings(_Public):
    """The latest reading per device and measurement."""

    items: list[ReadingPublic]


class AggregateFunction(StrEnum):
    """What to compute per bucket; `count` is always reported. Percentiles are nearest-rank."""

    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    COUNT = "count"
    SUM = "sum"
    FIRST = "first"
    LAST = "last"
    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    @property
    def percentile(self) -> float | None:
        """The percentile this function is, or None."""
        return float(self.value[1:]) if self.value.startswith("p") else None


class BucketPublic(_Public):
    """Aggregates of one measurement over [start, end); count 0 and null values when it is empty."""

    start: datetime
    end: datetime
    device: str | None = Field(description="null when devices are pooled (per_device=false)")
    measurement: str
    count: int = Field(description="numeric readings in the bucket")
    values: dict[str, float | None] = Field(
        description="each asked function (mean, min, max, sum, first, last) and percentile (p95, p99.9) "
        "by name; null in an empty bucket"
    )


class AggregateResult(_Public):
    """Every bucket of the window for each series, ordered by measurement, device and start."""

    bucket: str = Field(description="the bucket size as asked, e.g. 1h or month")
    bucket_seconds: int | None = Field(description="the bucket size in seconds; null for months")
    timezone: str = Field(description="the trial's time zone, in which buckets are aligned")
    functions: list[str] = Field(description="the names in each bucket's `values`")
    items: list[BucketPublic]


# --- events -------------------------------------------------------------------------------------


class EventPublic(_Public):
    """Something a device detected."""

    trial: str
    device: str
    type: str
    ts: datetime
    ingest_ts: datetime
    data: dict[str, Any]
    seq: int | None


class EventPage(_Public):
    """One page of events."""

    items: list[EventPublic]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="URL of the next page; null on the last")


# --- KPIs ---------------------------------------------------------------------------------------


class MeasurementKpis(_Public):
    """How completely one measurement of a device was delivered."""

    measurement: str
    period_s: float
    received: int = Field(description="readings with an event time in the window")
    expected: int = Field(description="window length / the measurement's period, rounded down")
    completeness: float | None = Field(description="received / expected, at most 1; null if none expected")


class Kpis(_Public):
    """Delivery figures of a device, or of the whole trial."""

    received: int = Field(description="readings with an event time in the window")
    expected: int = Field(description="sum of `expected` over the measurements")
    completeness: float | None = Field(
        description="sum over measurements of min(received, expected), / expected; null if none expected"
    )
    uptime: float | None = Field(
        description="share of time slots with at least one numeric reading; a device's slot is its "
        "shortest measurement period but at least an hour, aligned in the trial's time zone"
    )
    latency_p50_s: float | None = Field(description="median of ingest_ts - ts (nearest rank), seconds")
    latency_p95_s: float | None = Field(
        description="95th percentile of ingest_ts - ts (nearest rank), seconds"
    )
    flagged_share: float | None = Field(description="share of received readings with any quality flag")
    events: dict[str, int] = Field(description="events in the window, by type")


class DeviceKpis(Kpis):
    """A device's delivery figures, with each measurement's completeness."""

    device: str
    site: str
    profile: str
    measurements: list[MeasurementKpis]


class TrialKpis(_Public):
    """Evaluation figures of a trial over [start, end), per device and for the whole trial."""

    trial: str
    start: datetime
    end: datetime
    timezone: str
    totals: Kpis = Field(description="the whole trial (or the devices selected)")
    devices: list[DeviceKpis]
