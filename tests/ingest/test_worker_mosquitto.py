"""The ingest worker against a real Mosquitto and a real DuckDB store (and InfluxDB where it matters)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.errors import BrokerRefused, BrokerUnreachable
from ingest.pipeline import Accepted
from ingest.worker import IngestWorker
from midika.broker_address import BrokerAddress
from midika.errors import StoreUnavailable
from midika.models.records import QuarantineReason, Reading
from midika.settings import Settings
from midika.store.base import EventQuery, QuarantineQuery, ReadingQuery, Store
from midika.store.duckdb import DuckDBStore
from tests.conftest import free_port, require_program
from tests.ingest.contract_doc import publishes
from tests.ingest.helpers import BUOY, CAM, SHIPPED, run
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers
R = QuarantineReason
T = TypeVar("T")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp=tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    store = DuckDBStore(path=tmp_path / "midika.duckdb")
    yield store
    store.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(data_dir=tmp_path / "data", ingest_flush_interval_s=0.05, ingest_batch_size=500)


def make_worker(store: Any, broker: Mosquitto | BrokerAddress, settings: Settings) -> IngestWorker:
    address = broker if isinstance(broker, BrokerAddress) else BrokerAddress.parse(broker.url)
    return IngestWorker(store=store, trials=SHIPPED, broker=address, settings=settings)


@pytest.fixture
def worker(store: DuckDBStore, mosquitto: Mosquitto, settings: Settings) -> Iterator[IngestWorker]:
    worker = make_worker(store, mosquitto, settings)
    worker.start(timeout=10)
    yield worker
    worker.stop()


class Device:
    """A paho client publishing at QoS 1 and waiting for every PUBACK, as firmware should."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.sent = 0

    def publish(self, topic: str, payload: bytes | str | Any, *, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(timeout=5)
        self.sent += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settle(worker: IngestWorker, received: int, timeout: float = 15.0) -> None:
    """Wait until the worker has received `received` messages and written them all."""
    deadline = time.monotonic() + timeout
    while worker.stats.received < received:
        assert time.monotonic() < deadline, f"received {worker.stats.received} of {received}"
        time.sleep(0.01)
    worker.wait_idle(timeout=max(0.1, deadline - time.monotonic()))


def stored_readings(store: DuckDBStore) -> set[tuple[str, str, datetime, float | None, str | None]]:
    page = store.query_readings(ReadingQuery(trial="onjuku-rip", limit=100_000))
    assert page.next_cursor is None
    return {(r.device, r.measurement, r.ts, r.value, r.text) for r in page.items}


def keys(readings: Sequence[Reading]) -> set[tuple[str, str, datetime, float | None, str | None]]:
    return {(r.device, r.measurement, r.ts, r.value, r.text) for r in readings}


def test_readings_batches_senml_and_bad_messages_end_up_where_they_belong(
    worker: IngestWorker, store: DuckDBStore, mosquitto: Mosquitto
) -> None:
    cam, buoy = Device(mosquitto, "onjuku-cam-01"), Device(mosquitto, "onjuku-buoy-01")
    messages: list[tuple[Device, str, Any]] = [
        (
            cam,
            CAM + "/up",
            {"ts": 1784505600 + 10 * i, "seq": i, "values": {"persons_in_water": i, "glare_score": 0.5}},
        )
        for i in range(60)
    ]
    messages.append(
        (
            buoy,
            BUOY + "/up",
            [{"ts": 1784505600 + 1800 * i, "values": {"hs": 1.1, "tp": 9}} for i in range(10)],
        )
    )
    messages.append(
        (
            buoy,
            BUOY + "/up",
            [
                {"bn": "onjuku-buoy-01/", "bt": 1784600000, "n": "tide", "u": "m", "v": 0.5 + i, "t": i}
                for i in range(4)
            ],
        )
    )
    messages.append(
        (cam, CAM + "/evt", {"ts": 1784505600, "type": "RIP_DETECTED", "data": {"confidence": 0.9}})
    )
    bad: list[tuple[Device, str, Any, QuarantineReason]] = [
        (cam, CAM + "/up", {"values": {"persons_on_beach": 3}}, R.UNKNOWN_MEASUREMENT),
        (cam, CAM + "/up", b'{"values": {"glare_score": NaN}}', R.NON_FINITE),
        (cam, CAM + "/up", b"persons_in_water=3", R.UNPARSEABLE),
        (cam, "midika/v1/onjuku-rip/onjuku-cam-09/up", {"values": {"glare_score": 0.1}}, R.UNKNOWN_DEVICE),
        (cam, "midika/v1/Onjuku-Rip/onjuku-cam-01/up", {"values": {"glare_score": 0.1}}, R.BAD_TOPIC),
        (buoy, BUOY + "/up", [{"n": "water_temp", "u": "K", "v": 297}], R.UNIT_MISMATCH),
    ]
    for device, topic, payload in messages:
        device.publish(topic, payload)
    for device, topic, payload, _ in bad:
        device.publish(topic, payload)
    cam.publish(CAM + "/up", messages[7][2])  # a resend after a lost PUBACK
    cam.publish(CAM + "/status", {"online": True, "battery": 12.5, "firmware": "cam-2.4.1"}, retain=True)
    settle(worker, len(messages) + len(bad) + 2)
    cam.close()
    buoy.close()

    expected = [r for _, topic, payload in messages for r in _accepted(topic, payload).readings]
    assert len(expected) == 60 * 2 + 10 * 2 + 4
    assert stored_readings(store) == keys(expected)
    quarantined = store.query_quarantine(QuarantineQuery(limit=100))
    assert Counter(q.reason for q in quarantined) == Counter(reason for *_, reason in bad)
    assert {q.topic for q in quarantined} == {topic for _, topic, _, _ in bad}
    (event,) = store.query_events(EventQuery(trial="onjuku-rip")).items
    assert (event.type, event.data) == ("RIP_DETECTED", {"confidence": 0.9})
    (state,) = [s for s in store.device_states(trial="onjuku-rip") if s.device == "onjuku-cam-01"]
    assert (state.online, state.battery, state.firmware) == (True, 12.5, "cam-2.4.1")

    stats = worker.stats
    assert stats.received == len(messages) + len(bad) + 2
    assert stats.readings_stored == len(expected)
    assert stats.duplicates == 2  # both values of the resent message
    assert (stats.events_stored, stats.status_stored, stats.pending, stats.lost) == (1, 1, 0, 0)
    assert stats.quarantined == Counter(reason for *_, reason in bad)
    assert stats.connected


def _accepted(topic: str, payload: Any) -> Accepted:
    outcome = run(topic, payload, received=datetime.now(UTC))
    assert isinstance(outcome, Accepted)
    return outcome


def test_the_contract_examples_work_with_mosquitto_pub(
    worker: IngestWorker, store: DuckDBStore, mosquitto: Mosquitto
) -> None:
    program = require_program("mosquitto_pub")
    examples = publishes()
    for example in examples:
        argv = [program, *example.argv[1:]]
        argv[argv.index("-p") + 1] = str(mosquitto.port)
        argv[argv.index("-P") + 1] = "any-secret"  # the test broker lets anyone in
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        assert done.returncode == 0, done.stderr
    settle(worker, len(examples))
    stats = worker.stats
    assert (stats.quarantined, stats.duplicates) == ({}, 0)
    expected_readings = [
        r for e in examples if e.topic.endswith("/up") for r in _accepted(e.topic, e.payload).readings
    ]
    assert stats.readings_stored == len(expected_readings)
    assert stats.events_stored == sum(e.topic.endswith("/evt") for e in examples)
    assert stats.status_stored == sum(e.topic.endswith("/status") for e in examples)


def test_the_worker_resubscribes_after_the_broker_restarts(
    store: DuckDBStore, tmp_path: Path, settings: Settings
) -> None:
    port = free_port()
    with Mosquitto(tmp=tmp_path / "first", port=port) as first:
        worker = make_worker(store, first, settings)
        worker.start(timeout=10)
        device = Device(first, "onjuku-buoy-01")
        device.publish(BUOY + "/up", {"ts": 1784505600, "values": {"hs": 1.0}})
        settle(worker, 1)
        device.close()
    # Persistence is off: the restarted broker has forgotten the ingest's subscriptions.
    with Mosquitto(tmp=tmp_path / "second", port=port) as second:
        deadline = time.monotonic() + 20
        device = Device(second, "onjuku-buoy-01")
        while worker.stats.received < 2:
            assert time.monotonic() < deadline, "the worker did not come back"
            if worker.stats.connected:
                device.publish(BUOY + "/up", {"ts": 1784507400, "values": {"hs": 2.0}})
            time.sleep(0.2)
        worker.wait_idle(timeout=5)
        device.close()
        worker.stop()
    assert {r[1:4] for r in stored_readings(store)} >= {
        ("hs", datetime(2026, 7, 20, tzinfo=UTC), 1.0),
        ("hs", datetime(2026, 7, 20, 0, 30, tzinfo=UTC), 2.0),
    }


def test_stop_writes_everything_received(store: DuckDBStore, mosquitto: Mosquitto, tmp_path: Path) -> None:
    slow = Settings.load(data_dir=tmp_path / "data", ingest_flush_interval_s=30, ingest_batch_size=100_000)
    worker = make_worker(store, mosquitto, slow)
    worker.start(timeout=10)
    device = Device(mosquitto, "onjuku-cam-02")
    for i in range(20):
        device.publish(
            "midika/v1/onjuku-rip/onjuku-cam-02/up", {"ts": 1784505600 + i, "values": {"glare_score": 0.1}}
        )
    deadline = time.monotonic() + 10
    while worker.stats.received < 20:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert worker.stats.pending == 20  # nothing written yet: the flush interval is 30 s
    worker.stop()
    device.close()
    assert len(stored_readings(store)) == 20
    assert worker.stats.pending == 0


def test_a_time_before_1970_is_quarantined_and_holds_back_no_other_devices_readings(
    real_store: Store, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # One batch for all three messages, written by stop(). InfluxDB cannot hold a time before 1677
    # and refuses a batch with one: a year-1600 reading that got through would cost the buoy's too.
    slow = Settings.load(data_dir=tmp_path / "data", ingest_flush_interval_s=30, ingest_batch_size=100_000)
    worker = make_worker(real_store, mosquitto, slow)
    worker.start(timeout=10)
    cam, buoy = Device(mosquitto, "onjuku-cam-01"), Device(mosquitto, "onjuku-buoy-01")
    cam.publish(
        CAM + "/up",
        [
            {"ts": 1784505600, "values": {"persons_in_water": 3}},
            {"ts": "1600-01-01T00:00:00Z", "values": {"persons_in_water": 4}},
        ],
    )
    cam.publish(CAM + "/status", {"ts": -1, "online": True})
    good = [{"ts": 1784505600 + 1800 * i, "values": {"hs": 1.0 + i, "tp": 9}} for i in range(3)]
    buoy.publish(BUOY + "/up", good)
    deadline = time.monotonic() + 10
    while worker.stats.received < 3:
        assert time.monotonic() < deadline, f"received {worker.stats.received} of 3"
        time.sleep(0.01)
    worker.stop()
    cam.close()
    buoy.close()

    page = real_store.query_readings(ReadingQuery(trial="onjuku-rip", limit=1000))
    assert {(r.device, r.measurement, r.ts, r.value) for r in page.items} == {
        (r.device, r.measurement, r.ts, r.value) for r in _accepted(BUOY + "/up", good).readings
    }
    fix = "is before 1970-01-01T00:00:00Z; set the device clock from NTP/GNSS, or leave ts out"
    quarantined = real_store.query_quarantine(QuarantineQuery(limit=100))
    assert sorted((q.topic, q.reason, q.detail) for q in quarantined) == [
        (CAM + "/status", R.PAST_TIMESTAMP, f"ts: -1 {fix}"),
        (CAM + "/up", R.PAST_TIMESTAMP, f"[1].ts: 1600-01-01T00:00:00Z {fix}"),
    ]
    stats = worker.stats
    assert (stats.readings_stored, stats.status_stored, stats.lost, stats.pending) == (6, 0, 0, 0)
    assert stats.quarantined == {R.PAST_TIMESTAMP: 2}


class FlakyStore:
    """A real DuckDB store that is unavailable for its first `failures` writes of readings."""

    def __init__(self, store: DuckDBStore, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.lock = threading.Lock()

    def write_readings(self, readings: Sequence[Reading]) -> Any:
        with self.lock:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("database restarting")
        return self.store.write_readings(readings)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        return getattr(self.store, name)  # type: ignore[no-any-return]


def test_an_unavailable_store_is_retried_without_loss(
    store: DuckDBStore, mosquitto: Mosquitto, settings: Settings
) -> None:
    flaky = FlakyStore(store, failures=2)
    worker = make_worker(flaky, mosquitto, settings)
    worker.start(timeout=10)
    device = Device(mosquitto, "onjuku-cam-03")
    for i in range(5):
        device.publish(
            "midika/v1/onjuku-rip/onjuku-cam-03/up", {"ts": 1784505600 + i, "values": {"rip_index": 2}}
        )
    settle(worker, 5)
    device.close()
    worker.stop()
    assert flaky.failures == 0
    assert len(stored_readings(store)) == 5
    assert (worker.stats.readings_stored, worker.stats.lost) == (5, 0)


def test_a_broker_refusing_the_login_raises_broker_refused(tmp_path: Path, settings: Settings) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    with Mosquitto(tmp=tmp_path / "mosquitto", password_file=passwords) as broker:
        worker = make_worker(
            None, BrokerAddress.parse(broker.url).with_credentials("midika-ingest", "nope"), settings
        )
        with pytest.raises(BrokerRefused, match="refused the ingest: Not authorized"):
            worker.start(timeout=10)


def test_no_broker_raises_broker_unreachable_in_time(settings: Settings) -> None:
    worker = make_worker(None, BrokerAddress(host="127.0.0.1", port=free_port()), settings)
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable, match=r"cannot connect to mqtt://127\.0\.0\.1") as caught:
        worker.start(timeout=1)
    assert caught.value.retryable
    assert time.monotonic() - started < 5
