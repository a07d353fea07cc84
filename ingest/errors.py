"""The ingest's exceptions: `IngestError` and its broker failures, plus the internal rejection signal."""

from __future__ import annotations

from midika.errors import MidikaError
from midika.models.records import QuarantineReason


class IngestError(MidikaError):
    """Root of the errors the ingest raises."""


class BrokerRefused(IngestError):
    """The broker answered but refused the ingest (credentials, ACL): retrying will not help."""


class BrokerUnreachable(IngestError):
    """The broker did not answer in time; it may be starting or the network may be down."""

    retryable = True


class Invalid(Exception):  # a verdict rather than a failure: the message goes to quarantine
    """Raised by decode and validate to reject a whole message; `process` turns it into quarantine."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
