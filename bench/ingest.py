"""Ingest throughput: publish to durable storage, next to a bare paho-mqtt subscriber on the same broker.

For each broker (the embedded amqtt broker with registry authentication, and a real Mosquitto) it
measures, in one run:

- `bare_subscriber`: a paho-mqtt QoS 1 subscriber that only counts messages (acknowledging each
  on receipt), speaking the MQTT version the ingest speaks to that broker — the ceiling any ingest
  on that broker can reach; on Mosquitto also `bare_subscriber_mqtt311`;
- `ingest_single`: messages with one reading each, from the first publish until the ingest has
  committed every reading to a fresh DuckDB store (acknowledging each message only then);
- `ingest_batch100`: messages with 100 readings each (firmware catching up after an outage).

The device publishes from a process of its own, as devices do, so that it does not share the
measured process's GIL. Each measurement runs `--repeat` times, interleaved; the JSON shows the
median of complete runs and every run's rate. A run is complete when every message arrived (or
every reading was stored); one that stalls for 20 s is reported incomplete, not waited for.

Prints one JSON document. Run: `.venv/bin/python -m bench.ingest [--messages N] [--batches N] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.broker import BrokerThread
from devices.broker_plugins import Role, ServiceAccount
from devices.registry import Registry
from ingest.worker import IngestWorker, MqttVersion
from midika.broker_address import BrokerAddress
from midika.settings import Settings
from midika.store.duckdb import DuckDBStore

REPO = Path(__file__).resolve().parent.parent
TRIAL, DEVICE = "onjuku-rip", "onjuku-cam-01"
TOPIC = f"midika/v1/{TRIAL}/{DEVICE}/up"
INGEST_USER = "midika-ingest"
WATCH_USER = "bench-watch"
STALL_S = 20.0
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def payloads(count: int, per_message: int) -> list[bytes]:
    """`count` readings messages with `per_message` readings each, all at distinct event times."""
    out: list[bytes] = []
    for i in range(count):
        items = [
            {
                "ts": int((T0 + timedelta(seconds=i * per_message + k)).timestamp() * 1000),
                "seq": i,
                "values": {"persons_in_water": k % 50},
            }
            for k in range(per_message)
        ]
        out.append(json.dumps(items[0] if per_message == 1 else items).encode())
    return out


def client(address: BrokerAddress, client_id: str, version: MqttVersion = "3.1.1") -> mqtt.Client:
    """A connected paho-mqtt 2.x client with its network loop running."""
    made = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5 if version == "5" else MQTTProtocolVersion.MQTTv311,
    )
    made.max_inflight_messages_set(100)
    made.max_queued_messages_set(0)
    if address.username:
        made.username_pw_set(address.username, address.password)
    connected = threading.Event()
    made.on_connect = lambda *_: connected.set()
    made.connect(address.host, address.port)
    made.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"{client_id} could not connect to {address}")
    return made


def _publish(address: BrokerAddress, messages: list[bytes], started: Connection) -> None:
    publisher = client(address, DEVICE)
    started.send(time.monotonic())
    infos = [publisher.publish(TOPIC, body, qos=1) for body in messages]
    for info in infos:
        info.wait_for_publish(60)
    publisher.disconnect()
    publisher.loop_stop()


def publish_all(address: BrokerAddress, messages: list[bytes]) -> float:
    """Publish at QoS 1 as the device, from a process of its own as a device would; returns the
    monotonic time of the first publish (CLOCK_MONOTONIC is shared by every process on Linux)."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(target=_publish, args=(address, messages, sender))
    process.start()
    try:
        if not receiver.poll(30):
            raise RuntimeError(f"the publisher did not connect to {address}")
        start: float = receiver.recv()
    finally:
        process.join(120)
    if process.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit code {process.exitcode})")
    return start


def bare_subscriber(
    broker: BrokerAddress, device: BrokerAddress, messages: list[bytes], version: MqttVersion
) -> dict[str, Any]:
    """Receive rate of a subscriber that does nothing but count (paho acknowledges on receipt)."""
    received = 0
    last = 0.0

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received, last
        received += 1
        last = time.monotonic()

    subscribed = threading.Event()
    watcher = client(broker, f"bench-bare-{secrets.token_hex(3)}", version)
    watcher.on_message = on_message
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.subscribe("midika/v1/+/+/up", qos=1)
    subscribed.wait(10)
    start = publish_all(device, messages)
    while received < len(messages) and time.monotonic() - max(last, start) < STALL_S:
        time.sleep(0.005)
    watcher.disconnect()
    watcher.loop_stop()
    complete = received == len(messages)
    seconds = last - start
    return {
        "messages": len(messages),
        "received": received,
        "complete": complete,
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(messages) / seconds) if complete else None,
    }


def through_ingest(
    broker: BrokerAddress,
    device: BrokerAddress,
    messages: list[bytes],
    per_message: int,
    settings: Settings,
    store_file: Path,
    mqtt_version: MqttVersion,
    registry: Registry,
) -> dict[str, Any]:
    """Rate from the first publish until every reading is committed to DuckDB and acknowledged."""
    store = DuckDBStore(path=store_file)
    worker = IngestWorker(
        store=store, trials=registry, broker=broker, settings=settings, mqtt_version=mqtt_version
    )
    worker.start(timeout=15)
    expected = len(messages) * per_message
    try:
        start = publish_all(device, messages)
        # Stop waiting once nothing new has been stored for a while: a broker that gives up on a
        # delivery (amqtt drops a QoS 1 message after 5 s without PUBACK) must show as incomplete.
        stored, last_progress = 0, time.monotonic()
        while stored < expected and time.monotonic() - last_progress < STALL_S:
            time.sleep(0.005)
            if worker.stats.readings_stored > stored:
                stored, last_progress = worker.stats.readings_stored, time.monotonic()
        seconds = (last_progress if stored < expected else time.monotonic()) - start
        stats = worker.stats
    finally:
        worker.stop()
        store.close()
        end_session(broker, settings.ingest_client_id, mqtt_version)
    complete = stats.readings_stored == expected
    return {
        "messages": len(messages),
        "readings": expected,
        "readings_stored": stats.readings_stored,
        "received": stats.received,
        "duplicates": stats.duplicates,
        "quarantined": sum(stats.quarantined.values()),
        "complete": complete,
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(messages) / seconds),
        "readings_per_s": round(expected / seconds),
    }


def end_session(address: BrokerAddress, client_id: str, version: MqttVersion) -> None:
    """End the ingest's persistent session, so that the broker stops queueing later runs' messages for it."""
    ender = client(address, client_id, version)  # a clean (3.1.1) or clean-start (5) session
    ender.disconnect()
    ender.loop_stop()


@contextmanager
def embedded(registry: Registry, passwords: dict[str, str]) -> Iterator[int]:
    accounts = {user: ServiceAccount(password=pw, role=Role.INGEST) for user, pw in passwords.items()}
    broker = BrokerThread(host="127.0.0.1", port=0, credentials=registry, service_accounts=accounts)
    broker.start(timeout=15)
    try:
        yield broker.port
    finally:
        broker.stop()


@contextmanager
def mosquitto(tmp: Path) -> Iterator[int]:
    from tests.servers import Mosquitto

    # The shipped deploy/mosquitto/mosquitto.conf queues up to 1,000,000 messages per session;
    # Mosquitto's default of 1,000 would drop QoS 1 messages for any subscriber that falls behind.
    with Mosquitto(tmp=tmp, max_queued_messages=1_000_000) as server:
        yield server.port


def run_broker(
    name: str,
    port: int,
    version: MqttVersion,
    *,
    registry: Registry,
    secret: str,
    passwords: dict[str, str],
    work: Path,
    single: list[bytes],
    batches: list[bytes],
    repeat: int,
) -> dict[str, Any]:
    """Every measurement `repeat` times, interleaved so that a noisy spell hits all of them alike."""
    settings = Settings.load(data_dir=work / name, trials_dir=REPO / "trials", credential_iterations=1000)
    device = BrokerAddress(host="127.0.0.1", port=port, username=DEVICE, password=secret)
    ingest = BrokerAddress(host="127.0.0.1", port=port, username=INGEST_USER, password=passwords[INGEST_USER])
    watch = BrokerAddress(host="127.0.0.1", port=port, username=WATCH_USER, password=passwords[WATCH_USER])
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(repeat):
        runs.setdefault("bare_subscriber", []).append(bare_subscriber(watch, device, single, version))
        if version != "3.1.1":
            runs.setdefault("bare_subscriber_mqtt311", []).append(
                bare_subscriber(watch, device, single, "3.1.1")
            )
        for kind, messages, per_message in (("single", single, 1), ("batch100", batches, 100)):
            run_settings = settings.model_copy(update={"ingest_client_id": f"midika-ingest-{kind}-{r}"})
            store_file = work / f"{name}-{kind}-{r}.duckdb"
            runs.setdefault(f"ingest_{kind}", []).append(
                through_ingest(
                    ingest, device, messages, per_message, run_settings, store_file, version, registry
                )
            )
    results: dict[str, Any] = {"mqtt_version": version}
    for key, measured in runs.items():
        results[key] = summary(measured)
    one = results["ingest_single"]
    one["vs_bare_subscriber"] = _ratio(one, results["bare_subscriber"])
    if "bare_subscriber_mqtt311" in results:
        one["vs_bare_subscriber_mqtt311"] = _ratio(one, results["bare_subscriber_mqtt311"])
    return results


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median rate of complete runs, every run's rate, and whether every run was complete."""
    out: dict[str, Any] = {"complete": all(run["complete"] for run in runs)}
    for rate in ("messages_per_s", "readings_per_s"):
        if rate in runs[0]:
            values = [run[rate] for run in runs]
            done = [value for value, run in zip(values, runs, strict=True) if run["complete"]]
            out[rate] = round(statistics.median(done)) if done else None
            out[f"{rate}_runs"] = values
    incomplete = [run for run in runs if not run["complete"]]
    if incomplete:
        out["incomplete_runs"] = incomplete
    return out


def _ratio(run: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    if not (run["messages_per_s"] and baseline["messages_per_s"]):
        return None
    return round(float(run["messages_per_s"]) / float(baseline["messages_per_s"]), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="single-reading messages per run")
    parser.add_argument("--batches", type=int, default=1000, help="100-reading messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are shown")
    parser.add_argument("--broker", choices=["embedded", "mosquitto", "both"], default="both")
    args = parser.parse_args(argv)
    single, batches = payloads(args.messages, 1), payloads(args.batches, 100)
    results: dict[str, Any] = {
        "messages": args.messages,
        "batches_of_100": args.batches,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory(prefix="midika-bench-") as tmp:
        work = Path(tmp)
        registry = Registry.load(
            trials_dir=REPO / "trials", state_file=work / "registry.json", iterations=1000
        )
        secret = registry.issue_secret(TRIAL, DEVICE)
        passwords = {INGEST_USER: secrets.token_urlsafe(16), WATCH_USER: secrets.token_urlsafe(16)}
        # The ingest acknowledges a message only once it is durable, a batch later, so it needs an
        # in-flight window far above Mosquitto's 20 for 3.1.1 clients: on Mosquitto it speaks MQTT 5
        # and announces its window (Receive Maximum). The like-for-like ceiling is then a bare MQTT
        # 5 subscriber; the 3.1.1 one is measured too, since paho decodes 3.1.1 packets faster.
        runs: list[tuple[str, Callable[[], Any], MqttVersion]] = []
        if args.broker in ("embedded", "both"):  # amqtt speaks 3.1.1 only
            runs.append(("embedded_amqtt", lambda: embedded(registry, passwords), "3.1.1"))
        if args.broker in ("mosquitto", "both"):
            runs.append(("mosquitto", lambda: mosquitto(work), "5"))
        for name, start, version in runs:
            with start() as port:
                # Mosquitto here runs anonymous: credentials are sent and ignored, the flow is the same.
                results[name] = run_broker(
                    name,
                    port,
                    version,
                    registry=registry,
                    secret=secret,
                    passwords=passwords,
                    work=work,
                    single=single,
                    batches=batches,
                    repeat=args.repeat,
                )
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
