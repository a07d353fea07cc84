"""What the ingest produces and the stores keep: readings, events, status reports, quarantined messages.

These are slotted dataclasses rather than pydantic models because the ingest makes hundreds of
thousands of them a second; they are validated by the ingest before they are built. All times are
timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntFlag, StrEnum
from typing import Any


class Quality(IntFlag):
    """Why a stored reading deserves a second look; 0 means nothing is known to be wrong."""

    OK = 0
    OUT_OF_RANGE = 1  # outside the measurement's plausible range: stored, not rejected
    NO_DEVICE_TIME = 2  # the device sent no timestamp; the event time is the receive time
    CLOCK_SUSPECT = 4  # the device clock looks wrong (skewed or reset) but the reading was kept


class QuarantineReason(StrEnum):
    """Why a message was not stored; every rejected message carries exactly one."""

    BAD_TOPIC = "bad_topic"  # not a midika/v1/{trial}/{device}/{kind} topic
    UNKNOWN_TRIAL = "unknown_trial"
    UNKNOWN_DEVICE = "unknown_device"
    TOPIC_MISMATCH = "topic_mismatch"  # the payload names another device than the topic
    UNPARSEABLE = "unparseable"  # not UTF-8 JSON
    SCHEMA_INVALID = "schema_invalid"  # JSON, but not a payload the contract allows
    UNKNOWN_MEASUREMENT = "unknown_measurement"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"  # NaN or ±inf
    UNIT_MISMATCH = "unit_mismatch"  # a SenML unit other than the profile's
    FUTURE_TIMESTAMP = "future_timestamp"  # beyond the configured clock tolerance
    PAST_TIMESTAMP = "past_timestamp"  # before 1970-01-01T00:00:00Z: no device clock counts from earlier
    TOO_LARGE = "too_large"  # payload over the size limit


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one measurement of one device at one event time."""

    trial: str
    device: str
    measurement: str
    ts: datetime  # event time: when the device measured it
    value: float | None  # numbers and booleans (as 0/1); None for text measurements
    ingest_ts: datetime  # when midika received it
    text: str | None = None  # value of a `str` measurement
    seq: int | None = None  # the device's sequence number of the message
    quality: Quality = Quality.OK

    @property
    def key(self) -> tuple[str, str, str, datetime]:
        """Identity used for de-duplication: a reading delivered twice has the same key."""
        return (self.trial, self.device, self.measurement, self.ts)


@dataclass(frozen=True, slots=True)
class Event:
    """Something a device detected: a rip current, a vessel, a feeding operation."""

    trial: str
    device: str
    type: str
    ts: datetime
    ingest_ts: datetime
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A device's health message; `online` is False for the broker-published last will."""

    trial: str
    device: str
    ts: datetime
    ingest_ts: datetime
    online: bool | None = None
    battery: float | None = None  # volts, or 0..1 state of charge, per profile
    rssi: float | None = None  # dBm
    firmware: str | None = None
    uptime_s: float | None = None


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A message that was not stored, kept with why, so nothing is dropped silently."""

    topic: str
    payload: bytes  # size-capped copy of the raw payload
    reason: QuarantineReason
    detail: str  # human-readable: what exactly is wrong, to fix the firmware or the registry
    received_ts: datetime
    trial: str | None = None
    device: str | None = None
    payload_size: int = 0  # the original size, in case the copy was capped
    id: int | None = None  # assigned by the store


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What is known about a device right now, derived from its readings and status messages."""

    trial: str
    device: str
    last_seen: datetime | None  # latest ingest time of anything the device sent
    online: bool | None  # from the latest status message; None if it never sent one
    battery: float | None = None
    rssi: float | None = None
    firmware: str | None = None
    status_ts: datetime | None = None
