"""The ingest's writer: verdicts in from paho's thread, batched store writes out from its own thread.

Batches close at `ingest_batch_size` records or `ingest_flush_interval_s` after their first
message. A store that is unavailable (a retryable StoreError) is retried with backoff, holding the
batch; one that refuses a write for good has the records counted as `lost` and logged, so nothing
disappears unnoticed. The queue is unbounded on purpose: dropping messages is not an option, and
backpressure comes with manual acks (the planned next step: `_Batch.messages` is where the acks of
a batch will be collected, to be sent once it is written).
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ingest.errors import IngestError
from ingest.pipeline import Accepted, Rejected
from midika.errors import StoreError
from midika.models.records import Event, QuarantineReason, QuarantineRecord, Reading, StatusReport
from midika.settings import Settings
from midika.store.base import Store

log = logging.getLogger(__name__)

_RETRY_DELAY_S: Final = (0.1, 5.0)
_STOP: Final = object()
T = TypeVar("T")
R = TypeVar("R")


# Upper bounds (seconds) of the write-latency histogram: a DuckDB batch takes milliseconds, an
# InfluxDB one over a network tens of them, a retried write seconds.
LATENCY_BOUNDS_S: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Latency:
    """A histogram of store write durations: `counts[i]` writes took at most LATENCY_BOUNDS_S[i]."""

    counts: tuple[int, ...] = (0,) * len(
        LATENCY_BOUNDS_S
    )  # not cumulative; the last bound's excess in `over`
    over: int = 0
    total: int = 0
    sum_s: float = 0.0


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Counters since start; each one that can show loss is meant to be exported as a metric."""

    received: int = 0  # messages delivered by the broker
    pending: int = 0  # received but not yet written (or given up on)
    readings_stored: int = 0
    duplicates: int = 0  # readings already stored (a redelivery or a resend)
    events_stored: int = 0
    event_duplicates: int = 0
    status_stored: int = 0
    quarantined: Mapping[QuarantineReason, int] = field(default_factory=dict)
    lost: int = 0  # records the store refused for good; each is also logged as an error
    connected: bool = False
    write_latency: Latency = field(default_factory=Latency)  # successful store writes, retries included

    @property
    def quarantined_total(self) -> int:
        """Messages kept in quarantine, all reasons together."""
        return sum(self.quarantined.values())


@dataclass(slots=True)
class _Batch:
    readings: list[Reading] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: list[StatusReport] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    messages: int = 0
    size: int = 0  # records of every kind

    def add(self, outcome: Accepted | Rejected) -> None:
        self.messages += 1
        if isinstance(outcome, Rejected):
            self.quarantine.append(outcome.quarantine)
            self.size += 1
            return
        self.readings.extend(outcome.readings)
        self.events.extend(outcome.events)
        if outcome.status is not None:
            self.status.append(outcome.status)
        self.size += len(outcome.readings) + len(outcome.events) + (outcome.status is not None)


class BatchWriter:
    """Writes verdicts to the store in batches from a thread of its own; `put` never blocks."""

    def __init__(self, *, store: Store, settings: Settings) -> None:
        self._store = store
        self._limit = settings.ingest_batch_size
        self._interval = settings.ingest_flush_interval_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._received = 0
        self._done = 0
        self._counts: Counter[str] = Counter()
        self._quarantined: Counter[QuarantineReason] = Counter()
        self._latency = [0] * (len(LATENCY_BOUNDS_S) + 1)
        self._latency_sum = 0.0
        self._abandon = threading.Event()  # set when stop() gives up on a store that keeps failing
        self._thread = threading.Thread(target=self._run, name="midika-ingest-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def put(self, outcome: Accepted | Rejected) -> None:
        """Queue one message's verdict for writing."""
        with self._lock:
            self._received += 1
        self._queue.put(outcome)

    def stop(self, timeout: float) -> None:
        """Write what is queued and end the thread; after `timeout`, stop retrying an unavailable store."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join(timeout=max(1.0, timeout))

    def wait_idle(self, timeout: float) -> None:
        """Block until everything put so far is written; raises IngestError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._done >= self._received, timeout):
                raise IngestError(
                    f"the ingest still had {self._received - self._done} message(s) to write "
                    f"after {timeout:g} s",
                    retryable=True,
                )

    def stats(self, *, connected: bool) -> IngestStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return IngestStats(
                received=self._received,
                pending=self._received - self._done,
                readings_stored=self._counts["readings"],
                duplicates=self._counts["duplicates"],
                events_stored=self._counts["events"],
                event_duplicates=self._counts["event_duplicates"],
                status_stored=self._counts["status"],
                quarantined=dict(self._quarantined),
                lost=self._counts["lost"],
                connected=connected,
                write_latency=Latency(
                    counts=tuple(self._latency[:-1]),
                    over=self._latency[-1],
                    total=sum(self._latency),
                    sum_s=self._latency_sum,
                ),
            )

    def _run(self) -> None:
        batch = _Batch()
        deadline: float | None = None
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(batch)
                return
            if item is not None:
                batch.add(item)
                if deadline is None:
                    deadline = time.monotonic() + self._interval
            if batch.size >= self._limit or (deadline is not None and time.monotonic() >= deadline):
                self._flush(batch)
                batch, deadline = _Batch(), None

    def _flush(self, batch: _Batch) -> None:
        if batch.messages == 0:
            return
        counts: Counter[str] = Counter()
        quarantined: Counter[QuarantineReason] = Counter()
        store = self._store
        if batch.readings:
            ok, result = self._write("readings", batch.readings, store.write_readings, counts)
            if ok and result is not None:
                counts.update(readings=result.written, duplicates=result.duplicates)
        if batch.events:
            ok, result = self._write("events", batch.events, store.write_events, counts)
            if ok and result is not None:
                counts.update(events=result.written, event_duplicates=result.duplicates)
        if batch.status and self._write("status reports", batch.status, store.write_status, counts)[0]:
            counts["status"] += len(batch.status)
        if batch.quarantine:
            ok, _ = self._write("quarantined", batch.quarantine, store.write_quarantine, counts)
            if ok:
                quarantined.update(record.reason for record in batch.quarantine)
        with self._changed:
            self._counts.update(counts)
            self._quarantined.update(quarantined)
            self._done += batch.messages
            self._changed.notify_all()

    def _write(
        self, what: str, records: Sequence[T], write: Callable[[Sequence[T]], R], counts: Counter[str]
    ) -> tuple[bool, R | None]:
        """Write, retrying while the store is unavailable; (False, None) and `lost` counted if it refuses."""
        delay = _RETRY_DELAY_S[0]
        began = time.monotonic()
        while True:
            try:
                result = write(records)
            except StoreError as exc:
                if exc.retryable and not self._abandon.is_set():
                    log.warning(
                        "store unavailable (%s); retrying %d %s in %.1f s", exc, len(records), what, delay
                    )
                    self._abandon.wait(delay)
                    delay = min(delay * 2, _RETRY_DELAY_S[1])
                    continue
                error: Exception = exc
            except Exception as exc:  # a store bug: keep the writer alive, count and log the loss
                error = exc
            else:
                self._observe(time.monotonic() - began)
                return True, result
            log.error("the store refused %d %s; they are lost: %r", len(records), what, error)
            counts["lost"] += len(records)
            return False, None

    def _observe(self, seconds: float) -> None:
        with self._lock:
            self._latency[bisect.bisect_left(LATENCY_BOUNDS_S, seconds)] += 1
            self._latency_sum += seconds
