"""The BatchWriter's delivery rules, on a real DuckDB store that the tests can make unavailable.

What the broker sees is the order and the timing of the acknowledgements: each must come only
once its message is durable (in the store or the spool), in arrival order, and never while the
store is down and the spool full; `put` must block at the cap on unacknowledged messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest.message import RawMessage, judge
from ingest.spool import Spool
from ingest.writer import BatchWriter
from midika.errors import StoreUnavailable
from midika.models.records import Reading
from midika.settings import Settings
from midika.store.base import WriteResult
from midika.store.duckdb import DuckDBStore
from tests.ingest.helpers import CAM, RECEIVED, SHIPPED, pinned_settings

T0 = 1784505600  # 2026-07-20T00:00:00Z, before RECEIVED


class SwitchableStore:
    """A real DuckDB store whose reading writes fail as unavailable while `down` is set."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.down = threading.Event()
        self.refused = 0  # writes refused while down
        self.written = 0  # readings committed
        self.first_seqs: list[int] = []  # the first seq of each committed write, in write order
        self.sizes: list[int] = []

    def write_readings(self, readings: Sequence[Reading]) -> WriteResult:
        if self.down.is_set():
            self.refused += 1
            raise StoreUnavailable("switched off by the test")
        result = self.store.write_readings(readings)
        self.written += result.written
        self.first_seqs.append(readings[0].seq or 0)
        self.sizes.append(len(readings))
        return result

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.store, name)  # type: ignore[no-any-return]


class CountingSpool(Spool):
    """The real spool, counting the messages it took."""

    appended = 0

    def append(self, messages: Sequence[RawMessage]) -> bool:
        taken = super().append(messages)
        if taken:
            self.appended += len(messages)
        return taken


class Acks:
    """The writer's acknowledge callback: ids in order, and any acknowledged before it was durable."""

    def __init__(self, store: SwitchableStore, spool: CountingSpool | None) -> None:
        self.store = store
        self.spool = spool
        self.ids: list[int] = []
        self.early: list[int] = []

    def __call__(self, mids: Sequence[int]) -> None:
        # Message i carries one reading, so it is durable once i messages are stored or spooled.
        durable = self.store.written + (self.spool.appended if self.spool is not None else 0)
        self.early.extend(mid for mid in mids if mid > durable)
        self.ids.extend(mids)


def message(i: int) -> RawMessage:
    """Message number i (from 1): one reading at its own second, seq i."""
    body = {"ts": T0 + i, "seq": i, "values": {"persons_in_water": i % 7}}
    return RawMessage(topic=f"{CAM}/up", payload=json.dumps(body).encode(), received=RECEIVED)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SwitchableStore]:
    real = DuckDBStore(path=tmp_path / "midika.duckdb")
    yield SwitchableStore(real)
    real.close()


def writer(
    store: SwitchableStore, settings: Settings, spool: CountingSpool | None
) -> tuple[BatchWriter, Acks]:
    acks = Acks(store, spool)
    made = BatchWriter(
        store=store,  # the real store behind a switch: a Store by its methods
        settings=settings,
        acknowledge=acks,
        judge=lambda raw: judge(raw, trials=SHIPPED, settings=settings),
        spool=spool,
    )
    made.start()
    return made, acks


def put(made: BatchWriter, numbers: range, settings: Settings) -> None:
    for i in numbers:
        raw = message(i)
        assert made.put(judge(raw, trials=SHIPPED, settings=settings), raw, i)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_acks_come_in_arrival_order_and_only_after_the_write(store: SwitchableStore) -> None:
    settings = pinned_settings(ingest_batch_size=500, ingest_flush_interval_s=0.05)
    made, acks = writer(store, settings, spool=None)
    put(made, range(1, 1201), settings)
    made.wait_idle(timeout=20)
    made.stop(timeout=5)

    assert acks.ids == list(range(1, 1201))
    assert acks.early == []
    assert store.written == 1200 and max(store.sizes) <= 500
    assert store.first_seqs == sorted(store.first_seqs)


def test_an_outage_spools_and_acks_then_replays_everything_in_order(
    store: SwitchableStore, tmp_path: Path
) -> None:
    settings = pinned_settings(ingest_batch_size=100, ingest_flush_interval_s=0.05)
    spool = CountingSpool(directory=tmp_path / "spool", max_bytes=1 << 20)
    made, acks = writer(store, settings, spool)
    store.down.set()
    put(made, range(1, 301), settings)
    wait_for(lambda: len(acks.ids) == 300, "the spooled messages' acks")
    assert store.written == 0 and spool.appended == 300  # acknowledged because spooled

    store.down.clear()
    put(made, range(301, 451), settings)  # while the spool replays: behind it, not ahead
    made.wait_idle(timeout=20)
    stats = made.stats(connected=True)
    made.stop(timeout=5)

    assert acks.ids == list(range(1, 451)) and acks.early == []
    assert store.written == 450 and store.first_seqs == sorted(store.first_seqs)
    assert stats.spooled == stats.replayed >= 300
    assert (stats.readings_stored, stats.lost, stats.pending, stats.unacked) == (450, 0, 0, 0)


@pytest.mark.parametrize("spool_bytes", [0, 64], ids=["no-spool", "full-spool"])
def test_with_nowhere_to_put_them_messages_stay_unacked_and_put_blocks_at_the_cap(
    store: SwitchableStore, tmp_path: Path, spool_bytes: int
) -> None:
    settings = pinned_settings(ingest_batch_size=1000, ingest_flush_interval_s=0.05, ingest_max_unacked=50)
    spool = CountingSpool(directory=tmp_path / "spool", max_bytes=spool_bytes) if spool_bytes else None
    made, acks = writer(store, settings, spool)
    store.down.set()
    put(made, range(1, 51), settings)
    blocked = threading.Thread(target=put, args=(made, range(51, 52), settings))
    blocked.start()
    wait_for(lambda: store.refused >= 3, "the writer to retry the store")

    assert blocked.is_alive(), "put() returned with 50 messages unacknowledged"
    assert acks.ids == [] and (spool is None or spool.appended == 0)

    store.down.clear()
    blocked.join(timeout=20)
    made.wait_idle(timeout=20)
    made.stop(timeout=5)
    assert not blocked.is_alive()
    assert acks.ids == list(range(1, 52)) and acks.early == []
    assert store.written == 51


def test_stop_writes_and_acks_what_waits_for_its_batch(store: SwitchableStore) -> None:
    settings = pinned_settings(ingest_batch_size=5000, ingest_flush_interval_s=30.0)
    made, acks = writer(store, settings, spool=None)
    put(made, range(1, 701), settings)
    made.stop(timeout=10)  # long before the 30 s flush interval

    assert acks.ids == list(range(1, 701))
    assert store.written == 700
