"""Bytes to JSON records: parse the payload and tell a SenML pack from plain objects by its shape.

Pure and profile-free; `ingest.validate` decides what the records mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ingest.errors import Invalid
from midika.models.records import QuarantineReason

# Fields only a SenML record has (RFC 8428 §4.2, §4.5), including ones midika refuses, so that a
# pack using them is still recognised as SenML and told precisely what is unsupported.
SENML_KEYS = frozenset(
    {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The JSON objects of one message and how they were sent."""

    records: list[dict[str, Any]]
    batch: bool  # a JSON array (record paths in details get an [index])
    senml: bool  # a SenML pack rather than midika reading objects


def parse_json(payload: bytes) -> Any:
    """UTF-8 JSON text to Python values; NaN and ±Infinity literals become floats for validate to flag."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(
            QuarantineReason.UNPARSEABLE,
            f"payload is not UTF-8 (byte 0x{payload[exc.start]:02x} at offset {exc.start}); "
            "send UTF-8 JSON text",
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(
            QuarantineReason.UNPARSEABLE,
            f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except RecursionError:
        raise Invalid(QuarantineReason.UNPARSEABLE, "payload JSON is nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise Invalid(QuarantineReason.UNPARSEABLE, f"payload is not usable JSON: {exc}") from None


def decode(payload: bytes, *, allow_senml: bool) -> Decoded:
    """Parse `payload` as one object or a non-empty array of objects (or a SenML pack if allowed)."""
    doc = parse_json(payload)
    if type(doc) is dict:
        return Decoded([doc], batch=False, senml=False)
    if type(doc) is not list:
        raise Invalid(
            QuarantineReason.SCHEMA_INVALID,
            f"payload is a JSON {json_type(doc)}; send an object or an array of objects",
        )
    if not doc:
        raise Invalid(QuarantineReason.SCHEMA_INVALID, "payload is an empty array; send at least one record")
    for i, record in enumerate(doc):
        if type(record) is not dict:
            raise Invalid(
                QuarantineReason.SCHEMA_INVALID,
                f"[{i}] is a JSON {json_type(record)}; every element of the array must be an object",
            )
    return Decoded(doc, batch=True, senml=allow_senml and looks_like_senml(doc[0]))


def looks_like_senml(record: dict[str, Any]) -> bool:
    """Whether an array's first object is a SenML record: no `values`, and some SenML field."""
    return "values" not in record and not SENML_KEYS.isdisjoint(record)


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
