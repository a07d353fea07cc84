"""Real brokers for the runner tests: amqtt in-process, Mosquitto as a subprocess, and a subscriber."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_port, require_program


def _wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@contextmanager
def amqtt_broker() -> Iterator[int]:
    """An amqtt 0.12 broker allowing anonymous logins, on its own thread and loop; yields the port."""
    from amqtt.broker import Broker

    port = free_port()
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()

    async def serve() -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await stopping.wait()
        await broker.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    if failure:
        raise failure[0]
    _wait_for_port(port)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)


@contextmanager
def mosquitto(
    tmp: Path, *, password_file: Path | None = None, max_queued_messages: int | None = None
) -> Iterator[int]:
    """A Mosquitto on a free port; anonymous unless a password file is given. Yields the port.

    Mosquitto queues at most 1,000 messages (`max_queued_messages`, 0: no limit) for a subscriber
    that falls behind, and discards the rest.
    """
    program = require_program("mosquitto")
    port = free_port()
    lines = [f"listener {port} 127.0.0.1", "persistence false"]
    if max_queued_messages is not None:
        lines.append(f"max_queued_messages {max_queued_messages}")
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to user mosquitto, who cannot read files under tmp
    if password_file is None:
        lines.append("allow_anonymous true")
    else:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    config = tmp / f"mosquitto-{port}.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = (tmp / f"mosquitto-{port}.log").open("w")
    process = subprocess.Popen([program, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.time() on arrival


class Subscriber:
    """Collects every message under a topic filter, subscribed at QoS 1 before anything is sent."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{id(self)}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_connect = lambda client, *args: client.subscribe(topic_filter, qos=1)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("no SUBACK")

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), time.time())
            )

    def wait_for(self, count: int, *, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.05)
        time.sleep(0.2)  # let any surplus (duplicates) arrive too
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
