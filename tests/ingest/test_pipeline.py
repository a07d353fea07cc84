"""ingest.pipeline.process: every quarantine reason, batches, SenML, time forms, quality flags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.pipeline import Accepted, Rejected, process
from midika.models.records import Quality, QuarantineReason
from midika.models.trial import Device
from tests.ingest import strategies
from tests.ingest.helpers import (
    BUOY,
    CAM,
    RECEIVED,
    SETTINGS,
    SHIPPED,
    Trials,
    accepted,
    pinned_settings,
    rejected,
    run,
)

R = QuarantineReason

# One message per reason: (topic, payload, reason).
EVERY_REASON: list[tuple[str, Any, QuarantineReason]] = [
    ("midika/v1/onjuku-rip/onjuku-cam-01", {"values": {"glare_score": 0.1}}, R.BAD_TOPIC),
    ("midika/v1/onjuku-rip/onjuku-cam-01/down", {"interval_s": 10}, R.BAD_TOPIC),
    ("midika/v1/hakone/onjuku-cam-01/up", {"values": {"glare_score": 0.1}}, R.UNKNOWN_TRIAL),
    ("midika/v1/onjuku-rip/goto-feeder-01/up", {"values": {"glare_score": 0.1}}, R.UNKNOWN_DEVICE),
    (BUOY + "/up", [{"bn": "onjuku-cam-01/", "n": "hs", "v": 1}], R.TOPIC_MISMATCH),
    (CAM + "/up", b"\x80\x81", R.UNPARSEABLE),
    (CAM + "/evt", b"RIP_DETECTED", R.UNPARSEABLE),
    (CAM + "/up", {"values": {"glare_score": 0.1}, "device": "onjuku-cam-01"}, R.SCHEMA_INVALID),
    (CAM + "/up", {"values": {"hs": 1.0}}, R.UNKNOWN_MEASUREMENT),
    (CAM + "/evt", {"type": "FEEDING", "data": {"kg": 3}}, R.UNKNOWN_EVENT_TYPE),
    (CAM + "/up", {"values": {"persons_in_water": "3"}}, R.WRONG_TYPE),
    (CAM + "/up", b'{"values": {"glare_score": NaN}}', R.NON_FINITE),
    (BUOY + "/up", [{"n": "hs", "u": "cm", "v": 120}], R.UNIT_MISMATCH),
    (CAM + "/up", {"ts": "2026-07-20T12:10:00Z", "values": {"glare_score": 0.1}}, R.FUTURE_TIMESTAMP),
    (CAM + "/up", {"ts": "1969-12-31T23:59:59Z", "values": {"glare_score": 0.1}}, R.PAST_TIMESTAMP),
    (CAM + "/up", b" " * (1_048_576 + 1), R.TOO_LARGE),
]


def test_the_table_covers_every_reason() -> None:
    assert {reason for _, _, reason in EVERY_REASON} == set(QuarantineReason)


@pytest.mark.parametrize(("topic", "payload", "reason"), EVERY_REASON, ids=lambda v: str(v)[:40])
def test_every_reason(topic: str, payload: Any, reason: QuarantineReason) -> None:
    outcome = rejected(topic, payload)
    assert outcome.reason is reason
    record = outcome.quarantine
    assert record.topic == topic
    assert record.received_ts == RECEIVED
    assert record.detail
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert record.payload_size == len(raw)
    assert record.payload == raw[: SETTINGS.quarantine_payload_cap]


def test_quarantine_names_the_trial_and_device_of_any_well_formed_topic() -> None:
    unknown = rejected("midika/v1/hakone/cam-9/up", {"values": {}}).quarantine
    assert (unknown.trial, unknown.device) == ("hakone", "cam-9")
    bad = rejected("midika/v1/onjuku-rip/onjuku-cam-01/up/x", b"{}").quarantine
    assert (bad.trial, bad.device) == (None, None)


def test_the_quarantine_copy_is_capped_but_the_size_is_kept() -> None:
    payload = json.dumps({"values": {"glare_score": "x" * 50_000}}).encode()
    record = rejected(CAM + "/up", payload, settings=pinned_settings(quarantine_payload_cap=100)).quarantine
    assert record.payload == payload[:100]
    assert record.payload_size == len(payload)


def test_the_size_limit_is_inclusive() -> None:
    small = pinned_settings(max_payload_bytes=64)
    payload = json.dumps({"values": {"glare_score": 0.1}}).encode().ljust(64)
    accepted(CAM + "/up", payload, settings=small)
    assert rejected(CAM + "/up", payload + b" ", settings=small).reason is R.TOO_LARGE


def test_one_bad_record_rejects_the_whole_batch_and_says_which() -> None:
    batch: list[dict[str, Any]] = [
        {"ts": 1784505600 + 10 * i, "values": {"glare_score": 0.1}} for i in range(5)
    ]
    batch[3]["values"]["glare_score"] = "bright"
    outcome = rejected(CAM + "/up", batch)
    assert outcome.reason is R.WRONG_TYPE
    assert outcome.quarantine.detail.startswith("[3].values.glare_score: ")


def test_a_batch_is_stored_in_order_with_its_seq() -> None:
    batch = [
        {"ts": 1784505600 + 1800 * i, "seq": 100 + i, "values": {"hs": 1 + i / 10, "tp": 9}} for i in range(4)
    ]
    outcome = accepted(BUOY + "/up", batch)
    assert [(r.measurement, r.seq) for r in outcome.readings[:4]] == [
        ("hs", 100),
        ("tp", 100),
        ("hs", 101),
        ("tp", 101),
    ]
    assert len(outcome.readings) == 8
    assert {(r.trial, r.device, r.ingest_ts) for r in outcome.readings} == {
        ("onjuku-rip", "onjuku-buoy-01", RECEIVED)
    }


@pytest.mark.parametrize(
    "ts", [1784505600, 1784505600.0, 1784505600000, "2026-07-20T00:00:00Z", "2026-07-20T09:00:00+09:00"]
)
def test_epoch_seconds_milliseconds_and_rfc3339_mean_the_same_time(ts: object) -> None:
    (reading,) = accepted(BUOY + "/up", {"ts": ts, "values": {"hs": 1.2}}).readings
    assert reading.ts == datetime(2026, 7, 20, tzinfo=UTC)
    assert reading.quality == Quality.OK


def test_senml_pack_with_base_fields_and_units() -> None:
    pack = [
        {"bn": "urn:dev:midika:onjuku-buoy-01:", "bt": 1784505600, "bu": "m", "n": "hs", "v": 1.2},
        {"n": "tide", "v": 0.5, "t": 1800},
        {"n": "water_temp", "u": "Cel", "v": 24.5, "t": 1800},
        {"n": "tp", "u": "s", "v": 30},
    ]
    readings = accepted(BUOY + "/up", pack).readings
    assert [(r.measurement, r.ts, r.value, r.quality) for r in readings] == [
        ("hs", datetime(2026, 7, 20, tzinfo=UTC), 1.2, Quality.OK),
        ("tide", datetime(2026, 7, 20, 0, 30, tzinfo=UTC), 0.5, Quality.OK),
        ("water_temp", datetime(2026, 7, 20, 0, 30, tzinfo=UTC), 24.5, Quality.OK),
        ("tp", datetime(2026, 7, 20, tzinfo=UTC), 30.0, Quality.OUT_OF_RANGE),
    ]
    # bu is "m": a record of a measurement in seconds needs its own u
    assert rejected(BUOY + "/up", [*pack[:1], {"n": "tp", "v": 9}]).reason is R.UNIT_MISMATCH


def test_senml_on_the_event_topic_is_not_senml() -> None:
    outcome = rejected(CAM + "/evt", [{"n": "glare_score", "v": 0.1}])
    assert outcome.reason is R.SCHEMA_INVALID


def test_out_of_range_values_are_stored_flagged() -> None:
    (reading,) = accepted(BUOY + "/up", {"ts": 1784505600, "values": {"hs": 12.5}}).readings
    assert reading.value == 12.5
    assert reading.quality == Quality.OUT_OF_RANGE


def test_no_ts_means_receive_time_flagged() -> None:
    (reading,) = accepted(BUOY + "/up", {"values": {"hs": 1.0}}).readings
    assert reading.ts == RECEIVED
    assert reading.quality == Quality.NO_DEVICE_TIME


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_are_non_finite_not_unparseable(literal: bytes) -> None:
    outcome = rejected(BUOY + "/up", b'{"ts": 1784505600, "values": {"tp": 9, "hs": ' + literal + b"}}")
    assert outcome.reason is R.NON_FINITE
    assert outcome.quarantine.detail.startswith("values.hs: ")


def test_future_timestamps_beyond_the_tolerance() -> None:
    tolerance = timedelta(seconds=SETTINGS.future_tolerance_s)
    at_limit = (RECEIVED + tolerance).timestamp()
    accepted(BUOY + "/up", {"ts": at_limit, "values": {"hs": 1}})
    outcome = rejected(BUOY + "/up", {"ts": at_limit + 0.001, "values": {"hs": 1}})
    assert outcome.reason is R.FUTURE_TIMESTAMP
    strict = pinned_settings(future_tolerance_s=0)
    assert rejected(BUOY + "/up", {"ts": RECEIVED.timestamp() + 1, "values": {"hs": 1}}, settings=strict)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAST_FIX = "is before 1970-01-01T00:00:00Z; set the device clock from NTP/GNSS, or leave ts out"


@pytest.mark.parametrize(
    ("topic", "payload", "detail"),
    [
        (
            BUOY + "/up",
            {"ts": "1969-12-31T23:59:59Z", "values": {"hs": 1}},
            f"ts: 1969-12-31T23:59:59Z {PAST_FIX}",
        ),
        (BUOY + "/up", {"ts": -1, "values": {"hs": 1}}, f"ts: -1 {PAST_FIX}"),
        (BUOY + "/up", {"ts": -1784505600000, "values": {"hs": 1}}, f"ts: -1784505600000 {PAST_FIX}"),
        (
            BUOY + "/up",
            {"ts": "1600-01-01T00:00:00Z", "values": {"hs": 1}},
            f"ts: 1600-01-01T00:00:00Z {PAST_FIX}",
        ),
        (
            BUOY + "/up",
            [{"ts": 1784505600, "values": {"hs": 1}}, {"ts": "1600-01-01T00:00:00Z", "values": {"hs": 2}}],
            f"[1].ts: 1600-01-01T00:00:00Z {PAST_FIX}",
        ),
        (
            BUOY + "/up",
            [{"bn": "onjuku-buoy-01/", "bt": -RECEIVED.timestamp(), "n": "hs", "v": 1, "t": -0.5}],
            "[0].t: relative time bt + t = -1784548800.5 s is before 1970-01-01T00:00:00Z (counted back from "
            "receipt, 2026-07-20T12:00:00Z); relative times are seconds before now, e.g. -60",
        ),
        (
            CAM + "/evt",
            {"ts": "1600-01-01T00:00:00Z", "type": "CAMERA_OFFLINE"},
            f"ts: 1600-01-01T00:00:00Z {PAST_FIX}",
        ),
        (CAM + "/status", {"ts": -60, "online": True}, f"ts: -60 {PAST_FIX}"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_times_before_1970_are_quarantined_as_past_timestamps(topic: str, payload: Any, detail: str) -> None:
    outcome = rejected(topic, payload)
    assert outcome.reason is R.PAST_TIMESTAMP
    assert outcome.quarantine.detail == detail
    assert json.loads(outcome.quarantine.payload) == payload  # kept as sent, to re-ingest once fixed


def test_the_epoch_is_the_floor_and_times_up_to_2000_are_stored_flagged_clock_suspect() -> None:
    for ts in ("1970-01-01T00:00:00Z", 0, "1999-12-31T23:59:59Z", 946684799.5):
        (reading,) = accepted(BUOY + "/up", {"ts": ts, "values": {"hs": 1}}).readings
        assert EPOCH <= reading.ts < datetime(2000, 1, 1, tzinfo=UTC)
        assert reading.quality == Quality.CLOCK_SUSPECT
    outcome = rejected(BUOY + "/up", {"ts": "1969-12-31T23:59:59.999999Z", "values": {"hs": 1}})
    assert outcome.reason is R.PAST_TIMESTAMP


def test_events_and_status() -> None:
    (event,) = accepted(
        CAM + "/evt", {"ts": 1784505600, "type": "ZONE_ENTRY", "data": {"zone": "w", "persons": 2}}
    ).events
    assert (event.trial, event.device, event.type, event.data) == (
        "onjuku-rip",
        "onjuku-cam-01",
        "ZONE_ENTRY",
        {"zone": "w", "persons": 2},
    )
    status = accepted(CAM + "/status", {"online": True, "battery": 12.4}).status
    assert status is not None and (status.online, status.battery, status.ts) == (True, 12.4, RECEIVED)


def test_an_empty_status_message_clears_the_retained_status_and_stores_nothing() -> None:
    outcome = accepted(CAM + "/status", b"")
    assert (outcome.readings, outcome.events, outcome.status) == ((), (), None)
    assert rejected(CAM + "/up", b"").reason is R.UNPARSEABLE


def test_a_reloaded_trial_is_seen_at_once() -> None:
    onjuku = SHIPPED.trial("onjuku-rip")
    assert onjuku is not None
    assert rejected("midika/v1/onjuku-rip/onjuku-cam-04/up", {"values": {"glare_score": 0.1}}).reason is (
        R.UNKNOWN_DEVICE
    )
    cam4 = Device(id="onjuku-cam-04", profile="rip-camera", site="main-beach-east")
    grown = onjuku.model_copy(update={"devices": (*onjuku.devices, cam4)})
    outcome = accepted(
        "midika/v1/onjuku-rip/onjuku-cam-04/up", {"values": {"glare_score": 0.1}}, trials=Trials([grown])
    )
    assert outcome.readings[0].device == "onjuku-cam-04"


# --- never raises --------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=strategies.topics, payload=strategies.payloads)
def test_process_never_raises(topic: str, payload: bytes) -> None:
    outcome = process(topic, payload, received=RECEIVED, trials=SHIPPED, settings=SETTINGS)
    assert isinstance(outcome, Accepted | Rejected)
    if isinstance(outcome, Rejected):
        assert outcome.quarantine.detail
        assert outcome.quarantine.payload == payload[: SETTINGS.quarantine_payload_cap]


# Whole seconds: a SenML time is a float of seconds, exact for whole ones back to the year 1.
_moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(2026, 7, 20, 12), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))


def _message(moment: datetime, form: str) -> Any:
    if form == "rfc3339":
        return {"ts": moment.isoformat(), "values": {"hs": 1}}
    if form == "epoch":
        return {"ts": int(moment.timestamp()), "values": {"hs": 1}}
    return [{"bt": (moment - RECEIVED).total_seconds(), "n": "hs", "v": 1}]  # relative to receipt


@settings(max_examples=300, deadline=None)
@given(moment=_moments, form=st.sampled_from(["rfc3339", "epoch", "senml"]))
@example(moment=EPOCH, form="rfc3339")
@example(moment=EPOCH - timedelta(seconds=1), form="epoch")
@example(moment=EPOCH - timedelta(seconds=1), form="senml")
def test_a_time_from_the_epoch_on_is_stored_and_one_before_it_is_a_past_timestamp(
    moment: datetime, form: str
) -> None:
    outcome = run(BUOY + "/up", _message(moment, form))
    if moment < EPOCH:
        assert isinstance(outcome, Rejected), outcome
        assert outcome.reason is R.PAST_TIMESTAMP
        assert "is before 1970-01-01T00:00:00Z" in outcome.quarantine.detail
        return
    assert isinstance(outcome, Accepted), outcome.quarantine.detail
    (reading,) = outcome.readings
    assert reading.ts == moment
    if form == "senml":
        assert reading.quality == Quality.NO_DEVICE_TIME
    else:
        suspect = moment < datetime(2000, 1, 1, tzinfo=UTC)
        assert reading.quality == (Quality.CLOCK_SUSPECT if suspect else Quality.OK)
