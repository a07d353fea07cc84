"""Ingest throughput: publish to durable storage, next to a bare paho-mqtt subscriber on the same broker.

For each broker (the embedded amqtt broker with registry authentication, and a real Mosquitto) it
measures, in one run:

- `bare_subscriber`: a paho-mqtt QoS 1 subscriber that only counts messages — the ceiling any
  ingest on that broker can reach;
- `ingest_single`: messages with one reading each, from the first publish until the ingest has
  committed every reading to a fresh DuckDB store;
- `ingest_batch100`: messages with 100 readings each (firmware catching up after an outage).

Prints one JSON document. Run: `.venv/bin/python -m bench.ingest [--messages N] [--batches N]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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


def client(address: BrokerAddress, client_id: str) -> mqtt.Client:
    """A connected paho-mqtt 2.x client with its network loop running."""
    made = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv311
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


def publish_all(address: BrokerAddress, messages: list[bytes]) -> float:
    """Publish at QoS 1 as the device; returns the monotonic time of the first publish."""
    publisher = client(address, DEVICE)
    start = time.monotonic()
    infos = [publisher.publish(TOPIC, body, qos=1) for body in messages]
    for info in infos:
        info.wait_for_publish(60)
    publisher.disconnect()
    publisher.loop_stop()
    return start


def bare_subscriber(broker: BrokerAddress, device: BrokerAddress, messages: list[bytes]) -> dict[str, Any]:
    """Receive rate of a subscriber that does nothing but count."""
    received = 0
    done = threading.Event()
    last = 0.0

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received, last
        received += 1
        if received == len(messages):
            last = time.monotonic()
            done.set()

    subscribed = threading.Event()
    watcher = client(broker, f"bench-bare-{secrets.token_hex(3)}")
    watcher.on_message = on_message
    watcher.on_subscribe = lambda *_: subscribed.set()
    watcher.subscribe("midika/v1/+/+/up", qos=1)
    subscribed.wait(10)
    start = publish_all(device, messages)
    finished = done.wait(300)
    watcher.disconnect()
    watcher.loop_stop()
    seconds = last - start
    return {
        "messages": len(messages),
        "received": received,
        "complete": finished,
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(messages) / seconds) if finished else None,
    }


def through_ingest(
    broker: BrokerAddress,
    device: BrokerAddress,
    messages: list[bytes],
    per_message: int,
    settings: Settings,
    store_file: Path,
    mqtt_version: MqttVersion,
) -> dict[str, Any]:
    """Rate from the first publish until every reading is committed to DuckDB and acknowledged."""
    store = DuckDBStore(path=store_file)
    registry = Registry.load(
        trials_dir=settings.trials_dir, state_file=settings.registry_file, iterations=1000
    )
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
    complete = stats.readings_stored == expected
    return {
        "messages": len(messages),
        "readings": expected,
        "readings_stored": stats.readings_stored,
        "quarantined": sum(stats.quarantined.values()),
        "complete": complete,
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(messages) / seconds),
        "readings_per_s": round(expected / seconds),
    }


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

    with Mosquitto(tmp=tmp) as server:
        yield server.port


def run_broker(
    name: str,
    port: int,
    *,
    secret: str,
    passwords: dict[str, str],
    work: Path,
    single: list[bytes],
    batches: list[bytes],
) -> dict[str, Any]:
    settings = Settings.load(data_dir=work / name, trials_dir=REPO / "trials", credential_iterations=1000)
    device = BrokerAddress(host="127.0.0.1", port=port, username=DEVICE, password=secret)
    ingest = BrokerAddress(host="127.0.0.1", port=port, username=INGEST_USER, password=passwords[INGEST_USER])
    watch = BrokerAddress(host="127.0.0.1", port=port, username=WATCH_USER, password=passwords[WATCH_USER])
    bare = bare_subscriber(watch, device, single)
    version: MqttVersion = "3.1.1" if name.startswith("embedded") else "5"  # amqtt speaks 3.1.1 only
    one = through_ingest(ingest, device, single, 1, settings, work / f"{name}-single.duckdb", version)
    settings = settings.model_copy(update={"ingest_client_id": "midika-ingest-batch"})
    hundred = through_ingest(ingest, device, batches, 100, settings, work / f"{name}-batch.duckdb", version)
    one["vs_bare_subscriber"] = (
        round(one["messages_per_s"] / bare["messages_per_s"], 3) if bare["messages_per_s"] else None
    )
    return {"bare_subscriber": bare, "ingest_single": one, "ingest_batch100": hundred}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000, help="single-reading messages per run")
    parser.add_argument("--batches", type=int, default=300, help="100-reading messages per run")
    parser.add_argument("--broker", choices=["embedded", "mosquitto", "both"], default="both")
    args = parser.parse_args(argv)
    single, batches = payloads(args.messages, 1), payloads(args.batches, 100)
    results: dict[str, Any] = {"messages": args.messages, "batches_of_100": args.batches}
    with tempfile.TemporaryDirectory(prefix="midika-bench-") as tmp:
        work = Path(tmp)
        registry = Registry.load(
            trials_dir=REPO / "trials", state_file=work / "registry.json", iterations=1000
        )
        secret = registry.issue_secret(TRIAL, DEVICE)
        passwords = {INGEST_USER: secrets.token_urlsafe(16), WATCH_USER: secrets.token_urlsafe(16)}
        runs: list[tuple[str, Callable[[], Any]]] = []
        if args.broker in ("embedded", "both"):
            runs.append(("embedded_amqtt", lambda: embedded(registry, passwords)))
        if args.broker in ("mosquitto", "both"):
            runs.append(("mosquitto", lambda: mosquitto(work)))
        for name, start in runs:
            with start() as port:
                # Mosquitto here runs anonymous: credentials are sent and ignored, the flow is the same.
                results[name] = run_broker(
                    name, port, secret=secret, passwords=passwords, work=work, single=single, batches=batches
                )
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
