"""SenML packs (RFC 8428, JSON) on `/up`: base fields resolved, names and units checked, times placed.

midika's SenML profile: the resolved name (bn + n) is `{measurement}`, `{device}/{measurement}` or
`urn:dev:midika:{device}:{measurement}` with the device of the topic; a unit must be the profile's;
`bt + t` is epoch seconds from 2**28 on and seconds relative to receipt below (RFC 8428 §4.5.3).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
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
    Bad,
    Context,
    R,
    Spec,
    describe,
    finite_number,
    reading_value,
    repeated,
    unknown_measurement,
)
from ingest.errors import Invalid
from midika.models.records import Reading
from midika.timeutil import EPOCH, to_rfc3339

# RFC 8428 §4.5.3: a resolved time below 2**28 s is relative to "now", i.e. to receipt.
ABSOLUTE = 2**28

FIELDS = frozenset({"bn", "bt", "bu", "bver", "n", "u", "v", "vs", "vb", "t", "ut"})

UNSUPPORTED = frozenset({"bv", "bs", "s", "vd"})

URN = "urn:dev:midika:"


# One function on purpose, like `ingest.validate.readings`: the common record (a finite number `v`
# of a float measurement) takes inlined fast paths, anything else the general helpers.
def readings(records: list[dict[str, Any]], *, ctx: Context) -> list[Reading]:  # noqa: PLR0912, PLR0915
    """Readings of a SenML pack (RFC 8428), base fields resolved record by record."""
    trial, device, received = ctx.trial, ctx.device, ctx.received
    specs = ctx.index.measurements
    latest_epoch = ctx.latest.timestamp()
    out: list[Reading] = []
    seen: set[tuple[str, datetime]] = set()
    names: dict[str, str] = {}  # resolved name -> measurement: each distinct name is checked once
    base_name, base_time, base_unit = "", 0.0, None
    last_time, last_ts, last_flags = math.nan, received, 0  # records often share a time
    value: float | None
    text: str | None
    for i, record in enumerate(records):
        if not FIELDS.issuperset(record):
            _bad_fields(record, f"[{i}]")
        if not _BASE_FIELDS.isdisjoint(record):
            base_name, base_time, base_unit = _bases(record, f"[{i}]", ctx, base_name, base_time, base_unit)
        n = record.get("n", "")
        if type(n) is not str:
            raise Invalid(R.SCHEMA_INVALID, f"[{i}].n is {describe(n)}; send the measurement name")
        resolved = base_name + n
        name = names.get(resolved)
        if name is None:
            name = names[resolved] = _measurement(resolved, f"[{i}]", ctx)
        spec = specs.get(name)
        if spec is None:
            unknown_measurement(name, f"[{i}].n", ctx)
        if base_unit is not None or "u" in record:
            _check_unit(record, i, base_unit, spec, name, ctx)
        raw = record.get("v", ABSENT)
        if (
            type(raw) is float
            and spec.type is FLOAT
            and isfinite(raw)
            and "vs" not in record
            and "vb" not in record
        ):
            value, text = raw, None
        else:
            key, raw = _value_field(record, f"[{i}]")
            try:
                value, text = reading_value(raw, spec.type, name)
            except Bad as bad:
                raise bad.at(f"[{i}].{key}") from None
        t = record.get("t", 0.0)
        if type(t) is not float or not isfinite(t):
            t = finite_number(t, f"[{i}]", ".t")
        time = base_time + t
        if time != last_time:
            if ABSOLUTE <= time <= latest_epoch:
                last_ts = datetime.fromtimestamp(time, UTC)
                last_flags = CLOCK_SUSPECT if last_ts < CLOCK_FLOOR else 0
            else:
                last_ts, last_flags = _time(time, f"[{i}]", ctx, latest_epoch)
            last_time = time
        ts, flags = last_ts, last_flags
        if spec.ranged and not spec.lo <= value <= spec.hi:  # type: ignore[operator]
            flags |= OUT_OF_RANGE
        if (name, ts) in seen:
            repeated(name, ts, f"[{i}]")
        seen.add((name, ts))
        out.append(Reading(trial, device, name, ts, value, received, text, None, QUALITY[flags]))
    return out


_BASE_FIELDS = frozenset({"bn", "bt", "bu", "bver", "ut"})


def _bases(
    record: dict[str, Any], where: str, ctx: Context, name: str, time: float, unit: str | None
) -> tuple[str, float, str | None]:
    """The base name, time and unit in force from this record on (RFC 8428 §4.1)."""
    if "bn" in record:
        name = _base_name(record["bn"], where, ctx)
    if "bt" in record:
        time = finite_number(record["bt"], where, ".bt")
    if "bu" in record:
        unit = _unit(record["bu"], where, ".bu")
    if "bver" in record:
        _version(record["bver"], where, ".bver")
    if "ut" in record and finite_number(record["ut"], where, ".ut") < 0:
        raise Invalid(R.SCHEMA_INVALID, f"{where}.ut is negative; an update time is seconds >= 0")
    return name, time, unit


def _base_name(raw: Any, where: str, ctx: Context) -> str:
    if type(raw) is not str:
        raise Invalid(R.SCHEMA_INVALID, f"{where}.bn is {describe(raw)}; send a string")
    if raw == "":
        return raw
    if raw.startswith(URN) and raw.endswith(":") and raw.count(":") == 4:
        named = raw[len(URN) : -1]
    elif raw.endswith("/") and raw.count("/") == 1 and ":" not in raw:
        named = raw[:-1]
    else:
        raise Invalid(
            R.SCHEMA_INVALID,
            f"{where}.bn {raw!r} is not '', '{URN}{ctx.device}:' or '{ctx.device}/'",
        )
    _same_device(named, raw, f"{where}.bn", ctx)
    return raw


def _check_unit(
    record: dict[str, Any], i: int, base: str | None, spec: Spec, name: str, ctx: Context
) -> None:
    unit = _unit(record["u"], f"[{i}]", ".u") if "u" in record else base
    if unit is not None and unit != spec.unit:
        raise Invalid(
            R.UNIT_MISMATCH,
            f"[{i}].u: {name} is measured in {spec.unit!r} in profile {ctx.index.profile_id!r}, "
            f"got {unit!r}; convert on the device and send u={spec.unit!r} (or no unit)",
        )


def _measurement(resolved: str, where: str, ctx: Context) -> str:
    """The measurement of a resolved name `[urn:dev:midika:{device}:|{device}/]{measurement}`."""
    if resolved.startswith(URN):
        named, sep, name = resolved[len(URN) :].partition(":")
        if sep:
            _same_device(named, resolved, f"{where}.n", ctx)
        else:
            name = ""
    elif "/" in resolved:
        named, _, name = resolved.partition("/")
        _same_device(named, resolved, f"{where}.n", ctx)
    else:
        name = resolved
    if not name:
        raise Invalid(R.SCHEMA_INVALID, f"{where}.n: no measurement name (resolved name {resolved!r}); set n")
    return name


def _same_device(named: str, text: str, path: str, ctx: Context) -> None:
    if named != ctx.device:
        raise Invalid(
            R.TOPIC_MISMATCH,
            f"{path}: {text!r} names device {named!r}, but the message came on the topic of "
            f"{ctx.device!r}; a device publishes only its own readings, on its own topic",
        )


def _unit(raw: Any, where: str, field: str) -> str:
    if type(raw) is not str or not raw:
        raise Invalid(R.SCHEMA_INVALID, f"{where}{field} is {describe(raw)}; send a SenML unit such as 'm'")
    return raw


def _version(raw: Any, where: str, field: str) -> None:
    if type(raw) is float and raw.is_integer():
        raw = int(raw)
    if type(raw) is not int or not 1 <= raw <= 10:
        raise Invalid(
            R.SCHEMA_INVALID, f"{where}{field} is {describe(raw)}; SenML versions are 1..10 (or omit it)"
        )


_VALUE_TYPES: dict[str, tuple[type, ...]] = {"v": (int, float), "vs": (str,), "vb": (bool,)}

_VALUE_NAMES = {"v": "number", "vs": "string", "vb": "boolean"}


def _value_field(record: dict[str, Any], where: str) -> tuple[str, Any]:
    present = [key for key in _VALUE_TYPES if key in record]
    if len(present) != 1:
        raise Invalid(
            R.SCHEMA_INVALID,
            f"{where}: a record needs exactly one of v, vs, vb (has {', '.join(present) or 'none'})",
        )
    key = present[0]
    raw = record[key]
    if type(raw) not in _VALUE_TYPES[key]:
        raise Invalid(
            R.SCHEMA_INVALID, f"{where}.{key} is {describe(raw)}; {key} holds a {_VALUE_NAMES[key]}"
        )
    return key, raw


def _time(resolved: float, where: str, ctx: Context, latest_epoch: float) -> tuple[datetime, int]:
    if not isfinite(resolved):
        raise Invalid(R.NON_FINITE, f"{where}: bt + t is not finite")
    if resolved >= ABSOLUTE:
        if resolved > latest_epoch:
            raise Invalid(
                R.FUTURE_TIMESTAMP,
                f"{where}.t: bt + t = {resolved} s is after {to_rfc3339(ctx.latest)}; SenML times are "
                "epoch seconds (not ms); set the device clock from NTP/GNSS",
            )
        ts = datetime.fromtimestamp(resolved, UTC)
        return ts, (CLOCK_SUSPECT if ts < CLOCK_FLOOR else 0)
    if resolved > ctx.tolerance_s:
        raise Invalid(
            R.FUTURE_TIMESTAMP,
            f"{where}.t: relative time bt + t = {resolved} s is after receipt; relative times are <= 0 "
            "(seconds before now)",
        )
    try:
        ts = ctx.received + timedelta(seconds=resolved)
    except OverflowError:  # before the year 1, so before the epoch all the same
        ts = datetime.min.replace(tzinfo=UTC)
    if ts < EPOCH:
        raise Invalid(
            R.PAST_TIMESTAMP,
            f"{where}.t: relative time bt + t = {resolved} s is before {to_rfc3339(EPOCH)} (counted back "
            f"from receipt, {to_rfc3339(ctx.received)}); relative times are seconds before now, e.g. -60",
        )
    return ts, NO_DEVICE_TIME


def _bad_fields(record: dict[str, Any], where: str) -> NoReturn:
    extra = sorted(set(record) - FIELDS)
    supported = ", ".join(sorted(FIELDS))
    unsupported = [key for key in extra if key in UNSUPPORTED]
    if unsupported:
        raise Invalid(
            R.SCHEMA_INVALID,
            f"{where}: SenML field(s) {', '.join(unsupported)} not supported (midika reads {supported})",
        )
    raise Invalid(
        R.SCHEMA_INVALID,
        f"{where}: {', '.join(map(repr, extra))} not SenML field(s) (midika reads {supported}); "
        "a pack cannot mix SenML records and reading objects",
    )
