"""One MQTT message in, one verdict out: `Accepted` records to store, or `Rejected` with its quarantine.

`process` is pure (no I/O, no clock: the receive time is passed in) so the worker, the benchmark
and a future re-ingest of quarantined messages all run exactly the same rules. A message is
accepted or rejected whole: if any record is invalid, nothing of it is stored, which keeps the
accounting simple and lets a re-ingest replay the message as it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final, Protocol

from devices.contract import InvalidTopic, Kind, Topic
from ingest import checks, senml, validate
from ingest.decode import decode
from ingest.errors import Invalid
from midika.identity_cache import IdentityCache
from midika.models.records import (
    Event,
    QuarantineReason,
    QuarantineRecord,
    Reading,
    StatusReport,
)
from midika.models.trial import Trial
from midika.settings import Settings

R = QuarantineReason

# A device sends on the same few topics all day, so their parsed form is kept rather than
# re-checked per message; bounded, so made-up topics cannot grow it. Invalid topics raise and
# are not cached.
_TOPIC_CACHE: Final = 16_384
_parse_topic: Final = lru_cache(maxsize=_TOPIC_CACHE)(Topic.parse)


class TrialLookup(Protocol):
    """Where the pipeline finds a trial by id (the device registry, or a dict in tests)."""

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None when there is none."""
        ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid message and what it yields; an empty status message (a cleared retain) yields nothing."""

    topic: Topic
    readings: tuple[Reading, ...] = ()
    events: tuple[Event, ...] = ()
    status: StatusReport | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message kept in quarantine instead of being stored."""

    quarantine: QuarantineRecord

    @property
    def reason(self) -> QuarantineReason:
        """Why the message was rejected."""
        return self.quarantine.reason


Outcome = Accepted | Rejected


def process(
    topic: str, payload: bytes, *, received: datetime, trials: TrialLookup, settings: Settings
) -> Accepted | Rejected:
    """Decode and validate one message received at `received` (timezone-aware UTC)."""
    try:
        parsed = _parse_topic(topic)
    except InvalidTopic as exc:
        return _reject(topic, payload, R.BAD_TOPIC, str(exc), received, settings)
    try:
        return _accept(parsed, payload, received=received, trials=trials, settings=settings)
    except Invalid as invalid:
        return _reject(
            topic, payload, invalid.reason, invalid.detail, received, settings, parsed.trial, parsed.device
        )


def _accept(
    topic: Topic, payload: bytes, *, received: datetime, trials: TrialLookup, settings: Settings
) -> Accepted:
    kind = topic.kind
    if kind is Kind.DOWN:
        raise Invalid(
            R.BAD_TOPIC, f"{topic} carries configuration to the device; the ingest reads up/evt/status"
        )
    if len(payload) > settings.max_payload_bytes:
        raise Invalid(
            R.TOO_LARGE,
            f"payload is {len(payload)} bytes, over the {settings.max_payload_bytes}-byte limit; "
            "split the batch into several messages",
        )
    trial = trials.trial(topic.trial)
    if trial is None:
        raise Invalid(R.UNKNOWN_TRIAL, f"no trial {topic.trial!r} is registered; check the topic or trials/")
    index = _profiles(trial).get(topic.device)
    if index is None:
        raise Invalid(
            R.UNKNOWN_DEVICE,
            f"trial {topic.trial!r} has no device {topic.device!r}; register it in the trial file",
        )
    if kind is Kind.STATUS and not payload:
        return Accepted(topic)  # an empty retained message clears the device's retained status
    ctx = checks.Context(topic.trial, topic.device, index, received, settings.future_tolerance_s)
    decoded = decode(payload, allow_senml=kind is Kind.UP)
    if kind is Kind.UP:
        if decoded.senml:
            return Accepted(topic, readings=tuple(senml.readings(decoded.records, ctx=ctx)))
        return Accepted(
            topic, readings=tuple(validate.readings(decoded.records, batch=decoded.batch, ctx=ctx))
        )
    if kind is Kind.EVT:
        return Accepted(topic, events=tuple(validate.events(decoded.records, batch=decoded.batch, ctx=ctx)))
    if decoded.batch:
        raise Invalid(R.SCHEMA_INVALID, "a status message is one object, not an array")
    return Accepted(topic, status=validate.status(decoded.records[0], ctx=ctx))


def _reject(
    topic: str,
    payload: bytes,
    reason: QuarantineReason,
    detail: str,
    received: datetime,
    settings: Settings,
    trial: str | None = None,
    device: str | None = None,
) -> Rejected:
    return Rejected(
        QuarantineRecord(
            topic=topic,
            payload=bytes(payload[: settings.quarantine_payload_cap]),
            reason=reason,
            detail=detail,
            received_ts=received,
            trial=trial,
            device=device,
            payload_size=len(payload),
        )
    )


def _index(trial: Trial) -> dict[str, checks.ProfileIndex]:
    by_profile = {profile.id: checks.ProfileIndex(profile) for profile in trial.profiles}
    return {device.id: by_profile[device.profile] for device in trial.devices}


# The registry hands out the same Trial object until it reloads: the device → profile index is
# built once per object.
_profiles: Final = IdentityCache(_index, max_entries=256)
