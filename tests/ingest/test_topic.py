"""devices.contract.Topic: the topic layout, validated on construction."""

from __future__ import annotations

import pytest

from devices.contract import INGEST_KINDS, InvalidTopic, Kind, Topic, topic_filter
from midika.errors import MidikaError


def test_parse_and_format_round_trip() -> None:
    topic = Topic.parse("midika/v1/onjuku-rip/onjuku-cam-01/evt")
    assert topic == Topic(trial="onjuku-rip", device="onjuku-cam-01", kind=Kind.EVT)
    assert str(topic) == "midika/v1/onjuku-rip/onjuku-cam-01/evt"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("midika/v1/onjuku-rip/onjuku-cam-01", "is not midika/v1/"),
        ("midika/v2/onjuku-rip/onjuku-cam-01/up", "is not midika/v1/"),
        ("midika/v1/onjuku-rip/onjuku-cam-01/up/extra", "is not midika/v1/"),
        ("/midika/v1/onjuku-rip/onjuku-cam-01/up", "is not midika/v1/"),
        ("midika/v1/Onjuku/onjuku-cam-01/up", "trial id 'Onjuku'"),
        ("midika/v1/onjuku-rip/+/up", "device id '+'"),
        ("midika/v1/onjuku-rip//up", "device id ''"),
        ("midika/v1/onjuku-rip/onjuku-cam-01/readings", "topic kind 'readings'"),
    ],
)
def test_bad_topics_say_which_level_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidTopic, match=complaint.replace("+", r"\+")):
        Topic.parse(text)


def test_construction_validates_and_accepts_kind_text() -> None:
    assert Topic(trial="t", device="d", kind="status").kind is Kind.STATUS  # type: ignore[arg-type]
    with pytest.raises(InvalidTopic):
        Topic(trial="t" * 64, device="d", kind=Kind.UP)


def test_invalid_topic_is_a_midika_error_and_a_value_error() -> None:
    assert issubclass(InvalidTopic, MidikaError)
    assert issubclass(InvalidTopic, ValueError)


def test_filters_cover_what_devices_publish() -> None:
    assert [topic_filter(kind) for kind in INGEST_KINDS] == [
        "midika/v1/+/+/up",
        "midika/v1/+/+/evt",
        "midika/v1/+/+/status",
    ]
    assert topic_filter(Kind.DOWN, trial="onjuku-rip", device="onjuku-cam-01") == (
        "midika/v1/onjuku-rip/onjuku-cam-01/down"
    )
