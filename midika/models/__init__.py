"""Domain models shared by every package: trials and profiles, readings, events, status, quarantine."""

from midika.models.records import (
    DeviceState,
    Event,
    Quality,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)
from midika.models.trial import (
    Device,
    DeviceProfile,
    EventType,
    Measurement,
    Municipality,
    Site,
    Trial,
    ValueType,
)

__all__ = [
    "Device",
    "DeviceProfile",
    "DeviceState",
    "Event",
    "EventType",
    "Measurement",
    "Municipality",
    "Quality",
    "QuarantineReason",
    "QuarantineRecord",
    "Reading",
    "Site",
    "StatusReport",
    "Trial",
    "ValueType",
]
