"""What the fault-injection tests drive: a fleet of QoS 1 devices, `python -m ingest`, a restartable influxd.

`Fleet` publishes a fixed set of distinct readings from several devices, each on a persistent
session, one message at a time, republishing a message whose PUBACK does not come (as firmware
does), so a broker or ingest outage costs the fleet nothing but duplicates. Publishers can be held
at a checkpoint until the test has injected its fault, so the fault lands mid-stream however fast or
slow the machine is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from midika.store.base import ReadingQuery, Store
from tests.conftest import REPO, free_port
from tests.influx_server import InfluxServer
from tests.ingest.helpers import SHIPPED

TRIAL: Final = "goto-tuna"
BASE_TS: Final = datetime(2026, 7, 20, tzinfo=UTC)
ACK_TIMEOUT_S: Final = 2.0  # a device republishes a message not acknowledged within this
WAIT_S: Final = 45.0  # the longest any condition is waited for; generous for a loaded 2-core machine

MARKER_TOPIC: Final = f"midika/v1/{TRIAL}/goto-no-such-device/up"
MARKER_METRIC: Final = 'midika_ingest_quarantined_total{reason="unknown_device"}'

Key = tuple[str, str, datetime]  # device, measurement, ts
ReadingSet = dict[Key, float]


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = WAIT_S) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Message:
    """One device message: its topic, JSON payload and the readings it carries."""

    device: str
    topic: str
    payload: bytes
    readings: ReadingSet


def plan(*, devices: int, messages: int) -> dict[str, list[Message]]:
    """`messages` messages per device of the goto-tuna trial, three readings each, all keys distinct."""
    trial = SHIPPED.trial(TRIAL)
    assert trial is not None
    profiles = {p.id: p for p in trial.profiles}
    chosen = [d for d in trial.devices if len(profiles[d.profile].measurements) >= 3][:devices]
    assert len(chosen) == devices, f"{TRIAL} has only {len(chosen)} devices with three measurements"
    out: dict[str, list[Message]] = {}
    for k, device in enumerate(chosen):
        measurements = profiles[device.profile].measurements[:3]
        lows = [m.range[0] if m.range is not None else 0.0 for m in measurements]
        topic = f"midika/v1/{TRIAL}/{device.id}/up"
        out[device.id] = []
        for i in range(messages):
            ts = BASE_TS + timedelta(minutes=i)
            # Multiples of 1/8 survive JSON, DuckDB and line protocol exactly; all within range.
            values = {
                m.name: low + ((7 * i + 3 * k + j) % 64) * 0.125
                for j, (m, low) in enumerate(zip(measurements, lows, strict=True))
            }
            payload = json.dumps({"ts": ts.timestamp(), "seq": i, "values": values}).encode()
            readings = {(device.id, name, ts): value for name, value in values.items()}
            out[device.id].append(Message(device.id, topic, payload, readings))
    return out


class Device:
    """A paho client on a persistent session (MQTT 3.1.1, clean session off) publishing at QoS 1."""

    def __init__(self, *, host: str, port: int, client_id: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
        self.client.reconnect_delay_set(1, 2)
        self.connected = threading.Event()
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        self.republished = 0
        self.stopping = threading.Event()

    def send(self, message: Message) -> None:
        """Publish until the broker acknowledges; a lost PUBACK means a second copy, as on real firmware."""
        while not self.stopping.is_set():
            assert self.connected.wait(WAIT_S), f"{message.device} could not reconnect"
            info = self.client.publish(message.topic, message.payload, qos=1)
            try:
                info.wait_for_publish(timeout=ACK_TIMEOUT_S)
                if info.is_published():
                    return
            except (RuntimeError, ValueError):
                pass  # disconnected meanwhile: paho resends its copy on reconnect, and so do we
            self.republished += 1

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    """Devices publishing their planned messages from threads of their own, `pace_s` apart.

    `hold(fraction)` returns an event that publishers wait on before sending their message at that
    fraction of the plan; the test sets it once its fault is injected.
    """

    def __init__(self, *, host: str, port: int, messages: Mapping[str, list[Message]], pace_s: float) -> None:
        self.host, self.port = host, port
        self.messages = messages
        self.pace_s = pace_s
        self.devices: list[Device] = []
        self._holds: dict[int, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._sent = 0
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()

    @property
    def total(self) -> int:
        """Messages in the plan."""
        return sum(len(m) for m in self.messages.values())

    @property
    def sent(self) -> int:
        """Messages acknowledged by the broker so far."""
        with self._lock:
            return self._sent

    @property
    def republished(self) -> int:
        """Publishes repeated for want of a PUBACK."""
        return sum(d.republished for d in self.devices)

    def expected(self) -> ReadingSet:
        """Every reading of the plan."""
        return {k: v for msgs in self.messages.values() for m in msgs for k, v in m.readings.items()}

    def hold(self, fraction: float) -> threading.Event:
        """An event publishers wait for before the message at `fraction` of their plan."""
        index = int(fraction * min(len(m) for m in self.messages.values()))
        return self._holds.setdefault(index, threading.Event())

    def start(self) -> None:
        """Connect every device and start publishing."""
        for device_id, messages in self.messages.items():
            device = Device(host=self.host, port=self.port, client_id=device_id)
            self.devices.append(device)
            thread = threading.Thread(target=self._publish, args=(device, messages), daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def wait_sent(self, fraction: float) -> None:
        """Block until `fraction` of the plan is acknowledged by the broker."""
        wait_until(lambda: self._check() and self.sent >= fraction * self.total, f"{fraction:.0%} sent")

    def join(self) -> None:
        """Block until every device has had every message acknowledged."""
        for thread in self._threads:
            thread.join(WAIT_S)
            assert not thread.is_alive(), f"a device is still publishing after {WAIT_S} s"
        self._check()

    def close(self) -> None:
        """Stop publishing, release every hold and disconnect the devices."""
        self._stopping.set()
        for device in self.devices:
            device.stopping.set()
        for event in self._holds.values():
            event.set()
        for thread in self._threads:
            thread.join(ACK_TIMEOUT_S + 1)
        for device in self.devices:
            device.close()

    def _check(self) -> bool:
        if self._errors:
            raise AssertionError("a device failed") from self._errors[0]
        return True

    def _publish(self, device: Device, messages: list[Message]) -> None:
        try:
            for index, message in enumerate(messages):
                if self._stopping.is_set():
                    return
                hold = self._holds.get(index)
                if hold is not None:
                    assert hold.wait(WAIT_S), f"held at message {index} for {WAIT_S} s"
                device.send(message)
                with self._lock:
                    self._sent += 1
                time.sleep(self.pace_s)
        except BaseException as exc:  # reported to the test thread by _check
            self._errors.append(exc)


class IngestProcess:
    """`python -m ingest` in a subprocess, with /metrics on a fresh port per run and a log per run."""

    def __init__(self, *, tmp: Path, env: Mapping[str, str]) -> None:
        self.tmp = tmp
        self.env = dict(env)
        self.runs = 0
        self.metrics_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        """The log of the current (or last) run."""
        return self.tmp / f"ingest-{self.runs}.log"

    def logs(self) -> str:
        """Every run's log, oldest first."""
        return "\n".join(
            (self.tmp / f"ingest-{n}.log").read_text(errors="replace") for n in range(1, self.runs + 1)
        )

    def start(self) -> None:
        """Start a run and wait until it is subscribed and serves /metrics."""
        self.runs += 1
        self.metrics_port = free_port()
        env = {**os.environ, **self.env, "MIDIKA_METRICS_PORT": str(self.metrics_port)}
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ingest"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._serving, f"ingest run {self.runs} to subscribe and serve /metrics")

    def kill(self) -> None:
        """SIGKILL: no drain, no acknowledgement of what was in flight."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=WAIT_S)

    def terminate(self) -> int:
        """SIGTERM, the clean stop; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=WAIT_S)

    def stop(self) -> None:
        """Kill the run if it is still alive (cleanup)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics, labelled ones as name{label="value",...}."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def metric(self, name: str) -> float:
        """One unlabelled sample of /metrics."""
        return self.metrics()[name]

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"python -m ingest exited with {self.process.returncode}:\n{self.logs()}")
        if "ingesting from" not in self.log_file.read_text(errors="replace"):
            return False
        try:
            self.metrics()
        except httpx.TransportError:
            return False
        return True


class RestartableInflux(InfluxServer):
    """An influxd that `restart`s on the ports of its first start, as a production server does."""

    def restart(self) -> None:
        """Start influxd again from the config (and data) of the first start; it must be stopped."""
        assert not self.running and self.http_port, "start and stop it first"
        with (self.root / "influxd.log").open("ab") as log:
            self._process = subprocess.Popen(
                [self.program, "-config", str(self.root / "influxdb.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not self._wait_ready():
            self.stop()
            raise RuntimeError(f"influxd did not restart on port {self.http_port}:\n{self._log_tail()}")


def publish_marker(*, host: str, port: int) -> None:
    """Publish, after everything else, one message the ingest quarantines (an unknown device).

    Mosquitto queues a subscriber's messages in arrival order, and the ingest writes its batches in
    order, so once `midika_ingest_quarantined_total{reason="unknown_device"}` counts this message,
    everything published before it has been handled: a completion signal that needs no store access
    (DuckDB admits one process at a time) and no guess at how long to wait.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fault-test-marker", protocol=mqtt.MQTTv311)
    client.connect(host, port)
    client.loop_start()
    try:
        payload = json.dumps({"ts": BASE_TS.timestamp(), "values": {"water_temperature": 20.0}})
        client.publish(MARKER_TOPIC, payload, qos=1).wait_for_publish(timeout=WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def stored(store: Store) -> Iterator[tuple[Key, float | None]]:
    """Every reading of the trial in the store, page by page, duplicates included."""
    cursor: str | None = None
    while True:
        page = store.query_readings(ReadingQuery(trial=TRIAL, limit=10_000, cursor=cursor))
        for r in page.items:
            yield (r.device, r.measurement, r.ts), r.value
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def assert_exactly(rows: Iterable[tuple[Key, float | None]], expected: ReadingSet) -> None:
    """The stored readings are the expected ones, each stored once, with its value."""
    rows = list(rows)
    twice = {key for key, n in Counter(key for key, _ in rows).items() if n > 1}
    assert not twice, f"{len(twice)} reading(s) stored more than once, e.g. {sorted(twice)[:3]}"
    got = dict(rows)
    missing = expected.keys() - got.keys()
    extra = got.keys() - expected.keys()
    assert not missing, f"{len(missing)} of {len(expected)} readings lost, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} readings stored that were never published, e.g. {sorted(extra)[:3]}"
    wrong = {k for k in expected if got[k] != expected[k]}
    assert not wrong, f"{len(wrong)} readings stored with another value, e.g. {sorted(wrong)[:3]}"
