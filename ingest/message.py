"""One MQTT message as it arrived, and the verdict on it: what the worker, the spool and replay share."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ingest.pipeline import Accepted, Rejected, TrialLookup, process
from midika.models.records import QuarantineReason, QuarantineRecord
from midika.settings import Settings

__all__ = ["RawMessage", "judge"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message's topic, payload and receive time (UTC): all `process` needs, and all the spool keeps."""

    topic: str
    payload: bytes
    received: datetime


def judge(message: RawMessage, *, trials: TrialLookup, settings: Settings) -> Accepted | Rejected:
    """`process`, except that a bug in it quarantines the message instead of raising."""
    try:
        return process(
            message.topic, message.payload, received=message.received, trials=trials, settings=settings
        )
    except Exception as exc:  # the message must not be lost to a pipeline bug, nor kill a thread
        log.exception("ingest failed on a message on %s", message.topic)
        return Rejected(
            QuarantineRecord(
                topic=message.topic,
                payload=bytes(message.payload[: settings.quarantine_payload_cap]),
                reason=QuarantineReason.SCHEMA_INVALID,
                detail=f"midika could not process this message ({exc!r}); please report it",
                received_ts=message.received,
                payload_size=len(message.payload),
            )
        )
