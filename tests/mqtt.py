"""A firmware-like MQTT client for tests: connects as a device, publishes at QoS 1, waits for PUBACKs."""

from __future__ import annotations

import threading
from types import TracebackType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode


class DeviceClient:
    """A connected paho-mqtt 2.x client; `publish` returns once the broker acknowledged."""

    def __init__(self, *, host: str, port: int, username: str, password: str | None) -> None:
        self._connected = threading.Event()
        self._refused: ReasonCode | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=username, protocol=MQTTProtocolVersion.MQTTv311
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._connected.wait(10.0):
            self.close()
            raise TimeoutError(f"no CONNACK from {host}:{port}")
        if self._refused is not None:
            self.close()
            raise ConnectionRefusedError(f"broker refused {username}: {self._refused}")

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            self._refused = reason
        self._connected.set()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10.0)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for {topic}")

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
