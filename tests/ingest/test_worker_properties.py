"""Hypothesis against the running worker on real Mosquitto: every message accounted for, no crash."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from ingest.pipeline import Rejected, process
from ingest.worker import IngestWorker
from midika.broker_address import BrokerAddress
from midika.settings import Settings
from midika.store.base import QuarantineQuery
from midika.store.duckdb import DuckDBStore
from tests.ingest import strategies
from tests.ingest.helpers import SHIPPED
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers

# Topic levels a publisher may use, known names among them: no wildcards or separator, and none of
# the control characters and non-characters Mosquitto disconnects a client for (MQTT 3.1.1 §1.5.3).
_level = st.text(
    st.characters(exclude_characters="/+#\ufffe\uffff", exclude_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=20,
)
_topics = st.builds(
    "midika/v1/{}/{}/{}".format,
    st.one_of(st.sampled_from(["onjuku-rip", "goto-tuna"]), _level),
    st.one_of(st.sampled_from(["onjuku-cam-01", "onjuku-buoy-01", "goto-feeder-01"]), _level),
    st.sampled_from(["up", "evt", "status"]),  # what the ingest subscribes to
)
_messages = st.lists(st.tuples(_topics, strategies.payloads), min_size=1, max_size=6)


class Harness:
    """One Mosquitto, one DuckDB store, one worker and one publisher for every example."""

    def __init__(self, tmp: Path) -> None:
        self.broker = Mosquitto(tmp=tmp / "mosquitto").start()
        self.store = DuckDBStore(path=tmp / "midika.duckdb")
        self.settings = Settings.load(data_dir=tmp / "data", ingest_flush_interval_s=0.02)
        self.worker = IngestWorker(
            store=self.store,
            trials=SHIPPED,
            broker=BrokerAddress.parse(self.broker.url),
            settings=self.settings,
        )
        self.worker.start(timeout=10)
        self.device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzzer", protocol=mqtt.MQTTv311)
        self.device.connect(self.broker.host, self.broker.port)
        self.device.loop_start()
        deadline = time.monotonic() + 10
        while not self.device.is_connected():
            assert time.monotonic() < deadline, "the publisher did not connect"
            time.sleep(0.01)

    def close(self) -> None:
        self.device.disconnect()
        self.device.loop_stop()
        self.worker.stop()
        self.store.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("fuzz"))
    yield harness
    harness.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=_messages)
def test_every_message_is_stored_or_quarantined_with_its_reason(
    harness: Harness, messages: list[tuple[str, bytes]]
) -> None:
    worker = harness.worker
    before = worker.stats
    now = datetime.now(UTC)
    expected = Counter(
        outcome.reason if isinstance(outcome, Rejected) else "accepted"
        for outcome in (
            process(topic, payload, received=now, trials=SHIPPED, settings=harness.settings)
            for topic, payload in messages
        )
    )
    for topic, payload in messages:
        harness.device.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    deadline = time.monotonic() + 15
    while worker.stats.received < before.received + len(messages):
        assert time.monotonic() < deadline, f"{worker.stats} after publishing {len(messages)}"
        time.sleep(0.005)
    worker.wait_idle(timeout=15)
    after = worker.stats
    assert after.received - before.received == len(messages)
    got = Counter({"accepted": after.accepted - before.accepted})
    got.update({reason: n - before.quarantined.get(reason, 0) for reason, n in after.quarantined.items()})
    assert +got == expected
    assert (after.lost, after.pending, after.unacked) == (0, 0, 0)
    assert after.connected


def test_quarantine_holds_what_the_fuzzing_rejected(harness: Harness) -> None:
    stats = harness.worker.stats
    assert stats.received > 0  # runs after the property test in this module
    kept = harness.store.query_quarantine(QuarantineQuery(limit=10_000))
    assert Counter(record.reason for record in kept) == Counter(stats.quarantined)
