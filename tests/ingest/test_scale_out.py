"""Two ingest workers in one MQTT shared-subscription group on real Mosquitto: each reading stored once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.worker import IngestWorker, subscriptions
from midika.broker_address import BrokerAddress
from midika.settings import Settings
from midika.store.base import ReadingQuery
from midika.store.duckdb import DuckDBStore
from tests.ingest.helpers import CAM, SHIPPED
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers

MESSAGES = 600
PER_MESSAGE = 5  # a batch of 5 readings per message: 3,000 readings


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp=tmp_path / "mosquitto") as broker:
        yield broker


def test_shared_topics_keep_the_plain_ones_behind_the_group() -> None:
    plain = subscriptions(None)
    shared = subscriptions("ingest")
    assert shared == tuple(f"$share/ingest/{topic}" for topic in plain)
    assert all(topic.startswith("midika/") for topic in plain)


def test_two_workers_split_the_messages_and_store_each_reading_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    store = DuckDBStore(path=tmp_path / "midika.duckdb")
    workers = [
        IngestWorker(
            store=store,
            trials=SHIPPED,
            broker=BrokerAddress.parse(mosquitto.url),
            settings=Settings.load(
                data_dir=tmp_path / "data",
                ingest_client_id=f"midika-ingest-{n}",
                ingest_share_group="midika-ingest",
                ingest_flush_interval_s=0.05,
            ),
        )
        for n in (1, 2)
    ]
    for worker in workers:
        worker.start(timeout=10)
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="onjuku-cam-01", protocol=mqtt.MQTTv311)
    device.connect(mosquitto.host, mosquitto.port)
    device.loop_start()
    try:
        sent = []
        for i in range(MESSAGES):
            batch = [
                {"ts": 1784505600 + 10 * (PER_MESSAGE * i + j), "values": {"persons_in_water": i + j}}
                for j in range(PER_MESSAGE)
            ]
            sent.append(device.publish(CAM + "/up", json.dumps(batch), qos=1))
        for info in sent:
            info.wait_for_publish(timeout=10)
        deadline = time.monotonic() + 30
        while sum(w.stats.received for w in workers) < MESSAGES:
            assert time.monotonic() < deadline, [w.stats for w in workers]
            time.sleep(0.02)
        for worker in workers:
            worker.wait_idle(timeout=15)
        stats = [w.stats for w in workers]
        # Mosquitto delivers each message of the group to one member: both took a share, none twice.
        assert all(s.received > 0 for s in stats), stats
        assert sum(s.received for s in stats) == MESSAGES
        assert sum(s.readings_stored for s in stats) == MESSAGES * PER_MESSAGE
        assert sum(s.duplicates for s in stats) == 0
        page = store.query_readings(ReadingQuery(trial="onjuku-rip", limit=100_000))
        assert len(page.items) == MESSAGES * PER_MESSAGE
        assert len({(r.device, r.measurement, r.ts) for r in page.items}) == MESSAGES * PER_MESSAGE
    finally:
        device.disconnect()
        device.loop_stop()
        for worker in workers:
            worker.stop()
        store.close()
