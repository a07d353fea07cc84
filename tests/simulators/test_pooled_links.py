"""The runner's pooled links (many connections, one network thread) against real brokers.

A device's outage through the embedded stack: its connection is cut, the broker publishes its last
will (offline), it reconnects and says it is online, and what it buffered arrives late; the store
then holds exactly the ground truth. More devices than a thread per device could serve run
against Mosquitto. A connection lost to a broker restart comes back by itself.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.simulate import fleet
from midika.broker_address import BrokerAddress
from midika.platform import Platform
from midika.timeutil import utcnow
from simulators.faults import Fault, FaultKind
from simulators.link import LinkSpec
from simulators.messages import OFFLINE_WILL, SimMessage
from simulators.pool import LinkPool
from simulators.runner import RunSummary, SimulationRunner
from simulators.truth import read_truth
from tests.conftest import free_port
from tests.servers import Mosquitto
from tests.simulators.brokers import Subscriber, mosquitto
from tests.simulators.conftest import AUGUST
from tests.simulators.stack import assert_same_events, device_status, events_when_complete, truth_events
from tests.test_end_to_end import _assert_same, _served_when_complete, _truth

pytestmark = pytest.mark.servers

CAM = "onjuku-cam-01"


class StatusWatcher:
    """The status topics of a trial as the ingest sees them (its account may read everything)."""

    def __init__(self, platform: Platform, trial: str) -> None:
        address = platform.broker_address
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-status-{id(self)}")
        client.username_pw_set(address.username, address.password)
        client.on_connect = lambda c, *a: c.subscribe(f"midika/v1/{trial}/+/status", qos=1)
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_message = self._on_message
        client.connect(address.host, address.port)
        client.loop_start()
        self._client = client
        assert subscribed.wait(10), "no SUBACK"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((message.topic.split("/")[3], bytes(message.payload)))

    def of(self, device: str) -> list[bytes]:
        with self._lock:
            return [payload for who, payload in self.seen if who == device]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_for(condition: Any, what: str, *, timeout: float = 60.0) -> None:
    """Poll `condition` until true; a generous deadline only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def test_an_outage_goes_offline_by_the_will_comes_back_online_and_loses_nothing(
    platform: Platform, tmp_path: Path
) -> None:
    trial = platform.registry.trial("onjuku-rip")
    assert trial is not None
    devices = [CAM, "onjuku-cam-02"]
    truth_file = tmp_path / "truth.ndjson"
    # Live, so the device's "online" after the outage is stamped later than the broker's will
    # (which carries no time: the ingest stamps it on arrival), as with real firmware.
    outage = Fault(kind=FaultKind.OUTAGE, devices=(CAM,), at_s=6, for_s=12, batch=1)
    runner = SimulationRunner(
        trial=trial,
        broker=platform.broker_address.with_credentials("unused", None),
        secrets={d: platform.registry.issue_secret(trial.id, d) for d in devices},
        seed=5,
        start=utcnow(),
        speed=1.0,
        truth=truth_file,
        devices=devices,
        faults=[outage],
    )
    watcher = StatusWatcher(platform, trial.id)
    results: list[RunSummary] = []
    thread = threading.Thread(target=lambda: results.append(runner.run(duration=timedelta(seconds=26))))
    try:
        thread.start()
        wait_for(lambda: OFFLINE_WILL in watcher.of(CAM), "the broker publish the last will")
        wait_for(lambda: device_status(platform, trial.id).get(CAM) == "offline", "the will stored")
        assert device_status(platform, trial.id)["onjuku-cam-02"] == "online"
        wait_for(lambda: device_status(platform, trial.id).get(CAM) == "online", "the device back online")
    finally:
        thread.join(60)
        watcher.close()
    (summary,) = results
    assert summary.unacknowledged == 0 and not summary.interrupted

    # The broker's view: online, the will (the device never sent those bytes), online again, goodbye.
    said = [json.loads(p).get("online") for p in watcher.of(CAM)]
    will_at = watcher.of(CAM).index(OFFLINE_WILL)
    assert said[0] is True and True in said[will_at + 1 :] and said[-1] is False
    truth = list(read_truth(truth_file))
    assert not any(t.payload == OFFLINE_WILL for t in truth)
    assert [json.loads(t.payload)["action"] for t in truth if t.kind == "ctl"] == ["drop"]
    late = [t for t in truth if t.device == CAM and t.kind == "up" and t.payload.startswith(b"[")]
    assert late, "nothing measured during the outage came late"

    expected = _truth(truth_file)
    assert any(key[0] == CAM for key in expected)
    _assert_same(expected, _served_when_complete(platform, trial.id, len(expected)))
    events = truth_events(truth_file)
    assert_same_events(events, events_when_complete(platform, trial.id, len(events)))


def test_more_devices_than_a_thread_each_could_serve(tmp_path: Path) -> None:
    trial = fleet(400)  # a paho thread per device stopped at about 340 (select() and 1,024 descriptors)
    truth_file = tmp_path / "truth.ndjson"
    # The subscriber falls behind 400 devices publishing at once: Mosquitto must queue it all.
    with mosquitto(tmp_path, max_queued_messages=0) as port:
        subscriber = Subscriber(port, f"midika/v1/{trial.id}/#")
        try:
            runner = SimulationRunner(
                trial=trial,
                broker=BrokerAddress(host="127.0.0.1", port=port),
                secrets={d.id: f"secret-of-{d.id}" for d in trial.devices},
                seed=1,
                start=AUGUST,
                speed=math.inf,
                truth=truth_file,
            )
            summary = runner.run(duration=timedelta(seconds=30))
            truth = list(read_truth(truth_file))
            received = subscriber.wait_for(len(truth), timeout=60)
        finally:
            subscriber.close()
    assert summary.devices == 400 and summary.unacknowledged == 0 and not summary.interrupted
    assert {t.device for t in truth if t.kind == "up"} == {d.id for d in trial.devices}
    assert summary.published == len(truth) >= 400 * 4  # online, three readings, goodbye
    assert Counter((r.topic, r.payload) for r in received) == Counter((t.topic, t.payload) for t in truth)


def test_a_connection_lost_to_a_broker_restart_comes_back(tmp_path: Path) -> None:
    port = free_port()
    pool = LinkPool()
    spec = LinkSpec(
        broker=BrokerAddress(host="127.0.0.1", port=port),
        client_id="restart-01",
        username="restart-01",
        password=None,
        will_topic="midika/v1/restart/restart-01/status",
        will_payload=OFFLINE_WILL,
    )
    message = SimMessage(
        "restart-01", "up", "midika/v1/restart/restart-01/up", b'{"values":{"x":1}}', 1, False, AUGUST
    )
    try:
        with Mosquitto(tmp=tmp_path / "first", port=port):
            link = pool.connect(spec)
            link.publish(message)
            wait_for(lambda: link.unacknowledged() == 0, "the first PUBACK")
        with Mosquitto(tmp=tmp_path / "second", port=port) as second:
            subscriber = Subscriber(second.port, "midika/v1/restart/#")
            try:
                link.publish(message)  # queued while the link is down, sent once it is back
                wait_for(lambda: link.unacknowledged() == 0, "the PUBACK after the restart")
                received = subscriber.wait_for(1)
            finally:
                subscriber.close()
            assert link.close(timeout=10.0) == 0
    finally:
        pool.close()
    assert not link.dropped
    assert [(r.topic, r.payload) for r in received] == [(message.topic, message.payload)]
