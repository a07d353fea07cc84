"""Issue #4, ingest that loses nothing: real processes, real faults, every reading stored exactly once.

Each test runs Mosquitto, `python -m ingest` and a fleet of QoS 1 devices publishing a known set of
distinct readings, injects a fault while they publish (the ingest SIGKILLed, Mosquitto restarted,
influxd stopped), and then compares what the store holds with what was published: the same keys,
the same values, none twice. Completion is observed, never waited out: see `publish_marker`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from threading import Event

import pytest

from midika.store.duckdb import DuckDBStore
from midika.store.influx import InfluxStore
from tests.conftest import REPO, require_program
from tests.influx_v2_shim import V2WriteShim
from tests.ingest.faults import (
    MARKER_METRIC,
    Fleet,
    IngestProcess,
    Key,
    RestartableInflux,
    assert_exactly,
    plan,
    publish_marker,
    stored,
    wait_until,
)
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers

DEVICES = 10
MESSAGES = 100  # per device, three readings each: 3000 readings
PACE_S = 0.02  # between one device's messages: up to 500 messages a second from the fleet
QUEUE = 100_000  # Mosquitto's default of 1000 would drop what queues up for an ingest that is away
# With at most 50 messages unacknowledged and a batch every half second, the ingest takes at most
# 100 messages a second, slower than the fleet publishes: Mosquitto holds a backlog for it, and at
# any moment the ingest holds messages it has not acknowledged, so every fault catches both.
MAX_UNACKED = 50


def ingest_env(tmp_path: Path, broker: Mosquitto, **settings: str) -> dict[str, str]:
    """The environment of `python -m ingest`: DuckDB in tmp_path, throttled as MAX_UNACKED says."""
    return {
        "MIDIKA_BROKER_URL": broker.url,
        "MIDIKA_DATA_DIR": str(tmp_path / "data"),
        "MIDIKA_TRIALS_DIR": str(REPO / "trials"),
        "MIDIKA_STORE": "duckdb",
        "MIDIKA_INGEST_FLUSH_INTERVAL_S": "0.5",
        "MIDIKA_INGEST_MAX_UNACKED": str(MAX_UNACKED),
        **settings,
    }


@pytest.fixture
def cleanup() -> Iterator[ExitStack]:
    """Stops what a test started, last started first, however the test ends."""
    with ExitStack() as stack:
        yield stack


def start_ingest(cleanup: ExitStack, tmp_path: Path, env: dict[str, str]) -> IngestProcess:
    ingest = IngestProcess(tmp=tmp_path, env=env)
    cleanup.callback(ingest.stop)
    ingest.start()
    return ingest


def start_fleet(cleanup: ExitStack, broker: Mosquitto, *holds: float) -> tuple[Fleet, list[Event]]:
    """The devices publishing, with holds at the given fractions of their plan (see `Fleet.hold`)."""
    plan_ = plan(devices=DEVICES, messages=MESSAGES)
    fleet = Fleet(host=broker.host, port=broker.port, messages=plan_, pace_s=PACE_S)
    cleanup.callback(fleet.close)
    events = [fleet.hold(fraction) for fraction in holds]
    fleet.start()
    return fleet, events


def finish(ingest: IngestProcess, fleet: Fleet, broker: Mosquitto) -> dict[str, float]:
    """Let the fleet finish, wait until the ingest handled it all, stop it cleanly; its last metrics."""
    fleet.join()
    publish_marker(host=broker.host, port=broker.port)
    wait_until(lambda: ingest.metric(MARKER_METRIC) >= 1, "the ingest to handle the last message")
    wait_until(lambda: ingest.metric("midika_ingest_pending") == 0, "the ingest to write everything")
    metrics = ingest.metrics()
    assert ingest.terminate() == 0, ingest.logs()
    assert metrics[MARKER_METRIC] == 1
    assert metrics["midika_ingest_lost_total"] == 0
    return metrics


def read_duckdb(path: Path) -> list[tuple[Key, float | None]]:
    """Every reading in the DuckDB file the ingest wrote (read once it has stopped)."""
    store = DuckDBStore(path=path)
    try:
        return list(stored(store))
    finally:
        store.close()


def ingest_sessions(log: str) -> list[str]:
    """Mosquitto's log cut at each connection of the ingest: what it was sent in each session."""
    return re.split(r"New client connected from \S+ as midika-ingest ", log)[1:]


def redelivered(session: str) -> int:
    """PUBLISHes Mosquitto sent the ingest with the DUP flag: unacknowledged ones, sent again."""
    return session.count("Sending PUBLISH to midika-ingest (d1,")


def test_sigkilled_ingest_twice_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, cleanup: ExitStack
) -> None:
    broker = cleanup.enter_context(Mosquitto(tmp=tmp_path / "mosquitto", max_queued_messages=QUEUE))
    ingest = start_ingest(cleanup, tmp_path, ingest_env(tmp_path, broker))
    fleet, holds = start_fleet(cleanup, broker, 0.45, 0.8)
    for fraction, hold in zip((0.25, 0.6), holds, strict=True):
        fleet.wait_sent(fraction)
        wait_until(lambda: ingest.metric("midika_ingest_unacked") > 0, "messages awaiting their ack")
        ingest.kill()
        ingest.start()
        hold.set()  # the fleet may publish on only once the fault is in
    metrics = finish(ingest, fleet, broker)

    assert_exactly(read_duckdb(tmp_path / "data" / "midika.duckdb"), fleet.expected())
    # The mechanism: each restarted ingest resumed its session, and Mosquitto sent it again what the
    # killed one had received but not acknowledged.
    sessions = ingest_sessions(broker.logs())
    assert len(sessions) == 3, broker.logs()[-3000:]
    assert all(redelivered(s) > 0 for s in sessions[1:]), [redelivered(s) for s in sessions]
    assert metrics["midika_ingest_recovered_total"] == 0  # the store never failed: nothing was spooled


def test_mosquitto_restart_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, cleanup: ExitStack
) -> None:
    broker = cleanup.enter_context(
        Mosquitto(tmp=tmp_path / "mosquitto", persistence=True, max_queued_messages=QUEUE)
    )
    ingest = start_ingest(cleanup, tmp_path, ingest_env(tmp_path, broker))
    fleet, (hold,) = start_fleet(cleanup, broker, 0.7)
    fleet.wait_sent(0.3)
    wait_until(
        lambda: fleet.sent - ingest.metric("midika_ingest_messages_received_total") > MAX_UNACKED,
        "a backlog at the broker",
    )
    wait_until(lambda: ingest.metric("midika_ingest_unacked") > 0, "messages awaiting their ack")
    backlog = fleet.sent - ingest.metric("midika_ingest_messages_received_total")
    broker.restart()
    hold.set()
    metrics = finish(ingest, fleet, broker)

    assert_exactly(read_duckdb(tmp_path / "data" / "midika.duckdb"), fleet.expected())
    # The mechanism: one ingest process throughout, which lost the broker and resumed its session
    # from Mosquitto's persistence file: its backlog, and its unacknowledged messages sent again.
    assert backlog > MAX_UNACKED
    assert ingest.runs == 1
    assert "lost the broker" in ingest.logs()
    assert (broker.persistence_dir / "mosquitto.db").exists()
    sessions = ingest_sessions(broker.logs())
    assert len(sessions) == 2, broker.logs()[-3000:]
    assert redelivered(sessions[1]) > 0
    assert metrics["midika_ingest_messages_received_total"] >= fleet.total


def test_influxd_outage_mid_stream_spools_then_replays_everything_once(
    tmp_path: Path, cleanup: ExitStack
) -> None:
    influx = RestartableInflux(program=require_program("influxd"), root=tmp_path / "influxd")
    cleanup.enter_context(influx)
    shim = cleanup.enter_context(V2WriteShim(upstream_url=influx.url))
    database = f"t_{uuid.uuid4().hex[:12]}"
    influx.create_database(database)
    broker = cleanup.enter_context(Mosquitto(tmp=tmp_path / "mosquitto", max_queued_messages=QUEUE))
    env = ingest_env(
        tmp_path,
        broker,
        MIDIKA_STORE="influxdb",
        MIDIKA_INFLUX_URL=shim.url,
        MIDIKA_INFLUX_DATABASE=database,
        MIDIKA_INGEST_SPOOL_DIR=str(tmp_path / "spool"),
    )
    ingest = start_ingest(cleanup, tmp_path, env)
    fleet, (outage, back) = start_fleet(cleanup, broker, 0.3, 0.6)
    fleet.wait_sent(0.2)
    wait_until(lambda: ingest.metric("midika_ingest_readings_stored_total") > 0, "readings stored")
    influx.stop()
    down = time.monotonic()
    outage.set()  # the fleet publishes on into the outage
    # Several seconds down: the writer backs off, and the spool takes a good share of the stream.
    wait_until(
        lambda: ingest.metric("midika_ingest_spooled_total") > 0 and time.monotonic() - down > 4,
        "the ingest to spool",
    )
    influx.restart()
    back.set()
    metrics = finish(ingest, fleet, broker)

    store = InfluxStore(url=influx.url, database=database)
    try:
        assert_exactly(stored(store), fleet.expected())
    finally:
        store.close()
    assert metrics["midika_ingest_spooled_total"] > 0
    assert metrics["midika_ingest_replayed_total"] == metrics["midika_ingest_spooled_total"]
    assert metrics["midika_ingest_spool_bytes"] == 0
    assert not list((tmp_path / "spool").glob("*.spool"))
    assert "the store is back" in ingest.logs()
