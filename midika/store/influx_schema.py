"""How midika's records map onto InfluxDB points, as line protocol, and back from InfluxQL rows.

Schema (one database, or one bucket = "database/retention-policy" on 1.x):

    measurement  tags                          fields                                       time
    readings     trial, device, measurement    value (float), text (string), quality (int),  event ts
                                               seq (int), ingest_ts (int, µs since epoch),
                                               delay_us (int, ingest_ts - event ts)
    events       trial, device, type           data (JSON string), seq (int), ingest_ts      event ts
    status       trial, device                 online (bool), battery, rssi, uptime_s        report ts
                                               (float), firmware (string), ingest_ts
    device_seen  trial, device                 records (int: how many new records)           ingest ts
    quarantine   reason                        id, payload_size (int), topic, detail,        received ts
                                               payload (base64), trial, device (string)      + id % 1000 ns

Cardinality is bounded by the trial registry: readings have one series per (device, measurement),
events per (device, event type), status and device_seen per device. Everything unbounded — values,
sequence numbers, event payloads, and the topic/trial/device a quarantined message *claimed* (an
attacker picks those) — is a field, never a tag; quarantine's only tag is the fixed set of reasons.

A point's identity is its series plus its time, so a reading's key (trial, device, measurement, ts)
and an event's (trial, device, type, ts) are exactly the point identity: InfluxDB stores each key
once. Times are written in microseconds, the precision of Python datetimes and of the contract.
InfluxDB holds times as int64 nanoseconds, 1677-09-21T00:12:43.145224194Z to
2262-04-11T23:47:16.854775806Z; a record whose time lies outside is refused (StoreError) before
anything of its batch is written, as 1.x would write the rest of the batch and drop it.
Absent values (a text reading's `value`, an unknown `seq`) are absent fields, read back as null;
`quality` and `ingest_ts` are always written so that every point has at least one field.
`delay_us` repeats ingest_ts minus the event time because InfluxQL cannot subtract the time column
from a field: it is what delivery-latency percentiles are computed over (points written before it
existed have none and are left out of those percentiles, though not out of the counts).

`device_seen` keeps, per device and write, the greatest ingest time of the newly stored records
(readings, events, status reports), so a device's `last_seen` is its newest device_seen point
rather than a max() over everything it ever sent.

Quarantined messages have no natural key and must never overwrite each other, so each gets an id
(the greatest stored id + 1, assigned under the store's lock) and its point time is the received
time plus `id % 1000` nanoseconds: two records collide only if received in the same microsecond
with ids a multiple of 1000 apart. Two processes writing quarantine at once could hand out the same
id; midika has one ingest process, the only writer of quarantine.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from midika.errors import StoreError
from midika.models.records import (
    DeviceState,
    Event,
    Quality,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)
from midika.timeutil import from_us, to_us

READINGS = "readings"
EVENTS = "events"
STATUS = "status"
DEVICE_SEEN = "device_seen"
QUARANTINE = "quarantine"

_MICROSECOND = timedelta(microseconds=1)
MIN_NS = -(2**63) + 2  # the first and last time InfluxDB holds (models.MinNanoTime, MaxNanoTime)
MAX_NS = 2**63 - 2
FIRST_US = -(-MIN_NS // 1000)  # the first and last microsecond a point can have
LAST_US = MAX_NS // 1000
QUARANTINE_ID_SLOTS = 1000  # nanoseconds per microsecond: the sub-µs offsets a quarantine id can take

Row = Mapping[str, Any]


def _point_us(ts: datetime, kind: str, key: object) -> int:
    """`ts` as a point's time in µs; StoreError naming the `kind` record `key` if InfluxDB cannot hold it."""
    us = to_us(ts)
    if not FIRST_US <= us <= LAST_US:  # the message is built only here: this runs for every point
        raise StoreError(
            f"{kind} {key!r}: time {ts.isoformat()} is outside the times InfluxDB can store "
            f"({from_us(FIRST_US).isoformat()} to {from_us(LAST_US).isoformat()})"
        )
    return us


_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


@functools.lru_cache(maxsize=65_536)  # tag values come from the registry: few, and repeated in every batch
def _series(measurement: str, *tags: tuple[str, str]) -> str:
    """`measurement,key=value,…` with the tags escaped, as line protocol starts a point."""
    parts = [measurement]
    for key, value in tags:
        # Line protocol cannot carry an empty tag value, a newline, or a trailing backslash.
        if not value or "\n" in value or value.endswith("\\"):
            raise StoreError(f"{measurement} {key} {value!r} cannot be an InfluxDB tag value")
        parts.append(f"{key}={value.translate(_TAG_ESCAPES)}")
    return ",".join(parts)


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite; InfluxDB cannot store it")
    return repr(number)


def reading_line(reading: Reading) -> str:
    """The line-protocol point of one reading (time in µs)."""
    ts_us, ingest_us = _point_us(reading.ts, "reading", reading.key), to_us(reading.ingest_ts)
    fields = f"quality={int(reading.quality)}i,ingest_ts={ingest_us}i,delay_us={ingest_us - ts_us}i"
    if reading.value is not None:
        try:
            fields += f",value={_float(reading.value)}"
        except ValueError as exc:
            raise StoreError(f"reading {reading.key!r}: value {exc}") from exc
    if reading.text is not None:
        fields += f",text={_string(reading.text)}"
    if reading.seq is not None:
        fields += f",seq={reading.seq}i"
    series = _series(
        READINGS, ("device", reading.device), ("measurement", reading.measurement), ("trial", reading.trial)
    )
    return f"{series} {fields} {ts_us}"


def event_line(event: Event) -> str:
    """The line-protocol point of one event (time in µs); its data is stored as JSON text."""
    try:
        data = json.dumps(event.data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        key = (event.trial, event.device, event.type, event.ts)
        raise StoreError(f"event {key!r}: data is not JSON-serialisable: {exc}") from exc
    fields = f"data={_string(data)},ingest_ts={to_us(event.ingest_ts)}i"
    if event.seq is not None:
        fields += f",seq={event.seq}i"
    ts_us = _point_us(event.ts, "event", (event.trial, event.device, event.type, event.ts))
    series = _series(EVENTS, ("device", event.device), ("trial", event.trial), ("type", event.type))
    return f"{series} {fields} {ts_us}"


def status_line(report: StatusReport) -> str:
    """The line-protocol point of one status report (time in µs)."""
    fields = [f"ingest_ts={to_us(report.ingest_ts)}i"]
    if report.online is not None:
        fields.append(f"online={'true' if report.online else 'false'}")
    for name in ("battery", "rssi", "uptime_s"):
        value = getattr(report, name)
        if value is not None:
            try:
                fields.append(f"{name}={_float(value)}")
            except ValueError as exc:
                key = (report.trial, report.device, report.ts)
                raise StoreError(f"status {key!r}: {name} {exc}") from exc
    if report.firmware is not None:
        fields.append(f"firmware={_string(report.firmware)}")
    ts_us = _point_us(report.ts, "status", (report.trial, report.device, report.ts))
    series = _series(STATUS, ("device", report.device), ("trial", report.trial))
    return f"{series} {','.join(fields)} {ts_us}"


def seen_lines(records: Iterable[tuple[str, str, datetime]]) -> list[str]:
    """`device_seen` points (time in µs): per (trial, device), the latest of the given ingest times."""
    latest: dict[tuple[str, str], datetime] = {}
    count: dict[tuple[str, str], int] = {}
    for trial, device, ingest_ts in records:
        key = (trial, device)
        if key not in latest or ingest_ts > latest[key]:
            latest[key] = ingest_ts
        count[key] = count.get(key, 0) + 1
    return [
        f"{_series(DEVICE_SEEN, ('device', device), ('trial', trial))} records={count[trial, device]}i "
        f"{_point_us(ts, 'ingest time of device', (trial, device))}"
        for (trial, device), ts in latest.items()
    ]


def quarantine_line(record: QuarantineRecord, record_id: int) -> str:
    """The line-protocol point of one quarantined message (time in ns, see the module docstring)."""
    fields = [
        f"id={record_id}i",
        f"payload_size={record.payload_size}i",
        f"topic={_string(record.topic)}",
        f"detail={_string(record.detail)}",
        f"payload={_string(base64.b64encode(record.payload).decode('ascii'))}",
    ]
    if record.trial is not None:
        fields.append(f"trial={_string(record.trial)}")
    if record.device is not None:
        fields.append(f"device={_string(record.device)}")
    received_us = _point_us(record.received_ts, "quarantined message", record_id)
    time_ns = received_us * QUARANTINE_ID_SLOTS + record_id % QUARANTINE_ID_SLOTS
    return f"{_series(QUARANTINE, ('reason', str(record.reason)))} {','.join(fields)} {time_ns}"


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def complete_reading(row: Row) -> bool:
    """Whether every field of a reading point is visible yet.

    InfluxDB 1.x stores each field as a series of its own, so a query that runs while a point is
    being written can see some of its fields and not others. Such a row is skipped: the reading
    shows up whole in the next query, rather than once with a missing value.
    """
    return (
        row.get("ingest_ts") is not None
        and row.get("quality") is not None
        and (row.get("value") is not None or row.get("text") is not None)
    )


def complete_event(row: Row) -> bool:
    """Whether every field of an event point is visible yet (see `complete_reading`)."""
    return row.get("ingest_ts") is not None and row.get("data") is not None


def reading_from_row(row: Row, *, trial: str) -> Reading:
    """The reading of an InfluxQL row with columns time (µs), device, measurement and the fields."""
    return Reading(
        trial=trial,
        device=row["device"],
        measurement=row["measurement"],
        ts=from_us(row["time"]),
        value=_opt_float(row.get("value")),
        ingest_ts=from_us(row["ingest_ts"]),
        text=row.get("text"),
        seq=_opt_int(row.get("seq")),
        quality=Quality(row.get("quality") or 0),
    )


def event_from_row(row: Row, *, trial: str) -> Event:
    """The event of an InfluxQL row with columns time (µs), device, type and the fields."""
    return Event(
        trial=trial,
        device=row["device"],
        type=row["type"],
        ts=from_us(row["time"]),
        ingest_ts=from_us(row["ingest_ts"]),
        data=json.loads(row.get("data") or "{}"),
        seq=_opt_int(row.get("seq")),
    )


def quarantine_from_row(row: Row) -> QuarantineRecord:
    """The quarantined message of an InfluxQL row with columns time (ns), reason and the fields."""
    return QuarantineRecord(
        topic=row.get("topic") or "",
        payload=base64.b64decode(row.get("payload") or ""),
        reason=QuarantineReason(row["reason"]),
        detail=row.get("detail") or "",
        received_ts=from_us(int(row["time"]) // QUARANTINE_ID_SLOTS),
        trial=row.get("trial"),
        device=row.get("device"),
        payload_size=int(row.get("payload_size") or 0),
        id=int(row["id"]),
    )


def device_states(trial: str, *, status_rows: Sequence[Row], seen_rows: Sequence[Row]) -> list[DeviceState]:
    """Device states from each device's newest status point and newest device_seen point (times in µs)."""
    status = {r["device"]: r for r in status_rows}
    seen = {r["device"]: from_us(int(r["time"])) for r in seen_rows}
    states = []
    for device in sorted(status.keys() | seen.keys()):
        report = status.get(device, {})
        states.append(
            DeviceState(
                trial=trial,
                device=device,
                last_seen=seen.get(device),
                online=report.get("online"),
                battery=_opt_float(report.get("battery")),
                rssi=_opt_float(report.get("rssi")),
                firmware=report.get("firmware"),
                status_ts=from_us(int(report["time"])) if report else None,
            )
        )
    return states


READING_COLUMNS = ("value", "text", "quality", "seq", "ingest_ts")
EVENT_COLUMNS = ("data", "seq", "ingest_ts")
STATUS_COLUMNS = ("online", "battery", "rssi", "firmware", "uptime_s", "ingest_ts")
QUARANTINE_COLUMNS = ("id", "payload_size", "topic", "detail", "payload", "trial", "device", "reason")
