"""What every validator shares: the profile index, the per-message context, value and time checks.

Pure, and on the ingest's hot path: plain type checks instead of pydantic, quality flags from a
precomputed table, error paths formatted only when something is wrong. A check of a single value
raises `Bad` (a problem without its place); the caller, which knows the record and field, turns it
into `Invalid` with `Bad.at(path)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import isfinite
from typing import Any, NoReturn

from ingest.decode import json_type
from ingest.errors import Invalid
from midika.models.records import Quality, QuarantineReason
from midika.models.trial import DeviceProfile, ValueType
from midika.timeutil import EPOCH, parse_timestamp, to_rfc3339

R = QuarantineReason

FLOAT, INT, BOOL, STR = ValueType.FLOAT, ValueType.INT, ValueType.BOOL, ValueType.STR

# A device clock from 1970 to 2000 has not been set (no NTP or GNSS fix since boot): keep, but flag.
CLOCK_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)

SEQ_LIMIT = 2**63

QUALITY = tuple(Quality(bits) for bits in range(8))  # Flag arithmetic per reading is slow

OUT_OF_RANGE = int(Quality.OUT_OF_RANGE)

NO_DEVICE_TIME = int(Quality.NO_DEVICE_TIME)

CLOCK_SUSPECT = int(Quality.CLOCK_SUSPECT)

ABSENT: Any = object()

_FIX = {
    FLOAT: "send a JSON number",
    INT: "send a whole JSON number",
    BOOL: "send true or false",
    STR: "send a JSON string",
}


@dataclass(frozen=True, slots=True)
class Spec:
    """What the ingest needs of one measurement, flattened for the hot path."""

    type: ValueType
    unit: str
    lo: float
    hi: float
    ranged: bool  # a numeric measurement with a plausible range


class ProfileIndex:
    """A device profile's measurements and event types by name, built once per profile."""

    __slots__ = ("events", "measurements", "profile_id")

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile_id = profile.id
        self.measurements = {
            m.name: Spec(
                m.type,
                m.unit,
                *(m.range or (-math.inf, math.inf)),
                ranged=m.range is not None and m.type in (FLOAT, INT),
            )
            for m in profile.measurements
        }
        self.events = {e.type: dict(e.fields) for e in profile.events}


@dataclass(frozen=True, slots=True)
class Context:
    """Everything validation needs to know about one message besides its records."""

    trial: str
    device: str
    index: ProfileIndex
    received: datetime
    tolerance_s: float

    @property
    def latest(self) -> datetime:
        """The latest event time accepted."""
        return self.received + timedelta(seconds=self.tolerance_s)


class Bad(Exception):  # not one of midika's errors: a value's problem, awaiting its path
    """What is wrong with one value; the caller knows where it is and raises `Bad.at(path)`."""

    def __init__(self, reason: QuarantineReason, problem: str) -> None:
        super().__init__(problem)
        self.reason = reason
        self.problem = problem

    def at(self, path: str) -> Invalid:
        """The rejection of the whole message, naming the value's place."""
        return Invalid(self.reason, f"{path}: {self.problem}")


def reading_value(raw: Any, vtype: ValueType, name: str) -> tuple[float | None, str | None]:
    """A reading's (value, text) from a JSON value of measurement `name`."""
    kind = type(raw)
    if vtype is FLOAT or vtype is INT:
        if kind is float:
            if not isfinite(raw):
                non_finite(raw)
            if vtype is INT and not raw.is_integer():
                _wrong_type(raw, vtype, name, "it has a fraction")
            return raw, None
        if kind is int:
            try:
                return float(raw), None
            except OverflowError:
                non_finite(raw)
    elif vtype is BOOL:
        if kind is bool:
            return (1.0 if raw else 0.0), None
    elif kind is str:
        return None, raw
    _wrong_type(raw, vtype, name)


def field_value(raw: Any, vtype: ValueType, name: str) -> Any:
    """An event data field's value, as the declared type."""
    value, _ = reading_value(raw, vtype, name)
    if vtype is FLOAT:
        return value
    if vtype is INT:
        return int(raw)
    return raw


def finite_number(raw: Any, where: str, field: str) -> float:
    """A finite JSON number as float; Invalid at `where``field` otherwise."""
    kind = type(raw)
    if kind is float or kind is int:
        try:
            number = float(raw)
        except OverflowError:
            number = math.inf
        if not isfinite(number):
            raise Invalid(R.NON_FINITE, f"{where}{field}: {non_finite_problem(raw)}")
        return number
    raise Invalid(R.SCHEMA_INVALID, f"{where}{field} is {describe(raw)}; send a JSON number")


def seq_number(raw: Any, where: str, field: str) -> int:
    """A sequence number, 0 <= seq < 2**63 (integral floats allowed, as JSON Schema allows)."""
    if type(raw) is float:
        if not isfinite(raw):
            raise Invalid(R.NON_FINITE, f"{where}{field}: {non_finite_problem(raw)}")
        if raw.is_integer():
            raw = int(raw)
    if type(raw) is int and 0 <= raw < SEQ_LIMIT:
        return int(raw)
    raise Invalid(
        R.SCHEMA_INVALID, f"{where}{field} is {describe(raw)}; send a whole number 0 <= seq < 2**63"
    )


def timestamp(raw: Any, latest: datetime) -> datetime:
    """A device timestamp from the Unix epoch to `latest`; raises Bad."""
    kind = type(raw)
    if kind is float and not isfinite(raw):
        non_finite(raw)
    if kind is not str and kind is not int and kind is not float:
        raise Bad(
            R.SCHEMA_INVALID,
            f"{describe(raw)} is not a timestamp; send RFC 3339 text or epoch seconds/milliseconds "
            "(or omit ts)",
        )
    try:
        ts = parse_timestamp(raw)
    except (ValueError, OverflowError) as exc:
        if kind is not str:  # a finite epoch only fails below 0 or beyond the year 9999
            if raw < 0:
                raise _past(short(raw)) from None
            raise Bad(R.FUTURE_TIMESTAMP, f"{raw!r} is beyond the year 9999") from None
        raise Bad(
            R.SCHEMA_INVALID, f"{short(raw)}: {exc}" if isinstance(exc, OverflowError) else str(exc)
        ) from None
    if ts > latest:
        raise Bad(
            R.FUTURE_TIMESTAMP,
            f"{to_rfc3339(ts)} is in the future (latest accepted: {to_rfc3339(latest)}); "
            "set the device clock from NTP/GNSS and send UTC",
        )
    # No device clock counts from before the Unix epoch: an earlier time is garbage, and the stores
    # cannot all hold it (InfluxDB starts in 1677), so it is rejected as past_timestamp.
    if ts < EPOCH:  # RFC 3339 text only: an epoch number below 0 failed above
        raise _past(to_rfc3339(ts))
    return ts


def _past(shown: str) -> Bad:
    return Bad(
        R.PAST_TIMESTAMP,
        f"{shown} is before {to_rfc3339(EPOCH)}; set the device clock from NTP/GNSS, or leave ts out",
    )


def optional_time(record: dict[str, Any], where: str, ctx: Context) -> datetime:
    """The record's ts, or the receive time when it has none."""
    raw = record.get("ts", ABSENT)
    if raw is ABSENT:
        return ctx.received
    try:
        return timestamp(raw, ctx.latest)
    except Bad as bad:
        raise bad.at(f"{where}ts") from None


def where_in(i: int, batch: bool) -> str:
    """The path prefix of record `i`: `[i].` in a batch, nothing for a single object."""
    return f"[{i}]." if batch else ""


def unexpected_keys(record: dict[str, Any], allowed: frozenset[str], where: str, what: str) -> NoReturn:
    """Reject a record with fields the contract does not have, naming them."""
    extra = ", ".join(repr(k) for k in record if k not in allowed)
    raise Invalid(
        R.SCHEMA_INVALID,
        f"{where.rstrip('.') or 'payload'}: unexpected field(s) {extra}; "
        f"{what} has only {', '.join(sorted(allowed))}",
    )


def unknown_measurement(name: str, path: str, ctx: Context) -> NoReturn:
    """Reject a value of a measurement the profile does not declare."""
    raise Invalid(
        R.UNKNOWN_MEASUREMENT,
        f"{path}: {name!r} is not a measurement of profile {ctx.index.profile_id!r} "
        f"(it has {listing(ctx.index.measurements)}); fix the name or declare it in the trial file",
    )


def _wrong_type(raw: Any, vtype: ValueType, name: str, why: str = "") -> NoReturn:
    if raw is None:
        got, fix = "null", "omit the value instead of sending null"
    else:
        got, fix = describe(raw), _FIX[vtype]
    because = f" ({why})" if why else ""
    raise Bad(R.WRONG_TYPE, f"{name} takes {vtype.value} values, got {got}{because}; {fix}")


def non_finite(raw: Any) -> NoReturn:
    """Raise Bad(NON_FINITE) for NaN, ±inf or an integer beyond the float range."""
    raise Bad(R.NON_FINITE, non_finite_problem(raw))


def non_finite_problem(raw: Any) -> str:
    """What is wrong with a non-finite number, and what to do instead."""
    shown = short(raw) if isinstance(raw, float) else "a number beyond the float range"
    return f"{shown} is not a finite number; omit the value when the sensor has none"


def repeated(name: str, ts: datetime, where: str) -> NoReturn:
    """Reject a message that has the same reading (or event) twice."""
    raise Invalid(
        R.SCHEMA_INVALID,
        f"{where.rstrip('.')}: {name} at {to_rfc3339(ts)} appears twice in this message; "
        "give every record of a batch its own ts",
    )


def describe(raw: Any) -> str:
    """A JSON value as details show it: its type and a short form of it."""
    if raw is ABSENT:
        return "missing"
    if raw is None:
        return "null"
    return f"{json_type(raw)} {short(raw)}"


def short(raw: Any, limit: int = 40) -> str:
    """A value's text, cut to `limit` characters."""
    text = repr(raw) if isinstance(raw, str) else str(raw)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def listing(names: dict[str, Any]) -> str:
    """The keys of `names`, sorted and comma-separated, or 'none'."""
    return ", ".join(sorted(names)) if names else "none"
