"""devices/CONTRACT.md cannot drift: its examples run through the pipeline with the shipped trials."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from devices.contract import Topic
from ingest.pipeline import Accepted, Rejected
from midika.models.records import QuarantineReason
from midika.timeutil import utcnow
from tests.ingest.contract_doc import DOC, Publish, RejectedExample, publishes, rejected_examples
from tests.ingest.helpers import RECEIVED, run

PUBLISHES = publishes()
REJECTED = rejected_examples()


def test_the_contract_has_examples_of_every_topic_and_format() -> None:
    kinds = {Topic.parse(p.topic).kind.value for p in PUBLISHES}
    assert kinds == {"up", "evt", "status"}
    payloads = [p.payload for p in PUBLISHES]
    assert any('"bn"' in payload for payload in payloads), "a SenML example"
    assert any(payload.startswith('[{"ts"') for payload in payloads), "a batch example"
    assert len(REJECTED) >= 12


@pytest.mark.parametrize("example", PUBLISHES, ids=str)
@pytest.mark.parametrize("received", [RECEIVED, None], ids=["documented", "now"])
def test_every_mosquitto_pub_example_is_accepted(example: Publish, received: datetime | None) -> None:
    outcome = run(example.topic, example.payload, received=received or utcnow())
    assert isinstance(outcome, Accepted), outcome.quarantine.detail
    assert outcome.readings or outcome.events or outcome.status is not None


def test_running_every_example_stores_every_reading() -> None:
    readings = [r for p in PUBLISHES for r in getattr(run(p.topic, p.payload), "readings", ())]
    assert len({r.key for r in readings}) == len(readings), "two examples send the same reading"


@pytest.mark.parametrize("example", PUBLISHES, ids=str)
def test_every_example_logs_in_as_its_device_on_the_make_up_broker(example: Publish) -> None:
    device = Topic.parse(example.topic).device
    assert example.options["-i"] == device, "client id = device id"
    assert example.options["-u"] == device, "username = device id"
    assert example.options["-P"] == "$SECRET"
    assert (example.options["-h"], example.options["-p"]) == ("127.0.0.1", "1883")
    assert example.options["-q"] == "1"
    assert example.options["-V"] == "mqttv311"


def test_the_status_example_sets_the_documented_last_will() -> None:
    (example,) = [p for p in PUBLISHES if "--will-topic" in p.options]
    assert example.options["--will-topic"] == example.topic
    assert example.options["--will-qos"] == "1"
    assert {"-r", "--will-retain"} <= example.flags
    will = run(example.options["--will-topic"], example.options["--will-payload"])
    assert isinstance(will, Accepted) and will.status is not None
    assert will.status.online is False
    hello = run(example.topic, example.payload)
    assert isinstance(hello, Accepted) and hello.status is not None and hello.status.online is True


@pytest.mark.parametrize("example", REJECTED, ids=lambda e: f"{e.reason}-{e.payload[:30]}")
def test_every_rejected_example_gets_the_documented_reason_and_detail(example: RejectedExample) -> None:
    outcome = run(example.topic, example.payload, received=RECEIVED)
    assert isinstance(outcome, Rejected)
    assert outcome.reason.value == example.reason
    assert outcome.quarantine.detail == example.detail


def test_every_quarantine_reason_is_documented_with_what_to_fix() -> None:
    section = DOC.read_text(encoding="utf-8").partition("\n## Rejected messages\n")[2].partition("\n## ")[0]
    table = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| [^|]+ \|$", section, re.MULTILINE)
    assert sorted(table) == sorted(reason.value for reason in QuarantineReason)


def test_rejected_examples_cover_every_reason_a_small_message_can_have() -> None:
    shown = {example.reason for example in REJECTED}
    assert shown == {reason.value for reason in QuarantineReason} - {QuarantineReason.TOO_LARGE.value}
