"""The ingest's writer: verdicts in from paho's thread, batched store writes and acknowledgements out.

Batches close at `ingest_batch_size` records or `ingest_flush_interval_s` after their first message.
A message is acknowledged to the broker only once it is durable: its records written to the store
(quarantine included), or the message itself fsync'd to the outage spool. Until then the broker
still holds it and delivers it again if the ingest dies, so a crash loses nothing; the stores'
idempotent writes absorb the redelivery.

When the store is unavailable (a retryable StoreError) the batch goes to the spool and is
acknowledged; while the spool holds anything, new batches go there too, so replay keeps arrival
order, and the writer replays it one batch at a time between live batches, with backoff while the
store stays down. When the spool is full (or there is none), the writer retries the store with
backoff, holding the batch unacknowledged: `put` blocks once `ingest_max_unacked` messages are
unacknowledged, which stops paho reading from the socket, and the broker keeps the rest queued.
A store that refuses a batch for good (a non-retryable error: a bug, not an outage) has its
messages counted as `lost` and logged, and acknowledged: retrying could never succeed.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, TypeVar

from ingest.errors import IngestError
from ingest.message import RawMessage
from ingest.pipeline import Accepted, Rejected
from ingest.spool import Segment, Spool
from ingest.stats import LATENCY_BOUNDS_S, IngestStats, Latency
from midika.errors import StoreError
from midika.models.records import Event, QuarantineReason, QuarantineRecord, Reading, StatusReport
from midika.settings import Settings
from midika.store.base import Store

__all__ = ["LATENCY_BOUNDS_S", "Acknowledge", "BatchWriter", "IngestStats", "Judge", "Latency"]

log = logging.getLogger(__name__)

_RETRY_DELAY_S: Final = (0.1, 5.0)
T = TypeVar("T")
R = TypeVar("R")

Acknowledge = Callable[[Sequence[int]], None]  # sends the PUBACKs of these message ids, in order
Judge = Callable[[RawMessage], Accepted | Rejected]  # `process` for replayed messages


class _Item(NamedTuple):
    outcome: Accepted | Rejected
    message: RawMessage
    ack: int | None
    size: int  # records the verdict carries


def _records(outcome: Accepted | Rejected) -> int:
    if isinstance(outcome, Rejected):
        return 1
    return len(outcome.readings) + len(outcome.events) + (outcome.status is not None)


class _StoreDown(Exception):
    """The store is unavailable for now; the batch is not written (or only partly)."""


@dataclass(slots=True)
class _Batch:
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: list[StatusReport] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    raw: list[RawMessage] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)  # QoS 1 message ids; QoS 0 needs none
    accepted: int = 0
    size: int = 0  # records of every kind

    @property
    def messages(self) -> int:
        return len(self.raw)

    def add(self, item: _Item) -> None:
        outcome = item.outcome
        self.raw.append(item.message)
        if item.ack is not None:
            self.acks.append(item.ack)
        self.size += item.size
        if isinstance(outcome, Rejected):
            self.quarantine.append(outcome.quarantine)
            return
        self.accepted += 1
        self.readings.extend(outcome.readings)
        self.events.extend(outcome.events)
        if outcome.status is not None:
            self.status.append(outcome.status)


@dataclass(slots=True)
class _Replay:
    segment: Segment
    next: int = 0  # index of the first message not yet written


class BatchWriter:
    """Writes verdicts to the store in batches from a thread of its own, acknowledging what is durable."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        acknowledge: Acknowledge,
        judge: Judge,
        spool: Spool | None = None,
    ) -> None:
        self._store = store
        self._limit = settings.ingest_batch_size
        self._interval = settings.ingest_flush_interval_s
        self._max_unacked = settings.ingest_max_unacked
        self._acknowledge = acknowledge
        self._judge = judge
        self._spool = spool
        # Verdicts wait in `_inbox` for the writer, which `put` wakes only when it has something to
        # do (the first verdict of a batch, or a full batch): a wake-up per message would cost the
        # two threads a GIL hand-over each.
        self._inbox: deque[_Item] = deque()
        self._inbox_size = 0  # records in the inbox
        self._inbox_since = 0.0  # monotonic arrival time of the oldest verdict in the inbox
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # progress: for put's backpressure, wait_idle
        self._arrived = threading.Condition(self._lock)  # work for the writer thread
        self._received = 0
        self._recovered = spool.recovered if spool is not None else 0
        self._acked = 0  # messages acknowledged (or needing no ack): stored, spooled, quarantined, lost
        self._done = 0  # messages whose fate is final: in the store, in quarantine, or lost
        self._counts: Counter[str] = Counter()
        self._quarantined: Counter[QuarantineReason] = Counter()
        self._latency = [0] * (len(LATENCY_BOUNDS_S) + 1)
        self._latency_sum = 0.0
        self._down = False  # the last store write failed for want of the store
        self._replay_at = 0.0  # monotonic time of the next replay attempt
        self._replay_delay = _RETRY_DELAY_S[0]
        self._replaying: _Replay | None = None  # the spool segment being replayed
        self._closing = False  # set by stop(): put() refuses from then on
        self._abandon = threading.Event()  # set when stop() gives up on a store that keeps failing
        self._thread = threading.Thread(target=self._run, name="midika-ingest-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def put(self, outcome: Accepted | Rejected, message: RawMessage, ack: int | None) -> bool:
        """Queue one message's verdict; False if stopping (leave it unacknowledged).

        Blocks while `ingest_max_unacked` messages await their ack. Blocking paho's thread is the
        point: it stops reading the socket, and the broker holds the rest.
        """
        size = _records(outcome)
        with self._changed:
            while self._received - self._acked >= self._max_unacked and not self._closing:
                self._changed.wait(1.0)  # woken by every batch made durable, and by stop()
            if self._closing:
                return False
            self._received += 1
            if not self._inbox:
                self._inbox_since = time.monotonic()
                self._arrived.notify()  # a batch begins: the writer starts its flush timer
            before = self._inbox_size
            self._inbox.append(_Item(outcome, message, ack, size))
            self._inbox_size += size
            if before < self._limit <= self._inbox_size:
                self._arrived.notify()  # a full batch
        return True

    def stop(self, timeout: float) -> None:
        """Write what is queued and end the thread; after `timeout`, stop retrying an unavailable store."""
        with self._changed:
            self._closing = True
            self._arrived.notify()
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()
                self._thread.join(timeout=max(1.0, timeout))
        if self._spool is not None:
            self._spool.close()

    def wait_idle(self, timeout: float) -> None:
        """Block until everything put so far is in the store (spool replayed); IngestError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._done >= self._received + self._recovered, timeout):
                raise IngestError(
                    f"the ingest still had {self._received + self._recovered - self._done} message(s) "
                    f"to write after {timeout:g} s",
                    retryable=True,
                )

    def stats(self, *, connected: bool) -> IngestStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return IngestStats(
                received=self._received,
                recovered=self._recovered,
                pending=self._received + self._recovered - self._done,
                unacked=self._received - self._acked,
                accepted=self._counts["accepted"],
                readings_stored=self._counts["readings"],
                duplicates=self._counts["duplicates"],
                events_stored=self._counts["events"],
                event_duplicates=self._counts["event_duplicates"],
                status_stored=self._counts["status"],
                quarantined=dict(self._quarantined),
                lost=self._counts["lost"],
                spooled=self._counts["spooled"],
                replayed=self._counts["replayed"],
                spool_bytes=self._spool.size_bytes if self._spool is not None else 0,
                connected=connected,
                write_latency=Latency(
                    counts=tuple(self._latency[:-1]),
                    over=self._latency[-1],
                    total=sum(self._latency),
                    sum_s=self._latency_sum,
                ),
            )

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            items, closing = self._take()
            if items:
                batch = _Batch()
                for item in items:
                    batch.add(item)
                self._flush(batch)
            elif closing:
                return  # everything put before stop() is written (or held for the broker)
            if self._replay_due():
                self._replay_step()

    def _take(self) -> tuple[list[_Item], bool]:
        """Wait for a batch that is due (full, old enough, or stopping) or a replay; (batch, closing)."""
        with self._arrived:
            while True:
                now = time.monotonic()
                due = self._closing or self._inbox_size >= self._limit
                if self._inbox and (due or now >= self._inbox_since + self._interval):
                    return self._pop_batch(), self._closing
                if self._closing or self._replay_due():
                    return [], self._closing
                wait: float | None = None
                if self._inbox:
                    wait = self._inbox_since + self._interval - now
                if self._spool is not None and (self._replaying is not None or not self._spool.empty):
                    until_replay = self._replay_at - now
                    wait = until_replay if wait is None else min(wait, until_replay)
                self._arrived.wait(wait)

    def _pop_batch(self) -> list[_Item]:
        """Up to `ingest_batch_size` records' worth of verdicts from the inbox, oldest first (lock held)."""
        items: list[_Item] = []
        size = 0
        while self._inbox and size < self._limit:
            item = self._inbox.popleft()
            items.append(item)
            size += item.size
        self._inbox_size -= size
        # What stays arrived before now and is due already: the next batch goes straight away.
        return items

    def _flush(self, batch: _Batch) -> None:
        """Make the batch durable, in the store or the spool, then acknowledge it."""
        if batch.messages == 0:
            return
        if (self._down or self._replaying is not None) and self._to_spool(batch):
            return
        delay = _RETRY_DELAY_S[0]
        while True:
            try:
                counts, quarantined = self._write(batch)
            except _StoreDown:
                self._store_down()
                if self._to_spool(batch):
                    return
                if self._abandon.is_set():
                    log.error(
                        "stopping with %d message(s) unacknowledged: the broker keeps them", batch.messages
                    )
                    return
                self._abandon.wait(delay)
                delay = min(delay * 2, _RETRY_DELAY_S[1])
                continue
            self._store_up()
            self._finish(batch, counts, quarantined, acked=True)
            return

    def _to_spool(self, batch: _Batch) -> bool:
        spool = self._spool
        if spool is None:
            return False
        try:
            if not spool.append(batch.raw):
                log.warning("the spool is full (%d bytes): holding messages unacknowledged", spool.size_bytes)
                return False
        except IngestError as exc:
            log.error("%s; holding the batch unacknowledged", exc)
            return False
        self._acknowledge(batch.acks)
        with self._changed:
            self._counts["spooled"] += batch.messages
            self._acked += batch.messages
            self._changed.notify_all()
        return True

    def _replay_due(self) -> bool:
        spool = self._spool
        return (
            spool is not None
            and (self._replaying is not None or not spool.empty)
            and time.monotonic() >= self._replay_at
        )

    def _replay_step(self) -> None:
        """Write the next batch of spooled messages to the store; back off if it is still down."""
        assert self._spool is not None
        if self._replaying is None:
            segment = self._spool.oldest()
            if segment is None:
                return
            self._replaying = _Replay(segment)
        replay = self._replaying
        messages = replay.segment.messages
        batch = _Batch()
        index = replay.next
        while index < len(messages) and batch.size < self._limit:
            outcome = self._judge(messages[index])
            batch.add(_Item(outcome, messages[index], None, _records(outcome)))
            index += 1
        try:
            counts, quarantined = self._write(batch)
        except _StoreDown:
            self._store_down()
            return
        self._store_up()
        counts["replayed"] += batch.messages
        self._finish(batch, counts, quarantined, acked=False)
        replay.next = index
        if index < len(messages):
            return
        self._spool.drop(replay.segment)
        self._replaying = None
        log.info(
            "replayed a spool segment of %d message(s); %d bytes left", len(messages), self._spool.size_bytes
        )

    def _store_down(self) -> None:
        self._down = True
        self._replay_at = time.monotonic() + self._replay_delay
        self._replay_delay = min(self._replay_delay * 2, _RETRY_DELAY_S[1])

    def _store_up(self) -> None:
        if self._down:
            log.info("the store is back")
        self._down = False
        self._replay_at = 0.0
        self._replay_delay = _RETRY_DELAY_S[0]

    def _finish(
        self, batch: _Batch, counts: Counter[str], quarantined: Counter[QuarantineReason], *, acked: bool
    ) -> None:
        if acked:
            self._acknowledge(batch.acks)
        with self._changed:
            self._counts.update(counts)
            self._quarantined.update(quarantined)
            self._done += batch.messages
            if acked:
                self._acked += batch.messages
            self._changed.notify_all()

    def _write(self, batch: _Batch) -> tuple[Counter[str], Counter[QuarantineReason]]:
        """Write every kind of record once; raises _StoreDown if the store is unavailable."""
        counts: Counter[str] = Counter()
        quarantined: Counter[QuarantineReason] = Counter()
        store = self._store
        refused = False  # some record of an accepted message was refused for good
        try:
            if batch.readings:
                ok, readings = self._attempt("readings", batch.readings, store.write_readings)
                refused |= not ok
                if readings is not None:
                    counts.update(readings=readings.written, duplicates=readings.duplicates)
            if batch.events:
                ok, events = self._attempt("events", batch.events, store.write_events)
                refused |= not ok
                if events is not None:
                    counts.update(events=events.written, event_duplicates=events.duplicates)
            if batch.status:
                if not self._attempt("status reports", batch.status, store.write_status)[0]:
                    refused = True
                else:
                    counts["status"] += len(batch.status)
            if batch.quarantine:
                if not self._attempt("quarantined", batch.quarantine, store.write_quarantine)[0]:
                    counts["lost"] += len(batch.quarantine)
                else:
                    quarantined.update(record.reason for record in batch.quarantine)
        except _StoreDown:
            # What was written stays written: count it now, since the replay will find it duplicate.
            with self._lock:
                self._counts.update(counts)
            raise
        counts["lost" if refused else "accepted"] += batch.accepted
        return counts, quarantined

    def _attempt(
        self, what: str, records: Sequence[T], write: Callable[[Sequence[T]], R]
    ) -> tuple[bool, R | None]:
        """One write: (True, result), or (False, None) if refused for good; _StoreDown if unavailable."""
        began = time.monotonic()
        try:
            result = write(records)
        except StoreError as exc:
            if exc.retryable:
                log.warning("store unavailable (%s) writing %d %s", exc, len(records), what)
                raise _StoreDown from exc
            error: Exception = exc
        except Exception as exc:  # a store bug: keep the writer alive, count and log the loss
            error = exc
        else:
            self._observe(time.monotonic() - began)
            return True, result
        log.error("the store refused %d %s; they are lost: %r", len(records), what, error)
        return False, None

    def _observe(self, seconds: float) -> None:
        with self._lock:
            self._latency[bisect.bisect_left(LATENCY_BOUNDS_S, seconds)] += 1
            self._latency_sum += seconds
