"""Re-ingesting quarantined messages against both real stores: stored, rejected anew, truncated, missing."""

from __future__ import annotations

import json

import pytest

from ingest.pipeline import Rejected
from ingest.reingest import Outcome, reingest
from midika.models.records import QuarantineReason
from midika.store.base import QuarantineQuery, ReadingQuery, Store
from tests.ingest.helpers import BUOY, RECEIVED, SETTINGS, SHIPPED, Trials, pinned_settings, run

NOBODY = Trials([])  # before the trial file was added: every message is unknown_trial
GOOD = {"ts": "2026-07-20T11:59:00Z", "values": {"hs": 1.2, "tp": 9.0}}
BAD = {"ts": "2026-07-20T11:59:00Z", "values": {"no_such_measurement": 1.0}}


@pytest.fixture
def store(real_store: Store) -> Store:
    """Each real store, empty."""
    return real_store


def _quarantine(store: Store, payload: object, *, cap: int | None = None) -> int:
    settings = SETTINGS if cap is None else pinned_settings(quarantine_payload_cap=cap)
    outcome = run(BUOY + "/up", payload, trials=NOBODY, settings=settings)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is QuarantineReason.UNKNOWN_TRIAL
    before = {q.id for q in store.query_quarantine(QuarantineQuery())}
    store.write_quarantine([outcome.quarantine])
    [new] = [q.id for q in store.query_quarantine(QuarantineQuery()) if q.id not in before]
    assert new is not None
    return new


def test_reingest_after_the_trial_is_registered(store: Store) -> None:
    good = _quarantine(store, GOOD)
    bad = _quarantine(store, BAD)
    cut = _quarantine(store, {**GOOD, "pad": "x" * 100}, cap=16)

    results = {
        r.id: r for r in reingest([good, bad, cut, 987654], store=store, trials=SHIPPED, settings=SETTINGS)
    }

    assert results[good].outcome is Outcome.STORED and results[good].readings == 2
    assert results[bad].outcome is Outcome.REJECTED
    assert results[bad].reason is QuarantineReason.UNKNOWN_MEASUREMENT
    assert results[cut].outcome is Outcome.TRUNCATED and "16 of its" in results[cut].detail
    assert results[987654].outcome is Outcome.NOT_FOUND
    page = store.query_readings(ReadingQuery(trial="onjuku-rip"))
    assert sorted((r.measurement, r.value, r.ingest_ts) for r in page.items) == [
        ("hs", 1.2, RECEIVED),
        ("tp", 9.0, RECEIVED),
    ]
    left = {q.id: q for q in store.query_quarantine(QuarantineQuery())}
    assert good not in left and bad not in left and cut in left
    replaced = left[results[bad].new_id]
    assert replaced.reason is QuarantineReason.UNKNOWN_MEASUREMENT
    assert json.loads(replaced.payload) == BAD and replaced.received_ts == RECEIVED

    # Twice is harmless: the stored one is gone, the rejected one is rejected the same way and kept.
    again = reingest([good, results[bad].new_id or 0], store=store, trials=SHIPPED, settings=SETTINGS)
    assert [r.outcome for r in again] == [Outcome.NOT_FOUND, Outcome.REJECTED]
    assert again[1].new_id is None
    assert len(store.query_quarantine(QuarantineQuery())) == 2
