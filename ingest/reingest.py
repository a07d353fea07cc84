"""Re-ingest quarantined messages once their cause is fixed (a device registered, a trial file added).

Each stored (topic, payload) runs through the same `pipeline.process` as live traffic, with the
registry as it is now and the original receive time (so the clock checks and `ingest_ts` are those
of the first delivery). An accepted message is written to the store and then leaves quarantine; a
crash in between only means the next re-ingest finds its readings already stored (duplicates are
counted, not stored twice). A message rejected again stays, replaced by a record with the new
reason. A payload that was cut at MIDIKA_QUARANTINE_PAYLOAD_CAP cannot be replayed and is left as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from ingest.pipeline import Accepted, TrialLookup, process
from midika.models.records import QuarantineReason, QuarantineRecord
from midika.settings import Settings
from midika.store.base import QuarantineQuery, Store


class Outcome(StrEnum):
    """What re-ingesting one quarantined message did."""

    STORED = "stored"  # accepted: its records are in the store, the quarantine record is gone
    REJECTED = "rejected"  # still invalid: kept in quarantine with the (possibly new) reason
    TRUNCATED = "truncated"  # only a capped copy of the payload was kept: it cannot be replayed
    NOT_FOUND = "not_found"  # no quarantined message has this id (already re-ingested?)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome for one quarantine id; `new_id` is the id of the replacing record, if any."""

    id: int
    outcome: Outcome
    detail: str
    readings: int = 0
    duplicates: int = 0
    reason: QuarantineReason | None = None
    new_id: int | None = None


def reingest(ids: Sequence[int], *, store: Store, trials: TrialLookup, settings: Settings) -> list[Result]:
    """Re-run the given quarantined messages through the pipeline; one result per distinct id, in order."""
    wanted = list(dict.fromkeys(ids))
    found = {q.id: q for q in store.query_quarantine(QuarantineQuery(ids=wanted, limit=max(1, len(wanted))))}
    results: list[Result] = []
    for ident in wanted:
        record = found.get(ident)
        if record is None:
            results.append(Result(id=ident, outcome=Outcome.NOT_FOUND, detail="no quarantined message"))
            continue
        if record.payload_size > len(record.payload):
            results.append(
                Result(
                    id=ident,
                    outcome=Outcome.TRUNCATED,
                    reason=record.reason,
                    detail=f"only {len(record.payload)} of its {record.payload_size} bytes were kept "
                    "(MIDIKA_QUARANTINE_PAYLOAD_CAP); the device must send it again",
                )
            )
            continue
        verdict = process(
            record.topic, record.payload, received=record.received_ts, trials=trials, settings=settings
        )
        if isinstance(verdict, Accepted):
            written = store.write_readings(verdict.readings) if verdict.readings else None
            events = store.write_events(verdict.events) if verdict.events else None
            if verdict.status is not None:
                store.write_status([verdict.status])
            store.delete_quarantine([ident])
            results.append(
                Result(
                    id=ident,
                    outcome=Outcome.STORED,
                    detail="stored",
                    readings=written.written if written else 0,
                    duplicates=(written.duplicates if written else 0) + (events.duplicates if events else 0),
                )
            )
            continue
        again = verdict.quarantine
        new_id = None
        if (again.reason, again.detail) != (record.reason, record.detail):
            # Write the replacement first: a crash between the two leaves a duplicate, never nothing.
            before = {q.id for q in _received_at(store, again.received_ts)}
            store.write_quarantine([replace(again, id=None)])
            after = _received_at(store, again.received_ts)
            new_id = next((q.id for q in after if q.id not in before and q.topic == again.topic), None)
            store.delete_quarantine([ident])
        results.append(
            Result(
                id=ident, outcome=Outcome.REJECTED, reason=again.reason, detail=again.detail, new_id=new_id
            )
        )
    return results


def _received_at(store: Store, received: datetime) -> list[QuarantineRecord]:
    """Quarantined messages received in the same microsecond: where a replacement's new id is found."""
    window = QuarantineQuery(start=received, end=received + timedelta(microseconds=1), limit=10_000)
    return store.query_quarantine(window)
