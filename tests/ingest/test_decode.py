"""ingest.decode: bytes to JSON records, and SenML told from reading objects by shape."""

from __future__ import annotations

import math

import pytest

from ingest.decode import decode, json_type, looks_like_senml, parse_json
from ingest.errors import Invalid
from midika.models.records import QuarantineReason


def reason_of(payload: bytes, *, allow_senml: bool = True) -> tuple[QuarantineReason, str]:
    with pytest.raises(Invalid) as caught:
        decode(payload, allow_senml=allow_senml)
    return caught.value.reason, caught.value.detail


def test_one_object_is_one_record() -> None:
    decoded = decode(b'{"values": {"hs": 1}}', allow_senml=True)
    assert decoded.records == [{"values": {"hs": 1}}]
    assert not decoded.batch and not decoded.senml


def test_an_array_of_reading_objects_is_a_batch() -> None:
    decoded = decode(b'[{"values": {"hs": 1}}, {"values": {"hs": 2}}]', allow_senml=True)
    assert decoded.batch and not decoded.senml
    assert len(decoded.records) == 2


@pytest.mark.parametrize(
    "first",
    ['{"n": "hs", "v": 1}', '{"bn": "d/", "bt": 1}', '{"vs": "x"}', '{"s": 1}'],
)
def test_an_array_starting_with_a_senml_record_is_senml(first: str) -> None:
    decoded = decode(f"[{first}]".encode(), allow_senml=True)
    assert decoded.senml and decoded.batch


def test_senml_only_where_allowed() -> None:
    assert not decode(b'[{"n": "hs", "v": 1}]', allow_senml=False).senml


@pytest.mark.parametrize(
    ("record", "senml"),
    [({"values": {}, "n": "x"}, False), ({}, False), ({"ts": 1}, False), ({"t": 0}, True)],
)
def test_looks_like_senml(record: dict[str, object], senml: bool) -> None:
    assert looks_like_senml(record) is senml


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"\xff{}", "not UTF-8 (byte 0xff at offset 0)"),
        (b'{"values": {"t": "\xe9"}}', "not UTF-8"),
        (b"\xef\xbb\xbf{}", "not JSON"),  # a BOM
        (b"", "not JSON"),
        (b"{'values': {}}", "Expecting property name enclosed in double quotes at line 1 column 2"),
        (b'{"values": {"hs": 1}', "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_unparseable_payloads(payload: bytes, detail: str) -> None:
    reason, text = reason_of(payload)
    assert reason is QuarantineReason.UNPARSEABLE
    assert detail in text


def test_integers_too_long_for_python_are_unparseable() -> None:
    reason, _ = reason_of(b'{"values": {"hs": ' + b"9" * 5000 + b"}}")
    assert reason is QuarantineReason.UNPARSEABLE


def test_nan_and_infinity_literals_parse_so_validation_can_name_the_field() -> None:
    doc = parse_json(b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}')
    assert math.isnan(doc["a"])
    assert doc["b"] == doc["d"] == math.inf
    assert doc["c"] == -math.inf


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"42", "payload is a JSON number"),
        (b'"hs"', "payload is a JSON string"),
        (b"null", "payload is a JSON null"),
        (b"[]", "empty array"),
        (b'[{"values": {}}, 3]', "[1] is a JSON number"),
        (b"[[]]", "[0] is a JSON array"),
    ],
)
def test_wrong_shapes_are_schema_invalid(payload: bytes, detail: str) -> None:
    reason, text = reason_of(payload)
    assert reason is QuarantineReason.SCHEMA_INVALID
    assert detail in text


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "boolean"),
        (1, "number"),
        (1.5, "number"),
        ("x", "string"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_type_names(value: object, name: str) -> None:
    assert json_type(value) == name
