"""The ingest worker: subscribe to every device topic, run `process`, hand verdicts to the writer.

paho's network thread receives a message, stamps the receive time, runs the pure `process` and
queues the verdict on the `BatchWriter`, whose own thread writes batches to the store: the store
never runs on paho's thread, so a slow write cannot stall keepalives and get the ingest disconnected.

Delivery is at-least-once up to the worker: QoS 1 subscriptions on a persistent session
(clean_session=False), so the broker queues what arrives while the ingest is away, and duplicates
are counted, not stored twice. paho acknowledges a message when `on_message` returns, i.e. once it
is queued; a crash loses what is queued but not yet written. Manual acks after the write
(paho's `manual_ack`) and a disk spool are the planned next step, in the writer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.contract import INGEST_KINDS, topic_filter
from ingest.errors import BrokerRefused, BrokerUnreachable, IngestError
from ingest.pipeline import Accepted, Rejected, TrialLookup, process
from ingest.writer import BatchWriter, IngestStats
from midika.broker_address import BrokerAddress
from midika.models.records import QuarantineReason, QuarantineRecord
from midika.settings import Settings
from midika.store.base import Store
from midika.timeutil import Clock, utcnow

__all__ = ["SUBSCRIPTIONS", "IngestStats", "IngestWorker"]

log = logging.getLogger(__name__)

SUBSCRIPTIONS: Final = tuple(topic_filter(kind) for kind in INGEST_KINDS)
KEEPALIVE_S: Final = 30
RECONNECT_DELAY_S: Final = (1, 30)


class IngestWorker:
    """Consumes device messages from an MQTT broker into a store; `start`, then `stop`."""

    def __init__(
        self,
        *,
        store: Store,
        trials: TrialLookup,
        broker: BrokerAddress,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self._trials = trials
        self._broker = broker
        self._settings = settings
        self._clock = clock
        self._writer = BatchWriter(store=store, settings=settings)
        self._started = False
        self._connected = False  # set and read from different threads; a bool store is atomic
        self._subscribed = threading.Event()
        self._refusal: str | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._settings.ingest_client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,  # the embedded amqtt broker speaks 3.1.1 only
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
        log.info("ingest subscribed to %s at %s", ", ".join(SUBSCRIPTIONS), self._broker)

    def _connect(self, deadline: float) -> None:
        # A first connect by hand gives a clear error for a wrong host or port; after that paho
        # reconnects by itself (reconnect_delay_set) for as long as the worker runs.
        last: OSError | None = None
        self._client.connect_timeout = max(0.5, min(5.0, deadline - time.monotonic()))
        while True:
            try:
                self._client.connect(self._broker.host, self._broker.port, keepalive=KEEPALIVE_S)
                return
            except OSError as exc:
                last = exc
            if time.monotonic() + 0.2 > deadline:
                raise BrokerUnreachable(f"cannot connect to {self._broker}: {last}") from last
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, write everything received; raises IngestError if some could not be written."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._writer.stop(timeout=timeout)
        pending = self.stats.pending
        if pending:
            raise IngestError(f"the ingest stopped with {pending} message(s) not written; see the log")

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
        client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], props: object
    ) -> None:
        refused = [topic for topic, code in zip(SUBSCRIPTIONS, codes, strict=False) if code.is_failure]
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
        payload = bytes(message.payload)  # already bytes from paho: no copy
        try:
            outcome: Accepted | Rejected = process(
                topic, payload, received=received, trials=self._trials, settings=self._settings
            )
        except Exception as exc:  # a bug in the pipeline must not kill paho's thread or lose the message
            log.exception("ingest failed on a message on %s", topic)
            outcome = Rejected(
                QuarantineRecord(
                    topic=topic,
                    payload=bytes(payload[: self._settings.quarantine_payload_cap]),
                    reason=QuarantineReason.SCHEMA_INVALID,
                    detail=f"midika could not process this message ({exc!r}); please report it",
                    received_ts=received,
                    payload_size=len(payload),
                )
            )
        self._writer.put(outcome)
