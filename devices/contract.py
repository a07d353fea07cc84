"""The firmware-facing MQTT contract: topic names and the payload models behind the JSON Schemas.

`devices/CONTRACT.md` is the prose; this module is the machine-checkable half. The pydantic models
describe the wire format and generate `devices/schema/*.json` (`python -m devices.contract`). The
ingest does not run them per message: `ingest.validate` applies the same rules with plain checks,
because pydantic costs several microseconds per object and the ingest handles hundreds of thousands
of readings a second. `tests/ingest/test_schemas.py` keeps the two in step.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from midika.errors import MidikaError

ROOT = "midika/v1"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

# The same id rule as midika.models.trial.Id: ids are topic levels, so they can never hold / + #.
_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_ROOT_LEVELS = tuple(ROOT.split("/"))


class Kind(StrEnum):
    """The last topic level: what a message on the topic carries."""

    UP = "up"  # readings, device → platform
    EVT = "evt"  # events, device → platform
    STATUS = "status"  # health and the last will, device → platform (retained)
    DOWN = "down"  # configuration, platform → device; the ingest does not consume it


INGEST_KINDS = (Kind.UP, Kind.EVT, Kind.STATUS)


class InvalidTopic(MidikaError, ValueError):
    """A topic that is not midika/v1/{trial}/{device}/{kind}; the message says which level is wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Topic:
    """One device topic, midika/v1/{trial}/{device}/{kind}; validated on construction."""

    trial: str
    device: str
    kind: Kind

    def __post_init__(self) -> None:
        for level, value in (("trial", self.trial), ("device", self.device)):
            if not isinstance(value, str) or _ID.fullmatch(value) is None:
                raise InvalidTopic(
                    f"{level} id {value!r} is not a valid id (lowercase letters, digits, - and _, "
                    "starting with a letter or digit, at most 63 characters)"
                )
        if not isinstance(self.kind, Kind):
            try:
                object.__setattr__(self, "kind", Kind(self.kind))
            except ValueError:
                raise InvalidTopic(
                    f"topic kind {self.kind!r} is not one of {', '.join(k.value for k in Kind)}"
                ) from None

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Read a topic string; raises InvalidTopic saying what is wrong with it."""
        levels = topic.split("/")
        if len(levels) != 5 or (levels[0], levels[1]) != _ROOT_LEVELS:
            raise InvalidTopic(f"topic {topic!r} is not {ROOT}/{{trial}}/{{device}}/{{kind}}")
        return cls(trial=levels[2], device=levels[3], kind=levels[4])  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{ROOT}/{self.trial}/{self.device}/{self.kind.value}"


def topic_filter(kind: Kind, *, trial: str = "+", device: str = "+") -> str:
    """A subscription filter for `kind` messages, of every trial and device unless given."""
    return f"{ROOT}/{trial}/{device}/{kind.value}"


# ---------------------------------------------------------------------------------------------
# Payload models. They describe the wire format; constraints that depend on the trial's profile
# (which measurements exist, their types, units and ranges) are checked by the ingest.

MeasurementName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
EventTypeName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,62}$")]
EpochTime = Annotated[
    float,
    Field(ge=0, description="seconds since the Unix epoch; numbers >= 1e11 are read as milliseconds"),
]
Timestamp = Annotated[
    AwareDatetime | EpochTime,
    Field(description="event time: RFC 3339 text with an offset (e.g. Z), or epoch seconds or ms"),
]
Seq = Annotated[
    int, Field(ge=0, lt=2**63, description="the device's message counter; helps find gaps and resends")
]
Value = float | int | bool | str


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class ReadingPayload(_Wire):
    """One reading message: the values of one or more measurements taken at one time."""

    model_config = ConfigDict(title="Reading")

    ts: Timestamp | None = Field(default=None, description="omitted: the receive time is used (flagged)")
    seq: Seq | None = None
    values: dict[MeasurementName, Value] = Field(
        min_length=1, description="measurement name → value of the type the device profile declares"
    )


class EventPayload(_Wire):
    """One event message: something the device detected."""

    model_config = ConfigDict(title="Event")

    ts: Timestamp | None = Field(default=None, description="omitted: the receive time is used")
    seq: Seq | None = None
    type: EventTypeName = Field(description="an event type the device profile declares")
    data: dict[MeasurementName, Value] = Field(
        default_factory=dict, description="the event type's fields; each may be omitted, none may be null"
    )


class StatusPayload(_Wire):
    """A device's health message, published retained on its status topic (also its last will)."""

    model_config = ConfigDict(title="Status")

    ts: Timestamp | None = Field(default=None, description="omitted: the receive time is used")
    online: bool | None = Field(default=None, description="true on connect; the last will says false")
    battery: float | None = Field(default=None, description="volts, or 0..1 state of charge, per profile")
    rssi: float | None = Field(default=None, description="received signal strength, dBm")
    firmware: str | None = Field(default=None, min_length=1, max_length=64)
    uptime: float | None = Field(default=None, ge=0, description="seconds since boot")


_SENML_VALUE_FIELDS = ("v", "vs", "vb")


class SenMLRecord(_Wire):
    """One record of a SenML pack (RFC 8428, JSON), restricted to the fields midika understands."""

    model_config = ConfigDict(
        title="SenMLRecord",
        json_schema_extra={"oneOf": [{"required": [name]} for name in _SENML_VALUE_FIELDS]},
    )

    bn: str | None = Field(
        default=None,
        pattern=r"^$|^urn:dev:midika:[a-z0-9][a-z0-9_-]{0,62}:$|^[a-z0-9][a-z0-9_-]{0,62}/$",
        description="base name: empty, 'urn:dev:midika:{device}:' or '{device}/'",
    )
    bt: float | None = Field(default=None, description="base time, seconds; added to every t")
    bu: str | None = Field(default=None, min_length=1, description="base unit: the unit of records without u")
    bver: int | None = Field(default=None, ge=1, le=10, description="SenML version")
    n: str | None = Field(default=None, description="measurement name (appended to bn)")
    u: str | None = Field(default=None, min_length=1, description="unit; must be the profile's unit")
    v: float | None = Field(default=None, description="numeric value (float and int measurements)")
    vs: str | None = Field(default=None, description="string value (str measurements)")
    vb: bool | None = Field(default=None, description="boolean value (bool measurements)")
    t: float | None = Field(
        default=None,
        description="time, seconds: bt + t >= 2**28 is epoch time, smaller is relative to receipt",
    )
    ut: float | None = Field(default=None, ge=0, description="update time; accepted and ignored")

    @model_validator(mode="after")
    def _one_value(self) -> SenMLRecord:
        present = [name for name in _SENML_VALUE_FIELDS if getattr(self, name) is not None]
        if len(present) != 1:
            raise ValueError(f"a record needs exactly one of v, vs, vb (has {present or 'none'})")
        return self


ReadingMessage = RootModel[ReadingPayload | Annotated[list[ReadingPayload], Field(min_length=1)]]
EventMessage = RootModel[EventPayload | Annotated[list[EventPayload], Field(min_length=1)]]
SenMLPack = RootModel[Annotated[list[SenMLRecord], Field(min_length=1)]]

_SCHEMAS: dict[str, tuple[type[BaseModel], str, str]] = {
    "readings": (ReadingMessage, "midika readings", f"payload of {ROOT}/{{trial}}/{{device}}/up"),
    "senml": (SenMLPack, "midika SenML pack", f"SenML (RFC 8428) payload of {ROOT}/{{trial}}/{{device}}/up"),
    "events": (EventMessage, "midika events", f"payload of {ROOT}/{{trial}}/{{device}}/evt"),
    "status": (StatusPayload, "midika status", f"payload of {ROOT}/{{trial}}/{{device}}/status"),
}


class _ContractSchema(GenerateJsonSchema):
    """Optional fields are omitted on the wire, never null: say so, and drop per-field titles."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12) of every payload kind, by file stem."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, (model, title, description) in _SCHEMAS.items():
        body = model.model_json_schema(mode="validation", schema_generator=_ContractSchema)
        body.pop("title", None)
        body.pop("description", None)
        schemas[stem] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "description": f"{description}; generated by `python -m devices.contract`, see CONTRACT.md",
            **body,
        }
    return schemas


def render(schema: dict[str, Any]) -> str:
    """The text a schema file holds: stable key order, two-space indent, final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema to `directory`/{stem}.json; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, schema in json_schemas().items():
        path = directory / f"{stem}.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> Literal[0]:
    """`python -m devices.contract [DIR]`: regenerate the JSON Schemas."""
    args = sys.argv[1:] if argv is None else argv
    for path in write_schemas(Path(args[0]) if args else SCHEMA_DIR):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
