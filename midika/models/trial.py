"""A trial as declared in `trials/*.yaml`: where it runs, which devices it has, what they measure.

The models are frozen and validate on construction, so a loaded `Trial` is known to be consistent:
every device names an existing profile and site, every id is safe to put in an MQTT topic.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Ids become MQTT topic levels, InfluxDB tag values and URL path segments: keep them boring.
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
MeasurementName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
EventTypeName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,62}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValueType(StrEnum):
    """The JSON type a measurement's values have on the wire."""

    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STR = "str"


class Municipality(_Frozen):
    """The local government running the trial, by name and 全国地方公共団体コード."""

    name: str = Field(min_length=1)
    code: str = Field(pattern=r"^\d{6}$", description="6-digit 全国地方公共団体コード with check digit")

    @field_validator("code")
    @classmethod
    def _check_digit(cls, code: str) -> str:
        # The sixth digit is a modulus-11 check digit over the first five (weights 6..2).
        total = sum(int(d) * w for d, w in zip(code[:5], (6, 5, 4, 3, 2), strict=True))
        expected = (11 - total % 11) % 10
        if int(code[5]) != expected:
            raise ValueError(f"check digit of {code} should be {expected}")
        return code


class Location(_Frozen):
    """A WGS84 position."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    depth_m: float | None = Field(default=None, description="below the surface, for underwater sensors")


class Site(_Frozen):
    """A named place of the trial: a beach, a cage, a hut."""

    id: Id
    name: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Measurement(_Frozen):
    """One quantity a device reports, with the range a working sensor can plausibly produce."""

    name: MeasurementName
    unit: str = Field(min_length=1, description="SenML unit where the IANA registry has one")
    type: ValueType = ValueType.FLOAT
    range: tuple[float, float] | None = Field(default=None, description="plausible [min, max]")
    period_s: float = Field(gt=0, description="expected seconds between readings")
    description: str = ""

    @field_validator("range")
    @classmethod
    def _ordered(cls, rng: tuple[float, float] | None) -> tuple[float, float] | None:
        if rng is not None and not (math.isfinite(rng[0]) and math.isfinite(rng[1]) and rng[0] <= rng[1]):
            raise ValueError("range must be two finite numbers [min, max] with min <= max")
        return rng

    def in_range(self, value: float) -> bool:
        """Whether `value` lies inside the plausible range (always true without one)."""
        return self.range is None or self.range[0] <= value <= self.range[1]


class EventType(_Frozen):
    """An event a device can raise, with the fields its payload carries."""

    type: EventTypeName
    fields: dict[MeasurementName, ValueType] = Field(default_factory=dict)
    description: str = ""


class DeviceProfile(_Frozen):
    """What a kind of device measures and which events it raises."""

    id: Id
    description: str = ""
    measurements: tuple[Measurement, ...] = ()
    events: tuple[EventType, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> DeviceProfile:
        _no_duplicates("measurements", [m.name for m in self.measurements])
        _no_duplicates("events", [e.type for e in self.events])
        return self

    def measurement(self, name: str) -> Measurement | None:
        """The measurement called `name`, or None."""
        return next((m for m in self.measurements if m.name == name), None)

    def event_type(self, name: str) -> EventType | None:
        """The event type called `name`, or None."""
        return next((e for e in self.events if e.type == name), None)


class Device(_Frozen):
    """One physical device of a trial."""

    id: Id
    profile: Id
    site: Id
    location: Location | None = None
    description: str = ""


class Trial(_Frozen):
    """A field trial: municipality, sites, device profiles and devices."""

    id: Id
    name: str = Field(min_length=1)
    municipality: Municipality
    domain: str = Field(min_length=1)
    timezone: str = "Asia/Tokyo"
    personal_data: bool = False
    description: str = ""
    sites: tuple[Site, ...] = Field(min_length=1)
    profiles: tuple[DeviceProfile, ...] = Field(min_length=1)
    devices: tuple[Device, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {tz!r}") from exc
        return tz

    @model_validator(mode="after")
    def _references(self) -> Trial:
        _no_duplicates("sites", [s.id for s in self.sites])
        _no_duplicates("profiles", [p.id for p in self.profiles])
        _no_duplicates("devices", [d.id for d in self.devices])
        sites = {s.id for s in self.sites}
        profiles = {p.id for p in self.profiles}
        for i, device in enumerate(self.devices):
            if device.profile not in profiles:
                raise ValueError(
                    f"devices.{i}.profile: no profile {device.profile!r} (have {sorted(profiles)})"
                )
            if device.site not in sites:
                raise ValueError(f"devices.{i}.site: no site {device.site!r} (have {sorted(sites)})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The trial's time zone, for calendar-aligned aggregates."""
        return ZoneInfo(self.timezone)

    def device(self, device_id: str) -> Device | None:
        """The device called `device_id`, or None."""
        return next((d for d in self.devices if d.id == device_id), None)

    def profile(self, profile_id: str) -> DeviceProfile:
        """The profile called `profile_id`; validation guarantees devices' profiles exist."""
        return next(p for p in self.profiles if p.id == profile_id)

    def profile_of(self, device_id: str) -> DeviceProfile | None:
        """The profile of device `device_id`, or None for an unknown device."""
        device = self.device(device_id)
        return None if device is None else self.profile(device.profile)


def _no_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"{what}: {ident!r} is declared twice")
        seen.add(ident)
