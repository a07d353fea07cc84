"""Reading objects, events and status messages, checked against the device's profile.

The rules are the ones `devices/CONTRACT.md` states and `devices/contract.py` expresses as JSON
Schema; every rejection names the record and field and says what to fix. SenML packs are
`ingest.senml`'s.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import Any, NoReturn

from ingest.checks import (
    ABSENT,
    CLOCK_FLOOR,
    CLOCK_SUSPECT,
    FLOAT,
    NO_DEVICE_TIME,
    OUT_OF_RANGE,
    QUALITY,
    SEQ_LIMIT,
    Bad,
    Context,
    R,
    describe,
    field_value,
    finite_number,
    listing,
    optional_time,
    reading_value,
    repeated,
    seq_number,
    timestamp,
    unexpected_keys,
    unknown_measurement,
    where_in,
)
from ingest.errors import Invalid
from midika.models.records import Event, Reading, StatusReport

READING_KEYS = frozenset({"ts", "seq", "values"})

EVENT_KEYS = frozenset({"ts", "seq", "type", "data"})

STATUS_KEYS = frozenset({"ts", "online", "battery", "rssi", "firmware", "uptime"})

FIRMWARE_MAX = 64


# One function on purpose: this loop is the ingest's hot path, and a call per record or value costs
# more than the checks themselves.
def readings(records: list[dict[str, Any]], *, batch: bool, ctx: Context) -> list[Reading]:  # noqa: PLR0912
    """Readings of midika reading objects (`{"ts", "seq", "values"}`)."""
    trial, device, received = ctx.trial, ctx.device, ctx.received
    specs = ctx.index.measurements
    latest = ctx.latest
    out: list[Reading] = []
    append = out.append
    seen: set[tuple[str, datetime]] | None = set() if batch else None
    value: float | None
    text: str | None
    for i, record in enumerate(records):
        if not READING_KEYS.issuperset(record):
            unexpected_keys(record, READING_KEYS, where_in(i, batch), "a reading")
        values = record.get("values", ABSENT)
        if type(values) is not dict or not values:
            _bad_values(values, where_in(i, batch))
        try:
            raw = record.get("ts", ABSENT)
            if raw is ABSENT:
                ts, bits = received, NO_DEVICE_TIME
            else:
                ts = timestamp(raw, latest)
                bits = CLOCK_SUSPECT if ts < CLOCK_FLOOR else 0
        except Bad as bad:
            raise bad.at(f"{where_in(i, batch)}ts") from None
        seq = record.get("seq")
        if (seq is not None or "seq" in record) and (type(seq) is not int or not 0 <= seq < SEQ_LIMIT):
            seq = seq_number(seq, where_in(i, batch), "seq")
        for name, raw in values.items():
            spec = specs.get(name)
            if spec is None:
                unknown_measurement(name, f"{where_in(i, batch)}values.{name}", ctx)
            if type(raw) is float and spec.type is FLOAT and isfinite(raw):  # the common case, inlined
                value, text = raw, None
            else:
                try:
                    value, text = reading_value(raw, spec.type, name)
                except Bad as bad:
                    raise bad.at(f"{where_in(i, batch)}values.{name}") from None
            flags = bits
            if spec.ranged and not spec.lo <= value <= spec.hi:  # type: ignore[operator]
                flags |= OUT_OF_RANGE
            if seen is not None:
                key = (name, ts)
                if key in seen:
                    repeated(name, ts, f"[{i}]")
                seen.add(key)
            append(Reading(trial, device, name, ts, value, received, text, seq, QUALITY[flags]))
    return out


def events(records: list[dict[str, Any]], *, batch: bool, ctx: Context) -> list[Event]:
    """Events of `{"ts", "seq", "type", "data"}` objects, data checked against the event type's fields."""
    types = ctx.index.events
    out: list[Event] = []
    seen: set[tuple[str, datetime]] = set()
    for i, record in enumerate(records):
        where = where_in(i, batch)
        if not EVENT_KEYS.issuperset(record):
            unexpected_keys(record, EVENT_KEYS, where, "an event")
        kind = record.get("type", ABSENT)
        if type(kind) is not str:
            example = next(iter(types), "RIP_DETECTED")
            raise Invalid(
                R.SCHEMA_INVALID,
                f'{where}type is {describe(kind)}; send the event type as a string, e.g. "type": "{example}"',
            )
        fields = types.get(kind)
        if fields is None:
            raise Invalid(
                R.UNKNOWN_EVENT_TYPE,
                f"{where}type: {kind!r} is not an event of profile {ctx.index.profile_id!r} "
                f"(it has {listing(types)}); fix the firmware or declare the event in the trial file",
            )
        data = record.get("data", {})
        if type(data) is not dict:
            raise Invalid(R.SCHEMA_INVALID, f"{where}data is {describe(data)}; send an object")
        checked: dict[str, Any] = {}
        for field, raw in data.items():
            vtype = fields.get(field)
            if vtype is None:
                raise Invalid(
                    R.SCHEMA_INVALID,
                    f"{where}data.{field} is not a field of {kind} (it has {listing(fields)}); "
                    "remove it or declare it in the trial file",
                )
            try:
                checked[field] = field_value(raw, vtype, field)
            except Bad as bad:
                raise bad.at(f"{where}data.{field}") from None
        ts = optional_time(record, where, ctx)
        raw = record.get("seq", ABSENT)
        seq = None if raw is ABSENT else seq_number(raw, where, "seq")
        if (kind, ts) in seen:
            repeated(kind, ts, where)
        seen.add((kind, ts))
        out.append(Event(ctx.trial, ctx.device, kind, ts, ctx.received, checked, seq))
    return out


def status(record: dict[str, Any], *, ctx: Context) -> StatusReport:
    """The status report of one `{"ts", "online", "battery", "rssi", "firmware", "uptime"}` object."""
    if not STATUS_KEYS.issuperset(record):
        unexpected_keys(record, STATUS_KEYS, "", "a status message")
    online = record.get("online", ABSENT)
    if online is not ABSENT and type(online) is not bool:
        raise Invalid(R.SCHEMA_INVALID, f"online is {describe(online)}; send true or false")
    firmware = record.get("firmware", ABSENT)
    if firmware is not ABSENT and (type(firmware) is not str or not 1 <= len(firmware) <= FIRMWARE_MAX):
        raise Invalid(
            R.SCHEMA_INVALID,
            f"firmware is {describe(firmware)}; send a version string of 1-{FIRMWARE_MAX} characters",
        )
    battery, rssi, uptime = (
        finite_number(record[key], "", key) if key in record else None
        for key in ("battery", "rssi", "uptime")
    )
    if uptime is not None and uptime < 0:
        raise Invalid(R.SCHEMA_INVALID, f"uptime is {uptime}; send seconds since boot (>= 0)")
    return StatusReport(
        ctx.trial,
        ctx.device,
        optional_time(record, "", ctx),
        ctx.received,
        online=None if online is ABSENT else online,
        battery=battery,
        rssi=rssi,
        firmware=None if firmware is ABSENT else firmware,
        uptime_s=uptime,
    )


def _bad_values(values: Any, where: str) -> NoReturn:
    problem = "an empty object" if type(values) is dict else describe(values)
    raise Invalid(
        R.SCHEMA_INVALID,
        f'{where}values is {problem}; send an object of measurement values, e.g. "values": {{"hs": 1.2}}',
    )
