"""A simulated device's MQTT connection: paho-mqtt 2.x, MQTT 3.1.1, QoS 1, a retained last will.

The runner talks to `DeviceLink`, not to paho, so the connection is one narrow seam: tests and a
later asyncio implementation can provide their own factory.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from midika.broker_address import BrokerAddress
from simulators.errors import BrokerUnavailable, DeviceRefused
from simulators.messages import SimMessage

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
DRAIN_BEFORE_DROP_S = 10.0


class DeviceLink(Protocol):
    """One device's connection to the broker."""

    def publish(self, message: SimMessage) -> None:
        """Hand a message to the connection (QoS 1: resent until the broker acknowledges it)."""

    def unacknowledged(self) -> int:
        """Messages published and not yet acknowledged."""

    def close(self, *, timeout: float) -> int:
        """Wait up to `timeout` s for acknowledgements, then disconnect; returns how many are missing."""

    def drop(self) -> None:
        """Lose the connection without a DISCONNECT, as a device losing power or signal does."""

    def reconnect(self) -> None:
        """Connect again after `drop`; raises like the first connect."""

    @property
    def dropped(self) -> bool:
        """Whether the connection was dropped and not yet re-established."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """Everything needed to connect one device."""

    broker: BrokerAddress
    client_id: str
    username: str
    password: str | None
    will_topic: str
    will_payload: bytes


class AckedClient:
    """A device's paho client and the count of its publishes the broker has not yet acknowledged.

    Shared by `PahoLink` (a network thread per device) and `pool.PooledLink` (one thread for all):
    they differ only in who runs the client's network I/O.
    """

    def __init__(self, spec: LinkSpec) -> None:
        self.spec = spec
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=spec.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        client.username_pw_set(spec.username, spec.password)
        client.will_set(spec.will_topic, spec.will_payload, qos=1, retain=True)
        if spec.broker.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        self._client = client
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Condition()
        self._published = 0
        self._acknowledged = 0
        self._dropped = False

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connected.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        with self._lock:
            self._acknowledged += 1
            self._lock.notify_all()

    def publish(self, message: SimMessage) -> None:
        """Queue the message; paho sends it, and resends it after a reconnect, until acknowledged."""
        with self._lock:
            self._published += 1
        info = self._client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            with self._lock:
                self._published -= 1
            raise BrokerUnavailable(
                f"device {self.spec.client_id}: publish failed: {mqtt.error_string(info.rc)}"
            )

    def unacknowledged(self) -> int:
        """Messages published and not yet acknowledged."""
        with self._lock:
            return self._published - self._acknowledged

    @property
    def dropped(self) -> bool:
        """Whether the connection was dropped and not yet re-established."""
        return self._dropped


class PahoLink(AckedClient):
    """A device connection on a paho client with its own network thread."""

    @classmethod
    def connect(cls, spec: LinkSpec) -> PahoLink:
        """Connect and wait for the broker's answer; raises DeviceRefused or BrokerUnavailable."""
        link = cls(spec)
        link._open()
        return link

    def _open(self, *, reconnect: bool = False) -> None:
        broker, device = self.spec.broker, self.spec.client_id
        try:
            if reconnect:
                self._client.reconnect()
            else:
                self._client.connect(broker.host, broker.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise BrokerUnavailable(f"device {device}: cannot reach the broker at {broker}: {exc}") from exc
        self._client.loop_start()
        answered = self._connected.wait(CONNECT_TIMEOUT_S)
        if answered and self._refused is None:
            return
        self._client.loop_stop()
        self._client.disconnect()
        if not answered:
            raise BrokerUnavailable(
                f"device {device}: no answer from the broker at {broker} in {CONNECT_TIMEOUT_S:g} s"
            )
        raise DeviceRefused(
            f"the broker at {broker} refused device {device} (user {self.spec.username!r}): {self._refused}; "
            "check the device's secret in the credentials file and that the broker knows the device"
        )

    def drop(self) -> None:
        """Close the socket without DISCONNECT, after what is in flight was acknowledged.

        The broker then publishes the last will: the platform sees the device go offline.
        """
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=DRAIN_BEFORE_DROP_S)
        sock = self._client.socket()
        self._client.loop_stop()  # stop paho first, or it would reconnect on its own
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._dropped = True

    def reconnect(self) -> None:
        """A fresh connection (the will set again), as the device's firmware makes after a drop."""
        self._connected.clear()
        self._refused = None
        with self._lock:
            self._published = self._acknowledged  # nothing is in flight: drop waited for it
        self._dropped = False
        self._open(reconnect=True)

    def close(self, *, timeout: float) -> int:
        """Wait for outstanding acknowledgements, then disconnect cleanly (the will is not sent)."""
        if self._dropped:
            return 0  # offline already; the broker published the will
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=timeout)
            missing = self._published - self._acknowledged
        self._client.disconnect()
        self._client.loop_stop()
        return max(0, missing)
