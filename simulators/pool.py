"""Many device connections on one network thread: paho clients driven by an epoll selector.

paho's own loop (`loop_start`) is a thread per client around select(), which cannot watch
descriptors above 1024: about 340 devices per process. `LinkPool` uses paho's external-loop
callbacks instead, so one thread and one epoll serve thousands of devices; the runner makes one
per run. Only the loop thread touches the selector: other threads queue their requests (a socket
opened or closed, a publish wanting to write, a drop) and wake it through a socketpair. The queue
is applied in order, so a socket's unregistration always comes before a new socket that reuses
its descriptor number is registered.

paho's loop thread also reconnects a connection lost unexpectedly (a broker restart, a missed
keepalive); the pool does the same, with a backoff, on a helper thread, so a long run survives.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from simulators.errors import BrokerUnavailable, DeviceRefused
from simulators.link import CONNECT_TIMEOUT_S, DRAIN_BEFORE_DROP_S, KEEPALIVE_S, AckedClient, LinkSpec

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 1.0  # keepalive pings and retries: paho's loop_misc for every client
REVIVE_FIRST_S = 1.0  # first retry after an unexpected loss, doubling up to REVIVE_MAX_S
REVIVE_MAX_S = 30.0
CLOSE_TIMEOUT_S = 10.0  # for the loop thread to write the DISCONNECTs of closed links


class LinkPool:
    """One network thread for many paho clients; `connect` is the runner's link factory."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full pipe already means "wake up"
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._changes: deque[Callable[[], None]] = deque()
        self._lost: dict[PooledLink, tuple[float, float]] = {}  # link: (next attempt, backoff) (loop thread)
        self._reviver: ThreadPoolExecutor | None = None
        self._running = True
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="sim-link-pool", daemon=True)
        self._thread.start()

    def connect(self, spec: LinkSpec) -> PooledLink:
        """Connect one device and wait for the broker's answer; raises DeviceRefused or BrokerUnavailable."""
        link = PooledLink(spec, self)
        link.open()
        return link

    def close(self, *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the network thread once the closed links' DISCONNECTs are written (close links first)."""
        self._closing = True
        self._wake()
        self._thread.join(timeout)
        self._running = False
        self._wake()
        self._thread.join(timeout)
        if self._reviver is not None:
            self._reviver.shutdown(wait=False, cancel_futures=True)
        for key in list(self._selector.get_map().values()):
            if isinstance(key.fileobj, socket.socket):  # the waker, and any connection still open
                key.fileobj.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- called from any thread ---------------------------------------------------------------------

    def change(self, action: str, sock: Any, client: mqtt.Client | None = None) -> None:
        """Queue a selector change (open, close, write, read) for the loop thread."""
        self._changes.append(lambda: self._apply(action, sock, client))
        self._wake()

    def call(self, action: Callable[[], None], *, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Run `action` on the loop thread, between two rounds of I/O, and wait for it."""
        if threading.current_thread() is self._thread:
            action()
            return
        done = threading.Event()

        def run() -> None:
            try:
                action()
            finally:
                done.set()

        self._changes.append(run)
        self._wake()
        if not done.wait(timeout):
            raise BrokerUnavailable("the simulator's network thread did not answer")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the loop thread ----------------------------------------------------------------------------

    def forget(self, sock: Any) -> None:
        """Stop watching `sock` (loop thread only)."""
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(sock)

    def lost(self, link: PooledLink, backoff: float = REVIVE_FIRST_S) -> None:
        """Reconnect `link` after `backoff` seconds (loop thread only)."""
        self._lost[link] = (time.monotonic() + backoff, backoff)

    def _apply(self, action: str, sock: Any, client: mqtt.Client | None) -> None:
        try:
            if action == "open" and client is not None:
                self._selector.register(sock, selectors.EVENT_READ, client)
            elif action == "close":
                self.forget(sock)
            else:
                key = self._selector.get_key(sock)
                self._watch(key, write=action == "write" or key.data.want_write())
        except (KeyError, ValueError, OSError):
            pass  # a socket closed before its change was applied

    def _watch(self, key: selectors.SelectorKey, *, write: bool) -> None:
        """Wait for the socket to be readable, and writable too if `write`."""
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if write else 0)
        if key.events != mask:
            with contextlib.suppress(KeyError, ValueError, OSError):  # closed: also leaves the map
                self._selector.modify(key.fileobj, mask, key.data)

    def _loop(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while self._running:
            while self._changes:
                self._changes.popleft()()
            if self._closing and len(self._selector.get_map()) == 1:
                break  # only the waker is left: every DISCONNECT was written and paho closed the socket
            for key, mask in self._selector.select(timeout=MISC_INTERVAL_S / 2):
                client = key.data
                if client is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    continue
                try:
                    if mask & selectors.EVENT_READ:
                        client.loop_read()
                    if mask & selectors.EVENT_WRITE:
                        client.loop_write()
                        # paho tracks "registered for write" in a flag that a publish on another
                        # thread can read between paho's last write and its unregistering: so the
                        # selector follows what paho has left to send, not the flag.
                        self._watch(key, write=client.want_write())
                except Exception:  # one client's failure must not stop the others' I/O
                    log.exception("link pool: I/O of %s failed", client)
            if time.monotonic() >= next_misc:
                next_misc = time.monotonic() + MISC_INTERVAL_S
                self._misc()

    def _misc(self) -> None:
        # The selector's map is the set of open connections: a failed change (a socket paho closed
        # before the change was applied) removes the socket from it too.
        for key in list(self._selector.get_map().values()):
            client = key.data
            if client is None:
                continue
            try:
                client.loop_misc()
                if client.want_write():
                    self._watch(key, write=True)
            except Exception:
                log.exception("link pool: keepalive of %s failed", client)
        now = time.monotonic()
        for link, (due, backoff) in list(self._lost.items()):
            if due <= now and not self._closing:
                del self._lost[link]
                if self._reviver is None:
                    self._reviver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-link-revive")
                self._reviver.submit(link.revive, min(2 * backoff, REVIVE_MAX_S))


class PooledLink(AckedClient):
    """A device connection whose network I/O runs on a `LinkPool`."""

    def __init__(self, spec: LinkSpec, pool: LinkPool) -> None:
        super().__init__(spec)
        self._pool = pool
        # Serialises the runner's connect, drop and close with the pool's revival of a lost link.
        self._state = threading.Lock()
        self._live = False  # connected on purpose: a loss now is unexpected and gets revived
        client = self._client
        client.on_socket_open = lambda c, u, sock: pool.change("open", sock, c)
        client.on_socket_close = lambda c, u, sock: pool.change("close", sock)
        client.on_socket_register_write = lambda c, u, sock: pool.change("write", sock)
        client.on_socket_unregister_write = lambda c, u, sock: pool.change("read", sock)
        client.on_disconnect = self._on_disconnect

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self._live:  # runs on the loop thread: lost, neither dropped nor closed by the runner
            log.warning("device %s lost its connection (%s); reconnecting", self.spec.client_id, reason)
            self._pool.lost(self)

    def open(self, *, again: bool = False) -> None:
        """Connect and wait for CONNACK."""
        with self._state:
            self._open(again=again)

    def _open(self, *, again: bool) -> None:
        broker, device = self.spec.broker, self.spec.client_id
        self._connected.clear()
        self._refused = None
        try:
            if again:
                self._client.reconnect()
            else:
                self._client.connect(broker.host, broker.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise BrokerUnavailable(f"device {device}: cannot reach the broker at {broker}: {exc}") from exc
        if not self._connected.wait(CONNECT_TIMEOUT_S):
            self._client.disconnect()
            raise BrokerUnavailable(
                f"device {device}: no answer from the broker at {broker} in {CONNECT_TIMEOUT_S:g} s"
            )
        if self._refused is not None:
            raise DeviceRefused(
                f"the broker at {broker} refused device {device} (user {self.spec.username!r}): "
                f"{self._refused}; check the device's secret in the credentials file and that the "
                "broker knows the device"
            )
        self._live = True

    def revive(self, backoff: float) -> None:
        """Reconnect after an unexpected loss (helper thread); on failure, try again later."""
        with self._state:
            if not self._live or self._client.is_connected():
                return  # dropped or closed meanwhile, or back already
            try:
                self._client.reconnect()  # CONNACK comes on the loop thread; paho then resends
                return
            except OSError as exc:
                log.warning(
                    "device %s: reconnect failed (%s); next try in %g s", self.spec.client_id, exc, backoff
                )
        self._pool.call(lambda: self._pool.lost(self, backoff))

    def drop(self) -> None:
        """Close the socket without DISCONNECT (after in-flight messages were acknowledged).

        The broker then publishes the last will: the platform sees the device go offline.
        """
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=DRAIN_BEFORE_DROP_S)
        with self._state:
            self._live = False
            sock = self._client.socket()

            def cut() -> None:  # on the loop thread, so no read of this socket is under way
                if isinstance(sock, socket.socket):
                    self._pool.forget(sock)
                    with contextlib.suppress(OSError):  # already gone
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()  # paho's later close of it is a no-op

            self._pool.call(cut)
            self._dropped = True

    def reconnect(self) -> None:
        """A fresh connection after `drop` (the will set again), as the device's firmware makes."""
        with self._lock:
            self._published = self._acknowledged  # nothing is in flight: drop waited for it
        self._dropped = False
        self.open(again=True)

    def close(self, *, timeout: float) -> int:
        """Wait for acknowledgements, then disconnect cleanly; returns how many are missing."""
        if self._dropped:
            return 0  # offline already; the broker published the will
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=timeout)
            missing = self._published - self._acknowledged
        with self._state:
            self._live = False
            self._client.disconnect()  # the loop thread writes DISCONNECT, then paho closes the socket
        return max(0, missing)
