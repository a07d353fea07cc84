"""Records for every device, measurement and event type of a trial, for dashboards to show.

Built from the `Trial` model alone, so a new trial file is seeded (and its dashboard's queries run)
without touching the tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from midika.models.records import Event, QuarantineReason, QuarantineRecord, Reading, StatusReport
from midika.models.trial import Measurement, Trial, ValueType
from midika.store.influx import InfluxStore

STEP = timedelta(minutes=5)
POINTS = 12  # one hour of readings at STEP


def _value(measurement: Measurement, i: int) -> tuple[float | None, str | None]:
    if measurement.type is ValueType.STR:
        return None, ("morning", "evening")[i % 2]
    if measurement.type is ValueType.BOOL:
        return float(i % 2), None
    low, high = measurement.range or (0.0, 10.0)
    value = low + (high - low) * (i + 1) / (POINTS + 1)
    return (float(round(value)) if measurement.type is ValueType.INT else value), None


def seed(store: InfluxStore, trial: Trial, *, start: datetime) -> None:
    """Readings every STEP for an hour from `start`, one event of each type, two status reports per device."""
    readings, events, reports = [], [], []
    for n, device in enumerate(trial.devices):
        profile = trial.profile(device.profile)
        for i in range(POINTS):
            ts = start + i * STEP
            for measurement in profile.measurements:
                value, text = _value(measurement, i)
                readings.append(
                    Reading(trial.id, device.id, measurement.name, ts, value, ts + timedelta(seconds=1), text)
                )
        for k, event_type in enumerate(profile.events):
            ts = start + (k + 1) * STEP
            events.append(Event(trial.id, device.id, event_type.type, ts, ts, {"seeded": True}))
        for i, online in enumerate((True, n % 2 == 0)):  # every other device ends offline
            ts = start + (i + 1) * 5 * STEP
            reports.append(
                StatusReport(
                    trial.id,
                    device.id,
                    ts,
                    ts,
                    online=online,
                    battery=3.7 - i / 10,
                    rssi=-70.0 - n,
                    firmware="1.2.0",
                )
            )
    store.write_readings(readings)
    store.write_events(events)
    store.write_status(reports)


def seed_quarantine(store: InfluxStore, *, start: datetime) -> None:
    """A few rejected messages with different reasons."""
    store.write_quarantine(
        [
            QuarantineRecord(
                topic=f"midika/v1/x/y/{i}",
                payload=b"{}",
                reason=reason,
                detail="seeded",
                received_ts=start + i * STEP,
                payload_size=2,
            )
            for i, reason in enumerate(
                [QuarantineReason.BAD_TOPIC, QuarantineReason.UNKNOWN_DEVICE, QuarantineReason.SCHEMA_INVALID]
                * 2
            )
        ]
    )
