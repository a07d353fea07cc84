"""The runner against real brokers: everything in the truth log arrives, refusals are clear errors."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest

from devices.credentials import hash_secret
from midika.broker_address import BrokerAddress
from midika.models.trial import Trial
from midika.timeutil import utcnow
from simulators.errors import BrokerUnavailable, DeviceRefused
from simulators.runner import RunSummary, SimulationRunner
from simulators.truth import read_readings, read_truth
from tests.conftest import free_port
from tests.simulators.brokers import Subscriber, amqtt_broker, mosquitto
from tests.simulators.conftest import AUGUST

pytestmark = pytest.mark.servers


@pytest.fixture(params=["amqtt", "mosquitto"])
def broker_port(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    broker: AbstractContextManager[int] = amqtt_broker() if request.param == "amqtt" else mosquitto(tmp_path)
    with broker as port:
        yield port


def runner(trial: Trial, port: int, tmp_path: Path, **options: object) -> SimulationRunner:
    settings: dict[str, object] = {
        "trial": trial,
        "broker": BrokerAddress(host="127.0.0.1", port=port),
        "secrets": {d.id: f"secret-of-{d.id}" for d in trial.devices},
        "seed": 1,
        "start": AUGUST,
        "speed": float("inf"),
        "truth": tmp_path / "truth.ndjson",
    }
    settings.update(options)
    return SimulationRunner(**settings)  # type: ignore[arg-type]


def test_every_message_in_the_truth_log_is_received(broker_port: int, onjuku: Trial, tmp_path: Path) -> None:
    subscriber = Subscriber(broker_port, "midika/v1/onjuku-rip/#")
    try:
        summary = runner(onjuku, broker_port, tmp_path).run(duration=timedelta(minutes=20))
        truth = list(read_truth(tmp_path / "truth.ndjson"))
        received = subscriber.wait_for(len(truth))
    finally:
        subscriber.close()
    assert not summary.interrupted and summary.unacknowledged == 0
    assert summary.published == len(truth) > 300
    assert summary.sim_time == AUGUST + timedelta(minutes=20)
    assert Counter((r.topic, r.payload) for r in received) == Counter((t.topic, t.payload) for t in truth)
    # The log's expanded readings are exactly the values inside the /up payloads.
    readings = list(read_readings(tmp_path / "truth.ndjson"))
    assert len(readings) == summary.readings
    ups = [json.loads(t.payload) for t in truth if t.kind == "up"]
    assert sum(len(u["values"]) for u in ups) == len(readings)
    first = readings[0]
    assert first.ts is not None and first.ts >= AUGUST and isinstance(first.value, int | float)
    # Each device said goodbye last, retained, so late subscribers see it offline.
    last_status = {t.device: json.loads(t.payload) for t in truth if t.kind == "status"}
    assert all(s["online"] is False for s in last_status.values()) and len(last_status) == 4


def test_retained_status_is_the_devices_last_word(onjuku: Trial, tmp_path: Path) -> None:
    with mosquitto(tmp_path) as port:
        runner(onjuku, port, tmp_path, devices=["onjuku-buoy-01"]).run(duration=timedelta(minutes=5))
        late = Subscriber(port, "midika/v1/onjuku-rip/+/status")
        try:
            retained = late.wait_for(1, timeout=5)
        finally:
            late.close()
    assert [(r.topic, r.retain) for r in retained] == [("midika/v1/onjuku-rip/onjuku-buoy-01/status", True)]
    assert json.loads(retained[0].payload)["online"] is False


def test_a_refused_device_is_a_clear_error(onjuku: Trial, tmp_path: Path) -> None:
    secrets = {d.id: f"secret-of-{d.id}" for d in onjuku.devices}
    passwords = tmp_path / "passwd"
    passwords.write_text(
        "".join(f"{device}:{hash_secret(secret, iterations=1000)}\n" for device, secret in secrets.items()),
        encoding="utf-8",
    )
    passwords.chmod(0o600)
    with mosquitto(tmp_path, password_file=passwords) as port:
        # The right secrets log in and publish.
        ok = runner(onjuku, port, tmp_path, secrets=secrets).run(duration=timedelta(minutes=1))
        assert ok.published > 0 and ok.unacknowledged == 0
        wrong = {**secrets, "onjuku-cam-02": "not-the-secret"}
        truth = tmp_path / "refused.ndjson"
        with pytest.raises(DeviceRefused, match="onjuku-cam-02") as refused:
            runner(onjuku, port, tmp_path, secrets=wrong, truth=truth).run(duration=timedelta(minutes=1))
    assert "credentials" in str(refused.value) and not refused.value.retryable
    assert not truth.exists()  # nothing was published


def test_an_unreachable_broker_is_a_retryable_error(onjuku: Trial, tmp_path: Path) -> None:
    with pytest.raises(BrokerUnavailable) as unreachable:
        runner(onjuku, free_port(), tmp_path).run(duration=timedelta(minutes=1))
    assert unreachable.value.retryable and "onjuku-cam-01" in str(unreachable.value)


def test_speed_paces_the_run(goto: Trial, tmp_path: Path) -> None:
    with amqtt_broker() as port:
        summary = runner(goto, port, tmp_path, speed=1200.0).run(duration=timedelta(minutes=30))
    assert summary.wall_seconds == pytest.approx(30 * 60 / 1200, abs=0.6)
    assert summary.published > 50 and not summary.interrupted


def test_no_message_is_sent_before_its_time(onjuku: Trial, tmp_path: Path) -> None:
    """An accelerated run that reaches the present carries on in real time."""
    start = utcnow() - timedelta(seconds=2)
    with amqtt_broker() as port:
        subscriber = Subscriber(port, "midika/v1/onjuku-rip/+/up")
        try:
            summary = runner(onjuku, port, tmp_path, start=start).run(duration=timedelta(seconds=5))
            received = subscriber.wait_for(1)
        finally:
            subscriber.close()
    assert 2.0 <= summary.wall_seconds < 8.0
    assert received
    for message in received:
        ts = json.loads(message.payload)["ts"]
        assert time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone <= message.at + 0.05


def test_stop_ends_a_live_run_cleanly(goto: Trial, tmp_path: Path) -> None:
    stop = threading.Event()
    results: list[RunSummary] = []
    progress: list[RunSummary] = []
    with amqtt_broker() as port:
        live = runner(goto, port, tmp_path, start=utcnow(), speed=1.0, progress=progress.append)
        thread = threading.Thread(target=lambda: results.append(live.run(duration=None, stop=stop)))
        thread.start()
        time.sleep(1.5)
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    (summary,) = results
    assert summary.interrupted and summary.unacknowledged == 0
    assert summary.status > len(goto.devices)  # online at start (those due already), offline at the end
    assert progress[-1] == summary and live.summary == summary
    last = {
        t.device: json.loads(t.payload) for t in read_truth(tmp_path / "truth.ndjson") if t.kind == "status"
    }
    assert {d: s["online"] for d, s in last.items()} == {d.id: False for d in goto.devices}
