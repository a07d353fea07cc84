"""The ingest worker: subscribe to every device topic, judge each message, hand it to the writer.

paho's network thread receives a message, stamps the receive time, runs the pure `process` and
queues the verdict on the `BatchWriter`, whose own thread writes batches to the store: the store
never runs on paho's thread, so a slow write cannot stall keepalives and get the ingest disconnected.

Delivery is at-least-once end to end: QoS 1 subscriptions on a persistent session (MQTT 5: clean
start off and a session expiry; 3.1.1: clean session off), and paho's manual acknowledgement: the
writer acknowledges a message only once it is in the store or the fsync'd spool. What the ingest
had not acknowledged when it died or lost the broker is delivered again; the stores count the
second copy as a duplicate instead of storing it twice. On MQTT 5 the broker is told the cap on
unacknowledged messages (Receive Maximum); on 3.1.1 the writer enforces it by blocking this thread.

With `MIDIKA_INGEST_SHARE_GROUP` the worker subscribes through `$share/<group>/...`, and the broker
spreads the messages over every worker of the group.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Final, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.contract import INGEST_KINDS, topic_filter
from ingest.errors import BrokerRefused, BrokerUnreachable, IngestError
from ingest.message import RawMessage, judge
from ingest.pipeline import Accepted, Rejected, TrialLookup
from ingest.spool import Spool
from ingest.stats import IngestStats
from ingest.writer import BatchWriter
from midika.broker_address import BrokerAddress
from midika.settings import Settings
from midika.store.base import Store
from midika.timeutil import Clock, utcnow

__all__ = ["SUBSCRIPTIONS", "IngestStats", "IngestWorker", "MqttVersion", "subscriptions"]

log = logging.getLogger(__name__)

SUBSCRIPTIONS: Final = tuple(topic_filter(kind) for kind in INGEST_KINDS)
KEEPALIVE_S: Final = 30
RECONNECT_DELAY_S: Final = (1, 30)
MqttVersion = Literal["3.1.1", "5"]


def subscriptions(share_group: str | None) -> tuple[str, ...]:
    """The topic filters the ingest subscribes to, as a member of `share_group` if one is given."""
    if share_group is None:
        return SUBSCRIPTIONS
    return tuple(f"$share/{share_group}/{topic}" for topic in SUBSCRIPTIONS)


class IngestWorker:
    """Consumes device messages from an MQTT broker into a store; `start`, then `stop`."""

    def __init__(
        self,
        *,
        store: Store,
        trials: TrialLookup,
        broker: BrokerAddress,
        settings: Settings,
        mqtt_version: MqttVersion = "5",
        clock: Clock = utcnow,
    ) -> None:
        self._trials = trials
        self._broker = broker
        self._settings = settings
        self._version = mqtt_version
        self._clock = clock
        self._topics = subscriptions(settings.ingest_share_group)
        self._spool: Spool | None = None
        if settings.ingest_spool_max_bytes > 0:
            self._spool = Spool(directory=settings.spool_dir, max_bytes=settings.ingest_spool_max_bytes)
        self._writer = BatchWriter(
            store=store,
            settings=settings,
            acknowledge=self._acknowledge,
            judge=self._judge,
            spool=self._spool,
        )
        self._started = False
        self._connected = False  # set and read from different threads; a bool store is atomic
        self._subscribed = threading.Event()
        self._refusal: str | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        v5 = self._version == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._settings.ingest_client_id,
            clean_session=None if v5 else False,  # MQTT 5 sets clean start in connect()
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,  # the embedded amqtt speaks 3.1.1 only
            manual_ack=True,
        )
        if self._broker.username is not None:
            client.username_pw_set(self._broker.username, self._broker.password)
        if self._broker.tls:
            client.tls_set()
        client.reconnect_delay_set(*RECONNECT_DELAY_S)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Properties | None:
        if self._version != "5":
            return None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._settings.ingest_session_expiry_s
        properties.ReceiveMaximum = self._settings.ingest_max_unacked
        return properties

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; returns once subscribed, raises BrokerRefused or BrokerUnreachable."""
        if self._started:
            raise IngestError("the ingest worker was already started")
        self._started = True
        self._writer.start()
        deadline = time.monotonic() + timeout
        try:
            self._connect(deadline)
            self._client.loop_start()
            while not self._subscribed.wait(0.05):
                if self._refusal is not None:
                    raise BrokerRefused(f"{self._broker} refused the ingest: {self._refusal}")
                if time.monotonic() > deadline:
                    raise BrokerUnreachable(f"{self._broker} did not accept the ingest within {timeout:g} s")
        except BaseException:
            self._client.loop_stop()
            self._client.disconnect()
            self._writer.stop(timeout=1.0)
            raise
        log.info("ingest subscribed to %s at %s", ", ".join(self._topics), self._broker)

    def _connect(self, deadline: float) -> None:
        # A first connect by hand gives a clear error for a wrong host or port; after that paho
        # reconnects by itself (reconnect_delay_set) for as long as the worker runs.
        last: OSError | None = None
        self._client.connect_timeout = max(0.5, min(5.0, deadline - time.monotonic()))
        while True:
            try:
                self._client.connect(
                    self._broker.host,
                    self._broker.port,
                    keepalive=KEEPALIVE_S,
                    clean_start=False if self._version == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=self._connect_properties(),
                )
                return
            except OSError as exc:
                last = exc
            if time.monotonic() + 0.2 > deadline:
                raise BrokerUnreachable(f"cannot connect to {self._broker}: {last}") from last
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Drain: write and acknowledge what was received, then disconnect; IngestError if some was not.

        Messages that arrive while draining are left unacknowledged, so the broker keeps them for
        the next run (or another worker of the share group).
        """
        self._writer.stop(timeout=timeout)
        # The PUBACKs the writer just queued leave before the DISCONNECT queued after them.
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        stats = self.stats
        if stats.unacked:
            raise IngestError(
                f"the ingest stopped with {stats.unacked} message(s) neither stored nor spooled; "
                "the broker delivers them again to the next run"
            )

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until everything received so far is written; raises IngestError on timeout."""
        self._writer.wait_idle(timeout)

    def __enter__(self) -> IngestWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stats(self) -> IngestStats:
        """A consistent snapshot of the counters."""
        return self._writer.stats(connected=self._connected)

    # --- paho callbacks (network thread) ------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, rc: ReasonCode, props: object
    ) -> None:
        if rc.is_failure:
            self._refusal = str(rc)
            log.error("broker %s refused the ingest: %s", self._broker, rc)
            return
        self._connected = True
        # Subscribing again after every reconnect is harmless and covers a broker that lost the session.
        client.subscribe([(topic, 1) for topic in self._topics])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: object
    ) -> None:
        refused = [topic for topic, code in zip(self._topics, codes, strict=False) if code.is_failure]
        if refused:
            self._refusal = f"subscription to {', '.join(refused)} refused (check the ingest's ACL)"
            log.error("broker %s: %s", self._broker, self._refusal)
            return
        self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, props: object
    ) -> None:
        self._connected = False
        if rc.is_failure and self._refusal is None:
            log.warning("lost the broker %s (%s); paho reconnects", self._broker, rc)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received = self._clock()
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers should refuse these; quarantine keeps what arrived
            topic = message._topic.decode("utf-8", "replace")
        raw = RawMessage(topic=topic, payload=bytes(message.payload), received=received)
        self._writer.put(self._judge(raw), raw, message.mid if message.qos > 0 else None)

    def _judge(self, message: RawMessage) -> Accepted | Rejected:
        return judge(message, trials=self._trials, settings=self._settings)

    def _acknowledge(self, mids: Sequence[int]) -> None:
        """Send PUBACKs (writer thread); paho queues them for its network thread, in this order."""
        for mid in mids:
            self._client.ack(mid, 1)
