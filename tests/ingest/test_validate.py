"""ingest.validate against a profile of every value type: types, ranges, times, SenML resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest import checks, validate
from ingest.errors import Invalid
from ingest.senml import readings as senml_readings
from midika.models.records import Quality, QuarantineReason
from midika.models.trial import DeviceProfile, EventType, Measurement, ValueType

R = QuarantineReason
RECEIVED = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)
PROFILE = DeviceProfile(
    id="probe",
    measurements=(
        Measurement(name="level", unit="m", range=(0, 10), period_s=60),
        Measurement(name="count", unit="count", type=ValueType.INT, range=(0, 100), period_s=60),
        Measurement(name="open", unit="/", type=ValueType.BOOL, period_s=60),
        Measurement(name="mode", unit="/", type=ValueType.STR, period_s=60),
        Measurement(name="free", unit="Cel", period_s=60),
    ),
    events=(
        EventType(type="ALARM", fields={"level": ValueType.FLOAT, "n": ValueType.INT, "why": ValueType.STR}),
    ),
)
CTX = checks.Context("trial", "dev-1", checks.ProfileIndex(PROFILE), RECEIVED, 300.0)


def readings(*records: dict[str, Any]) -> list[Any]:
    return validate.readings(list(records), batch=len(records) > 1, ctx=CTX)


def senml(*records: dict[str, Any]) -> list[Any]:
    return senml_readings(list(records), ctx=CTX)


def invalid(call: Any, *args: Any, **kwargs: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("name", "raw", "value", "text"),
    [
        ("level", 1.5, 1.5, None),
        ("level", 2, 2.0, None),
        ("count", 3, 3.0, None),
        ("count", 3.0, 3.0, None),
        ("open", True, 1.0, None),
        ("open", False, 0.0, None),
        ("mode", "auto", None, "auto"),
        ("mode", "", None, ""),
    ],
)
def test_values_of_every_type_are_stored_as_value_or_text(
    name: str, raw: object, value: float | None, text: str | None
) -> None:
    (reading,) = readings({"ts": 1784505600, "values": {name: raw}})
    assert (reading.value, reading.text) == (value, text)
    assert type(reading.value) in (float, type(None))


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("level", "1.5", R.WRONG_TYPE),
        ("level", True, R.WRONG_TYPE),
        ("level", None, R.WRONG_TYPE),
        ("level", [1], R.WRONG_TYPE),
        ("count", 3.5, R.WRONG_TYPE),
        ("count", "3", R.WRONG_TYPE),
        ("count", False, R.WRONG_TYPE),
        ("open", 1, R.WRONG_TYPE),
        ("open", "true", R.WRONG_TYPE),
        ("mode", 1, R.WRONG_TYPE),
        ("mode", None, R.WRONG_TYPE),
        ("level", float("nan"), R.NON_FINITE),
        ("level", float("inf"), R.NON_FINITE),
        ("count", float("-inf"), R.NON_FINITE),
        ("level", 10**400, R.NON_FINITE),
        ("nope", 1.0, R.UNKNOWN_MEASUREMENT),
    ],
)
def test_wrong_values_reject_naming_the_field(name: str, raw: object, reason: QuarantineReason) -> None:
    error = invalid(readings, {"ts": 1784505600, "values": {"level": 1.0, name: raw}})
    assert error.reason is reason
    assert error.detail.startswith(f"values.{name}: ")


def test_null_is_told_to_be_omitted() -> None:
    assert "omit the value instead of sending null" in invalid(readings, {"values": {"level": None}}).detail


@pytest.mark.parametrize(
    ("name", "raw", "flagged"),
    [
        ("level", 0, False),
        ("level", 10, False),
        ("level", 10.01, True),
        ("level", -0.5, True),
        ("count", 101, True),
        ("free", -1e300, False),  # no range: nothing is out of it
        ("open", True, False),
    ],
)
def test_implausible_values_are_stored_flagged(name: str, raw: object, flagged: bool) -> None:
    (reading,) = readings({"ts": 1784505600, "values": {name: raw}})
    assert (Quality.OUT_OF_RANGE in reading.quality) is flagged


def test_time_flags_combine_with_range() -> None:
    (reading,) = readings({"values": {"level": 11}})
    assert reading.quality == Quality.OUT_OF_RANGE | Quality.NO_DEVICE_TIME
    assert reading.ts == RECEIVED
    (reading,) = readings({"ts": 3600, "values": {"level": 1}})  # an unset clock: 1970
    assert reading.quality == Quality.CLOCK_SUSPECT


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1784505600, datetime(2026, 7, 20, tzinfo=UTC)),
        (1784505600.25, datetime(2026, 7, 20, 0, 0, 0, 250000, tzinfo=UTC)),
        (1784505600250, datetime(2026, 7, 20, 0, 0, 0, 250000, tzinfo=UTC)),
        ("2026-07-20T09:00:00+09:00", datetime(2026, 7, 20, tzinfo=UTC)),
        ("2026-07-20T00:00:00Z", datetime(2026, 7, 20, tzinfo=UTC)),
        ("2026-07-20T00:00:00.5z", datetime(2026, 7, 20, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_rfc3339_epoch_seconds_and_milliseconds(ts: object, expected: datetime) -> None:
    (reading,) = readings({"ts": ts, "values": {"level": 1}})
    assert reading.ts == expected
    assert reading.quality == Quality.OK


@pytest.mark.parametrize(
    ("ts", "reason", "detail"),
    [
        ("2026-07-20T12:05:01Z", R.FUTURE_TIMESTAMP, "is in the future"),
        (1e15, R.FUTURE_TIMESTAMP, "beyond the year 9999"),
        (10**30, R.FUTURE_TIMESTAMP, "beyond the year 9999"),
        ("9999-12-31T23:59:59-01:00", R.SCHEMA_INVALID, "out of range"),
        ("2026-07-20T09:00:00", R.SCHEMA_INVALID, "no UTC offset"),
        ("yesterday", R.SCHEMA_INVALID, "not RFC 3339"),
        (float("nan"), R.NON_FINITE, "not a finite number"),
        (None, R.SCHEMA_INVALID, "null is not a timestamp"),
        ([], R.SCHEMA_INVALID, "array [] is not a timestamp"),
    ],
)
def test_bad_timestamps(ts: object, reason: QuarantineReason, detail: str) -> None:
    error = invalid(readings, {"ts": ts, "values": {"level": 1}})
    assert error.reason is reason
    assert error.detail.startswith("ts: ")
    assert detail in error.detail


def test_the_future_tolerance_is_inclusive() -> None:
    (reading,) = readings({"ts": "2026-07-20T12:05:00Z", "values": {"level": 1}})
    assert reading.ts == RECEIVED + timedelta(seconds=300)


def past(shown: str) -> str:
    """The detail of a time before the Unix epoch, shown as `shown`."""
    return f"{shown} is before 1970-01-01T00:00:00Z; set the device clock from NTP/GNSS, or leave ts out"


@pytest.mark.parametrize(
    ("ts", "shown"),
    [
        ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59Z"),
        ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
        ("1970-01-01T08:59:59+09:00", "1969-12-31T23:59:59Z"),  # 1970 in Japan, 1969 in UTC
        ("1600-01-01T00:00:00Z", "1600-01-01T00:00:00Z"),  # before InfluxDB's first time, 1677
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        (-1, "-1"),
        (-0.001, "-0.001"),
        (-1784505600000, "-1784505600000"),  # a negative number is never read as milliseconds
        (-(2**70), str(-(2**70))),
        pytest.param(-(10**400), checks.short(-(10**400)), id="-10**400"),  # beyond float, still past
    ],
)
def test_times_before_1970_are_past_timestamps(ts: object, shown: str) -> None:
    error = invalid(readings, {"ts": ts, "values": {"level": 1}})
    assert error.reason is R.PAST_TIMESTAMP
    assert error.detail == f"ts: {past(shown)}"


@pytest.mark.parametrize(
    ("kept", "rejected"),
    [
        ("1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z"),
        ("1970-01-01T09:00:00+09:00", "1970-01-01T08:59:59+09:00"),
        (0, -1),
        (-0.0, -1e-06),
        ("1999-12-31T23:59:59Z", "1899-12-31T23:59:59Z"),
        (946684799, -946684799),
    ],
)
def test_times_from_1970_to_2000_are_stored_flagged_and_earlier_ones_rejected(
    kept: object, rejected: object
) -> None:
    (reading,) = readings({"ts": kept, "values": {"level": 1}})
    assert datetime(1970, 1, 1, tzinfo=UTC) <= reading.ts < checks.CLOCK_FLOOR
    assert reading.quality == Quality.CLOCK_SUSPECT
    assert invalid(readings, {"ts": rejected, "values": {"level": 1}}).reason is R.PAST_TIMESTAMP


def test_one_past_time_rejects_the_whole_batch_naming_its_record() -> None:
    error = invalid(
        readings,
        {"ts": 1784505600, "values": {"level": 1}},
        {"ts": "1600-01-01T00:00:00Z", "values": {"level": 2}},
        {"ts": 1784505660, "values": {"level": 3}},
    )
    assert error.reason is R.PAST_TIMESTAMP
    assert error.detail == f"[1].ts: {past('1600-01-01T00:00:00Z')}"


def test_seq_is_kept_per_record() -> None:
    first, second = readings(
        {"ts": 1, "seq": 7, "values": {"level": 1}}, {"ts": 2, "seq": 8.0, "values": {"level": 1}}
    )
    assert (first.seq, second.seq) == (7, 8)
    assert type(second.seq) is int


def test_batch_paths_name_the_record() -> None:
    error = invalid(readings, {"ts": 1, "values": {"level": 1}}, {"ts": 2, "values": {"count": 0.5}})
    assert error.detail.startswith("[1].values.count: ")


def test_a_batch_cannot_repeat_a_measurement_at_one_time() -> None:
    error = invalid(readings, {"values": {"level": 1}}, {"values": {"level": 2}})
    assert error.reason is R.SCHEMA_INVALID
    assert "appears twice" in error.detail and "own ts" in error.detail


# --- SenML ------------------------------------------------------------------------------


def test_senml_base_time_and_relative_offsets_resolve_per_rfc_8428() -> None:
    a, b, c = senml(
        {"bn": "dev-1/", "bt": 1784505600, "n": "level", "v": 1},
        {"n": "level", "t": 60, "v": 2},
        {"bt": 1784509200, "n": "count", "t": -1, "v": 3},
    )
    assert a.ts == datetime(2026, 7, 20, tzinfo=UTC)
    assert b.ts == datetime(2026, 7, 20, 0, 1, tzinfo=UTC)
    assert c.ts == datetime(2026, 7, 20, 0, 59, 59, tzinfo=UTC)
    assert {r.quality for r in (a, b, c)} == {Quality.OK}
    assert {r.seq for r in (a, b, c)} == {None}


def test_senml_times_below_2_pow_28_are_relative_to_receipt() -> None:
    now, before, via_bt = senml(
        {"n": "level", "v": 1}, {"n": "count", "v": 1, "t": -90}, {"bt": -30, "n": "free", "v": 1, "t": 10}
    )
    assert now.ts == RECEIVED
    assert before.ts == RECEIVED - timedelta(seconds=90)
    assert via_bt.ts == RECEIVED - timedelta(seconds=20)
    assert {r.quality for r in (now, before, via_bt)} == {Quality.NO_DEVICE_TIME}


def test_senml_absolute_time_boundary() -> None:
    (reading,) = senml({"n": "level", "v": 1, "t": 2**28})
    assert reading.ts == datetime.fromtimestamp(2**28, UTC)
    assert reading.quality == Quality.CLOCK_SUSPECT  # 1978: an absolute time, but an unset clock
    error = invalid(senml, {"n": "level", "v": 1, "t": 2**28 - 1})  # relative: 8.5 years from now
    assert error.reason is R.FUTURE_TIMESTAMP
    assert "relative time" in error.detail


@pytest.mark.parametrize(
    ("records", "reason", "detail"),
    [
        ([{"n": "level", "v": 1, "t": 1784505600000}], R.FUTURE_TIMESTAMP, "not ms"),
        ([{"n": "level", "v": 1, "t": 301}], R.FUTURE_TIMESTAMP, "relative times are <= 0"),
        ([{"n": "level", "v": 1, "t": -1e13}], R.PAST_TIMESTAMP, "before 1970-01-01T00:00:00Z"),
        ([{"n": "level", "v": 1, "bt": -1e300}], R.PAST_TIMESTAMP, "before 1970-01-01T00:00:00Z"),
        ([{"n": "level", "v": 1, "t": float("inf")}], R.NON_FINITE, "[0].t"),
        ([{"bt": float("nan"), "n": "level", "v": 1}], R.NON_FINITE, "[0].bt"),
    ],
)
def test_senml_bad_times(records: list[dict[str, Any]], reason: QuarantineReason, detail: str) -> None:
    error = invalid(senml, *records)
    assert error.reason is reason
    assert detail in error.detail


# RECEIVED is this many seconds after the Unix epoch: a relative time below minus it lies before 1970.
SINCE_1970 = RECEIVED.timestamp()


def test_senml_relative_times_reaching_back_before_1970_are_past_timestamps() -> None:
    (reading,) = senml({"bt": -SINCE_1970, "n": "level", "v": 1})  # received time minus itself: 1970
    assert reading.ts == datetime(1970, 1, 1, tzinfo=UTC)
    assert reading.quality == Quality.NO_DEVICE_TIME
    error = invalid(
        senml,
        {"bn": "dev-1/", "bt": -SINCE_1970, "n": "level", "v": 1},
        {"n": "level", "v": 2, "t": -1},
    )
    assert error.reason is R.PAST_TIMESTAMP
    assert error.detail == (
        f"[1].t: relative time bt + t = {-SINCE_1970 - 1} s is before 1970-01-01T00:00:00Z (counted back "
        "from receipt, 2026-07-20T12:00:00Z); relative times are seconds before now, e.g. -60"
    )


@pytest.mark.parametrize(
    "name",
    ["level", "dev-1/level", "urn:dev:midika:dev-1:level"],
)
def test_senml_names_with_and_without_the_device(name: str) -> None:
    (reading,) = senml({"n": name, "v": 1})
    assert reading.measurement == "level"


@pytest.mark.parametrize(
    ("bn", "n"),
    [
        ("dev-2/", "level"),
        ("urn:dev:midika:dev-2:", "level"),
        ("", "dev-2/level"),
        ("", "urn:dev:midika:dev-2:level"),
    ],
)
def test_senml_names_of_another_device_are_a_topic_mismatch(bn: str, n: str) -> None:
    error = invalid(senml, {"bn": bn, "n": n, "v": 1})
    assert error.reason is R.TOPIC_MISMATCH
    assert "'dev-2'" in error.detail and "'dev-1'" in error.detail


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"bn": "dev-1:", "n": "level", "v": 1}, R.SCHEMA_INVALID),
        ({"bn": "a/b/", "n": "level", "v": 1}, R.SCHEMA_INVALID),
        ({"bn": "dev-1/", "v": 1}, R.SCHEMA_INVALID),
        ({"n": "urn:dev:midika:dev-1", "v": 1}, R.SCHEMA_INVALID),
        ({"n": "depth", "v": 1}, R.UNKNOWN_MEASUREMENT),
        ({"n": "level", "v": 1, "vb": True}, R.SCHEMA_INVALID),
        ({"n": "level", "vd": "AQ=="}, R.SCHEMA_INVALID),
        ({"n": "level", "v": 1, "x_": 1}, R.SCHEMA_INVALID),
        ({"n": "level", "v": float("nan")}, R.NON_FINITE),
        ({"n": "level", "vs": "1"}, R.WRONG_TYPE),
        ({"n": "open", "v": 1}, R.WRONG_TYPE),
        ({"n": "count", "v": 1.5}, R.WRONG_TYPE),
    ],
)
def test_senml_bad_records(record: dict[str, Any], reason: QuarantineReason) -> None:
    error = invalid(senml, record)
    assert error.reason is reason
    assert error.detail.startswith("[0]")


def test_senml_value_fields_by_type() -> None:
    level, opened, mode = senml(
        {"n": "level", "v": 2}, {"n": "open", "vb": False}, {"n": "mode", "vs": "auto"}
    )
    assert (level.value, opened.value, mode.text) == (2.0, 0.0, "auto")


def test_senml_units_must_be_the_profiles() -> None:
    level, count = senml({"bu": "m", "n": "level", "v": 1}, {"n": "count", "u": "count", "v": 1})
    assert (level.value, count.value) == (1.0, 1.0)
    error = invalid(senml, {"bu": "m", "n": "level", "v": 1}, {"n": "free", "v": 20})  # bu applies
    assert error.reason is R.UNIT_MISMATCH
    assert error.detail.startswith("[1].u: free is measured in 'Cel'")
    error = invalid(senml, {"n": "level", "u": "cm", "v": 120})
    assert error.reason is R.UNIT_MISMATCH


def test_senml_unsupported_fields_are_named() -> None:
    error = invalid(senml, {"n": "level", "v": 1, "s": 4})
    assert "SenML field(s) s not supported" in error.detail


# --- events and status -------------------------------------------------------------------


def test_event_fields_are_converted_to_their_declared_types() -> None:
    (event,) = validate.events(
        [{"ts": 1784505600, "seq": 4, "type": "ALARM", "data": {"level": 2, "n": 3.0, "why": "x"}}],
        batch=False,
        ctx=CTX,
    )
    assert event.data == {"level": 2.0, "n": 3, "why": "x"}
    assert type(event.data["level"]) is float and type(event.data["n"]) is int
    assert (event.ts, event.seq, event.type) == (datetime(2026, 7, 20, tzinfo=UTC), 4, "ALARM")


def test_events_without_ts_or_data() -> None:
    (event,) = validate.events([{"type": "ALARM"}], batch=False, ctx=CTX)
    assert (event.ts, event.data) == (RECEIVED, {})


@pytest.mark.parametrize(
    ("record", "reason", "detail"),
    [
        ({"type": "ALARM", "data": {"level": "high"}}, R.WRONG_TYPE, "data.level: level takes float"),
        ({"type": "ALARM", "data": {"n": 1.5}}, R.WRONG_TYPE, "data.n: "),
        ({"type": "ALARM", "data": {"level": float("nan")}}, R.NON_FINITE, "data.level: "),
        ({"type": "ALARM", "data": {"where": "x"}}, R.SCHEMA_INVALID, "data.where is not a field of ALARM"),
        ({"type": "ALARM", "data": {"why": None}}, R.WRONG_TYPE, "data.why: "),
        ({"type": "NOISE"}, R.UNKNOWN_EVENT_TYPE, "it has ALARM"),
        ({"type": 3}, R.SCHEMA_INVALID, "type is number 3"),
        ({"data": {}}, R.SCHEMA_INVALID, "type is missing"),
        ({"ts": "1969-07-20T20:17:40Z", "type": "ALARM"}, R.PAST_TIMESTAMP, "ts: 1969-07-20T20:17:40Z is"),
        ({"ts": -86400, "type": "ALARM"}, R.PAST_TIMESTAMP, "ts: -86400 is before 1970-01-01T00:00:00Z"),
    ],
)
def test_bad_events(record: dict[str, Any], reason: QuarantineReason, detail: str) -> None:
    error = invalid(validate.events, [record], batch=False, ctx=CTX)
    assert error.reason is reason
    assert detail in error.detail


def test_status_fields() -> None:
    report = validate.status(
        {"ts": 1784505600, "online": True, "battery": 3, "rssi": -70.5, "firmware": "1.0", "uptime": 5},
        ctx=CTX,
    )
    assert (report.online, report.battery, report.rssi, report.firmware, report.uptime_s) == (
        True,
        3.0,
        -70.5,
        "1.0",
        5.0,
    )
    assert report.ts == datetime(2026, 7, 20, tzinfo=UTC) and report.ingest_ts == RECEIVED
    will = validate.status({"online": False}, ctx=CTX)
    assert (will.online, will.ts, will.battery) == (False, RECEIVED, None)


@pytest.mark.parametrize(("ts", "shown"), [("1600-01-01T00:00:00Z", "1600-01-01T00:00:00Z"), (-1, "-1")])
def test_status_times_before_1970_are_past_timestamps(ts: object, shown: str) -> None:
    error = invalid(validate.status, {"ts": ts, "online": True}, ctx=CTX)
    assert error.reason is R.PAST_TIMESTAMP
    assert error.detail == f"ts: {past(shown)}"
    assert validate.status({"ts": 0, "online": True}, ctx=CTX).ts == datetime(1970, 1, 1, tzinfo=UTC)


def test_status_non_finite_numbers() -> None:
    assert invalid(validate.status, {"rssi": float("-inf")}, ctx=CTX).reason is R.NON_FINITE
