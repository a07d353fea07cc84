"""The JSON Schemas in devices/schema/ are generated, and agree with what the pipeline accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devices.contract import SCHEMA_DIR, Kind, Topic, json_schemas, main, render
from ingest.decode import looks_like_senml
from ingest.pipeline import Accepted, Rejected
from midika.models.records import QuarantineReason
from tests.ingest.contract_doc import publishes
from tests.ingest.helpers import BUOY, CAM, run

SCHEMAS = json_schemas()


def validator(topic: str, payload: Any) -> jsonschema.Draft202012Validator:
    """The validator of the schema a payload on `topic` has to satisfy."""
    kind = Topic.parse(topic).kind
    if kind is Kind.UP:
        senml = isinstance(payload, list) and payload and isinstance(payload[0], dict)
        stem = "senml" if senml and looks_like_senml(payload[0]) else "readings"
    else:
        stem = {Kind.EVT: "events", Kind.STATUS: "status"}[kind]
    return jsonschema.Draft202012Validator(SCHEMAS[stem])


@pytest.mark.parametrize("stem", sorted(SCHEMAS))
def test_committed_schema_is_the_generated_one(stem: str) -> None:
    committed = (SCHEMA_DIR / f"{stem}.json").read_text(encoding="utf-8")
    assert committed == render(SCHEMAS[stem]), "run: .venv/bin/python -m devices.contract"


def test_the_generator_writes_exactly_the_four_schemas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events.json",
        "readings.json",
        "senml.json",
        "status.json",
    ]
    assert sorted(p.name for p in SCHEMA_DIR.iterdir()) == sorted(p.name for p in tmp_path.iterdir())
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize("stem", sorted(SCHEMAS))
def test_schemas_are_valid_draft_2020_12(stem: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[stem])


@pytest.mark.parametrize("example", publishes(), ids=str)
def test_every_contract_example_satisfies_its_schema(example: Any) -> None:
    payload = json.loads(example.payload)
    validator(example.topic, payload).validate(payload)


# Payloads of the right shape for the pipeline, which the schema must accept too.
VALID = [
    (BUOY + "/up", {"values": {"hs": 1.0}, "seq": 0}),
    (BUOY + "/up", {"ts": 1784505600.5, "values": {"hs": 1, "tp": 9}}),
    (BUOY + "/up", {"ts": "2026-07-20T09:00:00.250+09:00", "seq": 5.0, "values": {"hs": 1}}),
    (BUOY + "/up", [{"ts": 1784505600, "values": {"hs": 1}}, {"ts": 1784507400, "values": {"hs": 2}}]),
    (BUOY + "/up", [{"bver": 10, "bn": "", "n": "hs", "v": 1, "ut": 0}]),
    (BUOY + "/up", [{"n": "onjuku-buoy-01/hs", "v": 1}]),
    (CAM + "/evt", {"type": "CAMERA_OFFLINE"}),
    (CAM + "/evt", [{"ts": 1784505600, "type": "RIP_CLEARED", "data": {"confidence": 1}}]),
    (CAM + "/status", {}),
    (CAM + "/status", {"ts": 1784505600, "battery": 0.5, "uptime": 0, "firmware": "x" * 64}),
]

# Payloads that break the contract's shape: the schema and the pipeline both refuse them.
SHAPE_ERRORS = [
    (BUOY + "/up", {}),
    (BUOY + "/up", {"values": {}}),
    (BUOY + "/up", {"values": [1]}),
    (BUOY + "/up", {"values": {"hs": 1}, "extra": 1}),
    (BUOY + "/up", {"ts": None, "values": {"hs": 1}}),
    (BUOY + "/up", {"ts": True, "values": {"hs": 1}}),
    (BUOY + "/up", {"seq": -1, "values": {"hs": 1}}),
    (BUOY + "/up", {"seq": 1.5, "values": {"hs": 1}}),
    (BUOY + "/up", {"seq": True, "values": {"hs": 1}}),
    (BUOY + "/up", {"seq": 2**63, "values": {"hs": 1}}),
    (BUOY + "/up", []),
    (BUOY + "/up", [1]),
    (BUOY + "/up", 42),
    (BUOY + "/up", [{"values": {"hs": 1}, "ts": 1784505600}, {"values": {"hs": 2}, "x": 1}]),
    (BUOY + "/up", [{"n": "hs"}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "vs": "x"}]),
    (BUOY + "/up", [{"n": "hs", "v": "1"}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "s": 3}]),
    (BUOY + "/up", [{"bn": "buoy:", "n": "hs", "v": 1}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "bver": 11}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "ut": -1}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "u": ""}]),
    (BUOY + "/up", [{"n": 5, "v": 1}]),
    (BUOY + "/up", [{"n": "hs", "v": 1, "bt": "now"}]),
    (CAM + "/evt", {"data": {}}),
    (CAM + "/evt", {"type": "RIP_DETECTED", "data": []}),
    (CAM + "/evt", {"type": "RIP_DETECTED", "extra": 1}),
    (CAM + "/evt", []),
    (CAM + "/status", {"online": "yes"}),
    (CAM + "/status", {"online": None}),
    (CAM + "/status", {"battery": "3.7"}),
    (CAM + "/status", {"uptime": -1}),
    (CAM + "/status", {"firmware": ""}),
    (CAM + "/status", {"firmware": "x" * 65}),
    (CAM + "/status", {"online": True, "x": 1}),
    (CAM + "/status", [{"online": True}]),
]


@pytest.mark.parametrize(("topic", "payload"), VALID, ids=lambda v: json.dumps(v)[:50])
def test_what_the_schema_accepts_the_pipeline_accepts(topic: str, payload: Any) -> None:
    validator(topic, payload).validate(payload)
    outcome = run(topic, payload)
    assert isinstance(outcome, Accepted), outcome.quarantine.detail


@pytest.mark.parametrize(("topic", "payload"), SHAPE_ERRORS, ids=lambda v: json.dumps(v)[:50])
def test_what_the_schema_refuses_the_pipeline_refuses(topic: str, payload: Any) -> None:
    assert not validator(topic, payload).is_valid(payload)
    outcome = run(topic, payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is QuarantineReason.SCHEMA_INVALID, outcome.quarantine.detail


# A negative epoch number breaks the schema (minimum 0) too, but the pipeline names what it is: a time
# before 1970 (as a time before 1970 in RFC 3339 text, which the schema cannot refuse, is).
PAST_TIMES = [
    (BUOY + "/up", {"ts": -5, "values": {"hs": 1}}),
    (BUOY + "/up", [{"ts": 1784505600, "values": {"hs": 1}}, {"ts": -5, "values": {"hs": 2}}]),
    (CAM + "/evt", {"ts": -0.5, "type": "CAMERA_OFFLINE"}),
    (CAM + "/status", {"ts": -1784505600000, "online": True}),
]


@pytest.mark.parametrize(("topic", "payload"), PAST_TIMES, ids=lambda v: json.dumps(v)[:50])
def test_a_negative_epoch_the_schema_refuses_the_pipeline_quarantines_as_past(
    topic: str, payload: Any
) -> None:
    assert not validator(topic, payload).is_valid(payload)
    outcome = run(topic, payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is QuarantineReason.PAST_TIMESTAMP, outcome.quarantine.detail
