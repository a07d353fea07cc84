"""The MQTT broker `midika up` runs in-process: amqtt 0.12.1 with registry logins and per-device ACLs.

`EmbeddedBroker` runs on the caller's event loop; `BrokerThread` gives it a thread and loop of its
own for synchronous callers. The rules live in `devices.broker_plugins`.

What amqtt 0.12.1 is and isn't: MQTT 3.1.1 only (an MQTT 5 CONNECT gets a 3.1.1 CONNACK 0x01,
"unacceptable protocol version", and the socket closed); no shared subscriptions (`$share/g/f` is
taken as a literal filter that never matches, so the policy refuses it with SUBACK 0x80); sessions,
queued QoS 1/2 messages and retained messages live in memory only and are gone after a restart; a
message is delivered at the subscription's QoS whatever QoS it was published with; passwords must
be UTF-8. Denied publishes are acked and dropped: MQTT 3.1.1 cannot tell the publisher.

Login rate (16 concurrent raw-socket clients doing CONNECT/CONNACK/DISCONNECT, load from a separate
process, 2-CPU container shared with other work, so rough): plain amqtt with anonymous logins
~150/s; service account ~200/s; device whose secret the registry has cached ~150/s: amqtt's
per-connection work, not the check, sets the pace. A login that needs PBKDF2-SHA512 at 20,000
rounds (a device's first login after start, or any wrong secret) costs 40-100 ms of CPU, so ~7/s
on that box. It runs in worker threads (hashlib releases the GIL), so the loop keeps serving: during
a storm of wrong secrets a connected client's PINGRESP took ~20 ms (median; 120 ms max) instead of
0.5 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BrokerConfig, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, BrokerError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING
from amqtt.utils import gen_client_id

from devices.broker_plugins import (
    AccessCounters,
    AccessPolicy,
    CredentialCheck,
    RegistryAuthPlugin,
    RegistryTopicPlugin,
    Role,
    ServiceAccount,
)
from midika.errors import ConfigError, MidikaError

__all__ = [
    "AccessCounters",
    "BrokerThread",
    "CredentialCheck",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "Role",
    "ServiceAccount",
]

_log = logging.getLogger(__name__)


class EmbeddedBrokerError(MidikaError):
    """The embedded broker could not start or stop."""


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on the running event loop; devices log in with their registry secrets."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        credentials: CredentialCheck,
        service_accounts: Mapping[str, ServiceAccount],
        session_expiry_s: int = 86_400,
    ) -> None:
        if not host or ":" in host:  # amqtt passes "[::1]" to the socket layer brackets and all
            raise ConfigError(f"broker_host: need an IPv4 address or a host name, got {host!r}")
        if not 0 <= port <= 65535:
            raise ConfigError(f"broker_port: {port} is not a TCP port")
        self._host, self._port = host, port
        self._session_expiry_s = session_expiry_s
        self._policy = AccessPolicy(credentials=credentials, service_accounts=service_accounts)
        self._broker: _AuthFirstBroker | None = None

    @property
    def port(self) -> int:
        """The port the broker listens on: the bound one once started, even when 0 was asked for."""
        return self._port

    @property
    def counters(self) -> AccessCounters:
        """Refused logins and denied publishes, subscriptions and deliveries since start."""
        return self._policy.counters

    async def start(self) -> None:
        """Bind the listener; on return it accepts connections."""
        if self._broker is not None:
            raise EmbeddedBrokerError("the embedded broker is already started")
        _quiet_amqtt_logs()
        policy = {"policy": self._policy}
        config = BrokerConfig(
            listeners={"default": ListenerConfig(type=ListenerType.TCP, bind=f"{self._host}:{self._port}")},
            # Replaces amqtt's defaults: no $SYS publisher, no packet or event logging, no anonymous.
            plugins={
                f"{RegistryAuthPlugin.__module__}.{RegistryAuthPlugin.__qualname__}": policy,
                f"{RegistryTopicPlugin.__module__}.{RegistryTopicPlugin.__qualname__}": policy,
            },
            session_expiry_interval=self._session_expiry_s,
        )
        broker = _AuthFirstBroker(config, loop=asyncio.get_running_loop())
        try:
            await broker.start()
        except BrokerError as exc:
            raise EmbeddedBrokerError(f"embedded broker on {self._host}:{self._port}: {exc}") from exc
        self._broker = broker
        # amqtt has no public accessor for the bound address; its Server keeps the asyncio.Server.
        server = broker._servers["default"].instance
        self._port = int(server.sockets[0].getsockname()[1])
        _log.info("embedded MQTT broker listening on %s:%d", self._host, self._port)

    async def stop(self) -> None:
        """Disconnect every client and close the listener; a no-op when not started."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class BrokerThread:
    """An `EmbeddedBroker` on a daemon thread with its own event loop, for synchronous callers."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        credentials: CredentialCheck,
        service_accounts: Mapping[str, ServiceAccount],
    ) -> None:
        self._broker = EmbeddedBroker(
            host=host, port=port, credentials=credentials, service_accounts=service_accounts
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="midika-broker", daemon=True)

    @property
    def port(self) -> int:
        """The bound port, valid once `start` returned."""
        return self._broker.port

    @property
    def counters(self) -> AccessCounters:
        """Refused logins and denied publishes, subscriptions and deliveries since start."""
        return self._broker.counters

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker thread; return once the listener accepts connections."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EmbeddedBrokerError(f"embedded broker did not start within {timeout} s", retryable=True)
        if self._failure is not None:
            self._thread.join(timeout)
            raise self._failure

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down and wait for its thread."""
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: already stopped
                self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise EmbeddedBrokerError(f"embedded broker did not stop within {timeout} s")

    def __enter__(self) -> BrokerThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._broker.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._broker.stop()


class _PatientHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's per-client protocol handler, but a QoS 1 delivery waits for its PUBACK as long as it takes.

    amqtt 0.12.1 gives a subscriber 5 s to acknowledge a QoS 1 message and then drops the message
    from the session, and drops it too when the client disconnects before acknowledging it. The
    ingest acknowledges a message only once it is durable, which under load, or while the store is
    down and the spool is full, can take longer: amqtt would silently lose it. MQTT wants an
    unacknowledged message kept and sent again when a persistent session reconnects (amqtt does
    resend what stays in `inflight_out`, in `_retry_deliveries`). A dead client is caught by the
    keepalive, which ends the wait. This override of the (private, version-pinned) method keeps the
    message until its PUBACK arrives and otherwise follows amqtt's flow.
    """

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction != OUTGOING or app_message.qos != QOS_1 or self.session is None:
            await super()._handle_qos1_message_flow(app_message)
            return
        packet_id = app_message.packet_id
        if packet_id is None or app_message.puback_packet:
            await super()._handle_qos1_message_flow(app_message)  # amqtt raises its own error
            return
        self.session.inflight_out.setdefault(packet_id, app_message)
        retry = app_message.publish_packet is not None
        packet = app_message.build_publish_packet(dup=True) if retry else app_message.build_publish_packet()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._puback_waiters[packet_id] = waiter
        try:
            await self._send_packet(packet)
            app_message.publish_packet = packet
            app_message.puback_packet = await waiter
        finally:
            if self._puback_waiters.get(packet_id) is waiter:
                del self._puback_waiters[packet_id]
            if app_message.puback_packet:  # acknowledged: done; otherwise kept for the next session
                self.session.inflight_out.pop(packet_id, None)


class _AuthFirstBroker(Broker):  # type: ignore[misc]  # amqtt ships no type information
    """amqtt's Broker, but a CONNECT is authenticated before it can touch another session.

    amqtt 0.12.1 deletes the session holding a CONNECT's client id (or, for a persistent session,
    rewrites its credentials) *before* asking the auth plugins, and files the refused connection
    under that id afterwards. Anyone reaching the port could so cut the ingest off its
    subscriptions, silently, with its client id and any password. This override of the (private,
    version-pinned) method authenticates right after reading the CONNECT and otherwise keeps
    amqtt's logic.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted: dict[int, object] = {}

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Any]:
        try:
            handler, session = await _PatientHandler.init_from_connect(reader, writer, self.plugins_manager)
        except Exception as exc:
            with contextlib.suppress(OSError):
                await writer.close()
            if isinstance(exc, AMQTTError | MQTTError | NoDataError):
                raise
            # E.g. a client that hangs up before amqtt's CONNACK refusing MQTT 5: amqtt lets the
            # OSError escape as an "Unhandled exception" traceback; its caller logs MQTTError in a line.
            raise MQTTError(f"CONNECT from {remote_address}:{remote_port} failed: {exc!r}") from exc
        if not await super()._authenticate(session, None):
            with contextlib.suppress(OSError):
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
                await writer.close()
            raise MQTTError(f"login {session.username!r} from {remote_address}:{remote_port} refused")

        # From here on, amqtt 0.12.1's Broker._initialize_client_session (plus will_retain).
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            existing.will_flag = session.will_flag
            existing.will_message = session.will_message
            existing.will_topic = session.will_topic
            existing.will_qos = session.will_qos
            existing.will_retain = session.will_retain  # amqtt forgets this one
            existing.keep_alive = session.keep_alive
            existing.username = session.username
            existing.password = session.password
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        self._admitted[id(session)] = session
        return handler, session

    async def _client_message_loop(self, client_session: Any, handler: Any) -> None:
        """Serve one connected client, routing every acknowledged PUBLISH before its disconnect.

        amqtt 0.12.1 sends PUBACK for a QoS 1 PUBLISH as soon as the message is queued for routing,
        and its own loop cancels that queue when the client disconnects: a device that sends a burst
        (a store-and-forward batch, a simulator backfill) and hangs up loses the tail of it, though
        every message was acknowledged. This loop drains the queue before the disconnect is handled.
        """
        waiters: dict[str, asyncio.Future[Any]] = {
            "disconnect": asyncio.ensure_future(handler.wait_disconnect()),
            "subscribe": asyncio.ensure_future(handler.get_next_pending_subscription()),
            "unsubscribe": asyncio.ensure_future(handler.get_next_pending_unsubscription()),
            "deliver": asyncio.ensure_future(handler.mqtt_deliver_next_message()),
        }
        try:
            while True:
                done, _ = await asyncio.wait(waiters.values(), return_when=asyncio.FIRST_COMPLETED)
                if waiters["deliver"] in done:
                    if not await self._handle_message_delivery(client_session, handler, waiters["deliver"]):
                        break  # amqtt closes a client that publishes to an invalid topic
                    waiters["deliver"] = asyncio.ensure_future(handler.mqtt_deliver_next_message())
                if waiters["subscribe"] in done:
                    await self._handle_subscription(client_session, handler, waiters["subscribe"])
                    waiters["subscribe"] = asyncio.ensure_future(handler.get_next_pending_subscription())
                if waiters["unsubscribe"] in done:
                    await self._handle_unsubscription(client_session, handler, waiters["unsubscribe"])
                    waiters["unsubscribe"] = asyncio.ensure_future(handler.get_next_pending_unsubscription())
                if waiters["disconnect"] in done:
                    await self._route_acknowledged(client_session, handler, waiters["deliver"])
                    await self._handle_disconnect(client_session, handler, waiters["disconnect"])
                    break
        except asyncio.CancelledError:
            _log.debug("client loop of %s cancelled", client_session.client_id)
        finally:
            for waiter in waiters.values():
                waiter.cancel()
            await asyncio.gather(*waiters.values(), return_exceptions=True)

    async def _route_acknowledged(
        self, client_session: Any, handler: Any, pending: asyncio.Future[Any]
    ) -> None:
        """Route the message `pending` may hold and everything still queued for this client."""
        pending.cancel()
        # Cancelling a Queue.get that has not resumed leaves its item in the queue; one that has
        # resumed finished with the message as its result.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pending, return_exceptions=True)
        messages = []
        if pending.done() and not pending.cancelled() and pending.exception() is None and pending.result():
            messages.append(pending.result())
        queue = client_session.delivered_message_queue
        while not queue.empty():
            messages.append(queue.get_nowait())
        loop = asyncio.get_running_loop()
        for message in messages:
            ready: asyncio.Future[Any] = loop.create_future()
            ready.set_result(message)
            if not await self._handle_message_delivery(client_session, handler, ready):
                break

    async def _run_broadcast(self, running_tasks: Any) -> None:
        """Route one published message to every matching subscription, from a snapshot of them.

        amqtt 0.12.1 walks its live subscription lists and awaits the ACL check inside the loop;
        a subscription removed meanwhile (its session monitor drops disconnected clean sessions
        every second) shifts the list under the loop, which then skips the next subscriber: the
        ingest missed a reading whenever another subscriber left (bench.ingest: 19,999 of 20,000
        stored). A filter added or removed meanwhile ended the loop with an error instead. The
        rest is amqtt 0.12.1's `_run_broadcast`.
        """
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for a_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(topic, a_filter):
                continue
            for target_session, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not await self._topic_filtering(target_session, topic=topic, action=Action.RECEIVE):
                    continue
                connected = target_session.transitions.state == "connected"
                if (
                    not connected
                    and not target_session.clean_session
                    and qos in (QOS_1, QOS_2)
                    and not target_session.is_anonymous
                ):
                    await self._retain_broadcast_message(broadcast, qos, target_session)  # until it returns
                    continue
                handler = self._get_handler(target_session) if connected else None
                if handler:
                    publish = handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                    running_tasks.append(asyncio.ensure_future(publish))

    async def _handle_disconnect(self, client_session: Any, handler: Any, disconnect_waiter: Any) -> None:
        """End a connection; if a newer connection took its persistent session over, only close it.

        amqtt 0.12.1 marks the session disconnected when the old connection's loop ends, even after
        a reconnect of the same client id took the session over: the live client then gets nothing
        (amqtt queues its messages as if it were away) until it reconnects once more. And the old
        connection's will (a device's "offline") would be published while the device is online.
        """
        current = self._sessions.get(client_session.client_id)
        if current is not None and current[0] is client_session and current[1] is not handler:
            await self._stop_handler(handler)
            return
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        # Called by amqtt right after _initialize_client_session: don't run PBKDF2 twice.
        if self._admitted.pop(id(session), None) is session:
            return True
        return bool(await super()._authenticate(session, listener))


def _quiet_amqtt_logs() -> None:
    """Raise amqtt's loggers to WARNING unless the application configured them."""
    # amqtt logs every connection at INFO; `midika up` would drown in it.
    for name in ("amqtt", "transitions"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
