"""A simulated device's MQTT connection: paho-mqtt 2.x, MQTT 3.1.1, QoS 1, a retained last will.

The runner talks to `DeviceLink`, not to paho, so the connection is one narrow seam: tests and a
later asyncio implementation can provide their own factory. The one the runner uses is
`pool.PooledLink`, many connections on one network thread; a thread per device (paho's
`loop_start`) stopped at about 340 devices per process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from midika.broker_address import BrokerAddress
from simulators.errors import BrokerUnavailable
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

    The part of a link that does not depend on who runs the client's network I/O.
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
