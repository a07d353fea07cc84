"""The embedded broker, driven by paho clients over TCP: logins, per-device topics, wills."""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.broker import BrokerThread, EmbeddedBrokerError, Role, ServiceAccount
from devices.registry import Registry
from tests.devices.factories import make_trial

INGEST, INGEST_PW = "midika-ingest", "ingest-pw"
SIM, SIM_PW = "midika-sim", "sim-pw"
WAIT_S = 5.0


def topic(trial: str, device: str, kind: str) -> str:
    return f"midika/v1/{trial}/{device}/{kind}"


class Client:
    """A connected (or refused) paho client whose messages land in a queue."""

    def __init__(self, port: int, client_id: str, username: str | None, password: str | None, **will: object):
        self.inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.connack: ReasonCode | None = None
        self.mqtt = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True
        )
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        if will:
            self.mqtt.will_set(**will)  # type: ignore[arg-type]
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        self.mqtt.on_subscribe = lambda _c, _u, _mid, codes, _p: self._subacks.put(codes)
        self.mqtt.connect("127.0.0.1", port, keepalive=30)
        self.mqtt.loop_start()
        assert self._connected.wait(WAIT_S), "no CONNACK"

    def _on_connect(self, _c: object, _u: object, _f: object, code: ReasonCode, _p: object) -> None:
        self.connack = code
        if code.is_failure:
            self.mqtt.disconnect()  # or paho's loop thread keeps reconnecting
        self._connected.set()

    @property
    def refused(self) -> bool:
        return self.connack is not None and self.connack.is_failure

    def subscribe(self, topic_filter: str) -> ReasonCode:
        """Subscribe at QoS 1 and return the SUBACK's code."""
        self.mqtt.subscribe(topic_filter, qos=1)
        [code] = self._subacks.get(timeout=WAIT_S)
        return code

    def publish(self, topic_name: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK: the broker has then handled it."""
        self.mqtt.publish(topic_name, payload, qos=1).wait_for_publish(WAIT_S)

    def next(self) -> paho.MQTTMessage:
        return self.inbox.get(timeout=WAIT_S)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    trials = [make_trial("alpha"), make_trial("beta", devices=("beta-01",))]
    return Registry.from_trials(trials, state_file=tmp_path / "registry.json", iterations=1000)


@pytest.fixture
def secrets(registry: Registry) -> dict[str, str]:
    return {
        "alpha-01": registry.issue_secret("alpha", "alpha-01"),
        "alpha-02": registry.issue_secret("alpha", "alpha-02"),
        "beta-01": registry.issue_secret("beta", "beta-01"),
    }


@pytest.fixture
def broker(registry: Registry, secrets: dict[str, str]) -> Iterator[BrokerThread]:
    accounts = {
        INGEST: ServiceAccount(password=INGEST_PW, role=Role.INGEST),
        SIM: ServiceAccount(password=SIM_PW, role=Role.SIMULATOR),
    }
    thread = BrokerThread(host="127.0.0.1", port=0, credentials=registry, service_accounts=accounts)
    thread.start(timeout=WAIT_S)
    yield thread
    thread.stop()


Connect = Callable[..., "Client"]


@pytest.fixture
def connect(broker: BrokerThread) -> Iterator[Connect]:
    clients: list[Client] = []

    def make(client_id: str, username: str | None, password: str | None, **will: object) -> Client:
        client = Client(broker.port, client_id, username, password, **will)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def ingest(connect: Connect) -> Client:
    client = connect("ingest", INGEST, INGEST_PW)
    assert client.subscribe("midika/v1/#").value == 1
    return client


@pytest.fixture
def device(connect: Connect, secrets: dict[str, str]) -> Client:
    return connect("alpha-01", "alpha-01", secrets["alpha-01"])


def test_port_zero_binds_a_free_port_and_stop_releases_it(broker: BrokerThread) -> None:
    assert broker.port > 0
    with socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT_S):
        pass
    broker.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker.port), timeout=WAIT_S)


def test_a_taken_port_fails_start(broker: BrokerThread, registry: Registry) -> None:
    second = BrokerThread(host="127.0.0.1", port=broker.port, credentials=registry, service_accounts={})
    with pytest.raises(EmbeddedBrokerError, match=str(broker.port)):
        second.start(timeout=WAIT_S)


def test_device_publish_reaches_the_ingest(ingest: Client, device: Client) -> None:
    device.publish(topic("alpha", "alpha-01", "up"), b'{"n": 1}')

    message = ingest.next()
    assert (message.topic, message.payload) == (topic("alpha", "alpha-01", "up"), b'{"n": 1}')


@pytest.mark.parametrize(
    ("username", "password"),
    [("alpha-01", "wrong"), ("alpha-01", ""), ("nobody", "x"), (INGEST, "wrong"), (None, None)],
    ids=["wrong-secret", "empty-secret", "unknown-device", "wrong-service-password", "anonymous"],
)
def test_bad_logins_are_refused(
    connect: Connect, broker: BrokerThread, username: str | None, password: str | None
) -> None:
    client = connect("c1", username, password)

    assert client.refused
    assert client.connack is not None and client.connack.getName() == "Not authorized"
    assert broker.counters.refused_connects == 1


def test_another_devices_secret_is_refused(connect: Connect, secrets: dict[str, str]) -> None:
    # alpha-02's secret works for alpha-02 only: the username picks the hash.
    assert connect("x", "alpha-01", secrets["alpha-02"]).refused


@pytest.mark.parametrize(
    "foreign",
    [
        topic("alpha", "alpha-02", "up"),  # same trial, other device
        topic("beta", "beta-01", "up"),  # other trial
        topic("beta", "alpha-01", "up"),  # its own id under another trial
        topic("alpha", "alpha-01", "down"),  # its own topic, but the platform's direction
        "midika/v1/alpha/alpha-01/up/extra",
    ],
)
def test_publish_to_a_foreign_topic_is_dropped_logged_and_counted(
    ingest: Client, device: Client, broker: BrokerThread, foreign: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.broker_plugins")
    device.publish(foreign, b"forged")
    device.publish(topic("alpha", "alpha-01", "up"), b"legit")

    # Both publishes were acked; one client's messages keep their order, so the forged one is gone.
    assert ingest.next().payload == b"legit"
    assert ingest.inbox.empty()
    assert broker.counters.denied_publishes == 1
    assert broker.counters.denied_publishes_by_login == {"alpha-01": 1}
    assert any("alpha-01" in r.getMessage() and foreign in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "topic_filter",
    [
        topic("alpha", "alpha-02", "down"),
        topic("alpha", "alpha-02", "up"),
        topic("alpha", "+", "down"),
        "midika/v1/#",
        "#",
    ],
)
def test_device_cannot_subscribe_beyond_its_own_down(
    connect: Connect, device: Client, broker: BrokerThread, topic_filter: str
) -> None:
    own_down = topic("alpha", "alpha-01", "down")
    assert device.subscribe(own_down).value == 1
    platform = connect("platform", INGEST, INGEST_PW)

    # amqtt answers a refused filter with SUBACK 0x80 rather than accepting and never delivering.
    assert device.subscribe(topic_filter).value == 0x80
    platform.publish(topic("alpha", "alpha-02", "down"), b"not yours")
    platform.publish(own_down, b"yours")

    assert device.next().payload == b"yours"
    assert device.inbox.empty()
    assert broker.counters.denied_subscribes == 1


def test_device_receives_on_its_own_down(connect: Connect, device: Client) -> None:
    assert device.subscribe(topic("alpha", "alpha-01", "down")).value == 1
    connect("platform", INGEST, INGEST_PW).publish(topic("alpha", "alpha-01", "down"), b'{"period_s": 60}')

    message = device.next()
    assert (message.topic, message.payload) == (topic("alpha", "alpha-01", "down"), b'{"period_s": 60}')


def test_retained_will_of_an_unclean_disconnect_reaches_subscribers(
    connect: Connect, ingest: Client, secrets: dict[str, str]
) -> None:
    status = topic("alpha", "alpha-01", "status")
    device = connect(
        "alpha-01", "alpha-01", secrets["alpha-01"], topic=status, payload=b"offline", qos=1, retain=True
    )
    assert not device.refused

    device.mqtt.loop_stop()
    device.mqtt.socket().close()  # type: ignore[union-attr]  # no DISCONNECT: the broker sends the will

    live = ingest.next()
    assert (live.topic, live.payload) == (status, b"offline")
    late = connect("late", INGEST, INGEST_PW)
    assert late.subscribe(status).value == 1
    retained = late.next()
    assert (retained.payload, retained.retain) == (b"offline", True)


def test_a_will_on_a_foreign_topic_refuses_the_login(connect: Connect, secrets: dict[str, str]) -> None:
    # amqtt publishes wills without asking the topic plugin, so the login is where to stop it.
    forged = topic("alpha", "alpha-02", "status")
    client = connect(
        "alpha-01", "alpha-01", secrets["alpha-01"], topic=forged, payload=b"offline", retain=True
    )

    assert client.refused


@pytest.mark.parametrize("password", ["wrong", "right"])
def test_another_login_cannot_take_the_ingest_client_id(
    connect: Connect, ingest: Client, device: Client, secrets: dict[str, str], password: str
) -> None:
    # Plain amqtt drops the ingest's subscriptions as soon as a CONNECT with its client id arrives.
    intruder = connect("ingest", "alpha-02", secrets["alpha-02"] if password == "right" else password)
    assert intruder.refused

    device.publish(topic("alpha", "alpha-01", "up"), b"still flowing")
    assert ingest.next().payload == b"still flowing"


def test_ingest_may_command_devices_but_not_forge_readings(ingest: Client, broker: BrokerThread) -> None:
    ingest.publish(topic("beta", "beta-01", "up"), b"forged")
    ingest.publish(topic("beta", "beta-01", "down"), b"command")

    assert ingest.next().payload == b"command"  # its own midika/v1/# subscription sees it
    assert broker.counters.denied_publishes == 1


def test_shared_subscriptions_are_refused(ingest: Client) -> None:
    # amqtt would take "$share/..." as a literal filter that never matches: silence, not load sharing.
    assert ingest.subscribe("$share/ingest/midika/v1/#").value == 0x80
    assert ingest.subscribe("#").value == 0x80


def test_simulator_publishes_for_any_device_and_reads_any_down(connect: Connect, ingest: Client) -> None:
    simulator = connect("sim", SIM, SIM_PW)
    assert simulator.subscribe("midika/v1/+/+/down").value == 1
    assert simulator.subscribe("midika/v1/#").value == 0x80

    simulator.publish(topic("beta", "beta-01", "down"), b"forged command")
    simulator.publish(topic("beta", "beta-01", "evt"), b"event")
    assert ingest.next().payload == b"event"
    assert ingest.inbox.empty()
    assert simulator.inbox.empty()


def test_a_burst_then_disconnect_loses_nothing(
    ingest: Client, connect: Connect, secrets: dict[str, str]
) -> None:
    # amqtt acknowledges before routing and used to drop the unrouted tail on disconnect.
    sender = connect("alpha-02", "alpha-02", secrets["alpha-02"])
    infos = [
        sender.mqtt.publish(topic("alpha", "alpha-02", "up"), str(i).encode(), qos=1) for i in range(500)
    ]
    for info in infos:
        info.wait_for_publish(WAIT_S)
    sender.close()

    received = {ingest.next().payload for _ in range(500)}
    assert received == {str(i).encode() for i in range(500)}


def holding_client(
    port: int, client_id: str, *, subscribe: bool
) -> tuple[paho.Client, queue.Queue[paho.MQTTMessage]]:
    """A persistent-session ingest client that acknowledges only what the test tells it to.

    The session keeps its subscription: a reconnect need not subscribe again, and amqtt reads
    nothing from a reconnected client until its resent messages are acknowledged.
    """
    inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
    ready = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311,
        clean_session=False,
        manual_ack=True,
    )
    client.username_pw_set(INGEST, INGEST_PW)
    if subscribe:
        client.on_connect = lambda c, *_: c.subscribe("midika/v1/#", qos=1)
        client.on_subscribe = lambda *_: ready.set()
    else:
        client.on_connect = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: inbox.put(msg)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    assert ready.wait(WAIT_S), "no SUBACK" if subscribe else "no CONNACK"
    return client, inbox


def hang_up(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("hold_s", [0.0, 5.5], ids=["disconnect-first", "held-past-5s"])
def test_an_unacknowledged_delivery_is_sent_again_to_the_next_session(
    broker: BrokerThread, device: Client, hold_s: float
) -> None:
    # The ingest acknowledges a message only once it is durable. amqtt dropped a QoS 1 delivery
    # that was not acknowledged within 5 s, or whose subscriber disconnected before acknowledging.
    first, inbox = holding_client(broker.port, "holder", subscribe=True)
    device.publish(topic("alpha", "alpha-01", "up"), b"keep me")
    assert inbox.get(timeout=WAIT_S).payload == b"keep me"
    time.sleep(hold_s)  # amqtt's own PUBACK timeout is 5 s
    hang_up(first)

    second, inbox = holding_client(broker.port, "holder", subscribe=False)
    again = inbox.get(timeout=WAIT_S)
    assert (again.payload, again.dup) == (b"keep me", True)
    second.ack(again.mid, again.qos)
    hang_up(second)  # paho sends the PUBACK before the DISCONNECT

    third, inbox = holding_client(broker.port, "holder", subscribe=False)
    device.publish(topic("alpha", "alpha-01", "up"), b"next")
    received = inbox.get(timeout=WAIT_S)
    third.ack(received.mid, received.qos)
    hang_up(third)
    assert received.payload == b"next"  # an acknowledged message is not sent again


def test_a_reconnect_that_takes_over_its_session_keeps_receiving(
    broker: BrokerThread, device: Client
) -> None:
    # The old connection is still open when the client reconnects (a half-open TCP link): amqtt
    # took the session over but then marked it disconnected, and the live client got nothing.
    old, _ = holding_client(broker.port, "holder", subscribe=True)
    old.loop_stop()  # silent from now on, its socket still open: no DISCONNECT, no reconnect
    new, inbox = holding_client(broker.port, "holder", subscribe=False)
    try:
        device.publish(topic("alpha", "alpha-01", "up"), b"after take-over")
        received = inbox.get(timeout=WAIT_S)
        new.ack(received.mid, received.qos)
        assert received.payload == b"after take-over"
    finally:
        hang_up(new)
        stale = old.socket()
        if stale is not None:
            stale.close()


def test_subscribers_leaving_mid_stream_cost_the_others_nothing(
    connect: Connect, secrets: dict[str, str]
) -> None:
    # amqtt walked its live subscription list while routing a message; its session monitor
    # dropping a departed subscriber shifted the list, and the next subscriber missed the message.
    leavers = [connect(f"watcher-{i}", INGEST, INGEST_PW) for i in range(20)]
    for leaver in leavers:
        assert leaver.subscribe("midika/v1/#").value == 1
    stayer = connect("stayer", INGEST, INGEST_PW)  # subscribed after them: later in each list
    assert stayer.subscribe("midika/v1/#").value == 1
    sender = connect("alpha-02", "alpha-02", secrets["alpha-02"])
    count = 3000
    infos = []
    for i in range(count):
        infos.append(sender.mqtt.publish(topic("alpha", "alpha-02", "up"), str(i).encode(), qos=1))
        if i == count // 10:
            for leaver in leavers:
                leaver.close()  # amqtt's monitor drops their sessions within a second, mid-stream
    for info in infos:
        info.wait_for_publish(WAIT_S)

    received = {stayer.next().payload for _ in range(count)}
    assert received == {str(i).encode() for i in range(count)}
