"""Many device connections on one network thread: paho clients driven by an epoll selector.

`PahoLink` gives each device a paho network thread, and paho's loop uses select(), which cannot
watch descriptors above 1024: about 340 devices per process. `LinkPool` uses paho's external-loop
callbacks instead, so one thread and one epoll serve thousands of devices. Selector changes asked
for by other threads (a publish wanting to write) are queued and applied by the loop thread, which
a socketpair wakes up.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt

from simulators.errors import BrokerUnavailable, DeviceRefused
from simulators.link import CONNECT_TIMEOUT_S, DRAIN_BEFORE_DROP_S, KEEPALIVE_S, AckedClient, LinkSpec

log = logging.getLogger(__name__)

MISC_INTERVAL_S = 1.0  # keepalive pings and retries: paho's loop_misc for every client


class LinkPool:
    """One network thread for many paho clients; use `connect` as the runner's link factory."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full pipe already means "wake up"
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._changes: deque[tuple[str, Any, mqtt.Client | None]] = deque()
        self._clients: set[mqtt.Client] = set()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="sim-link-pool", daemon=True)
        self._thread.start()

    def connect(self, spec: LinkSpec) -> PooledLink:
        """Connect one device; raises DeviceRefused or BrokerUnavailable like PahoLink.connect."""
        link = PooledLink(spec, self)
        link.open()
        return link

    def close(self) -> None:
        """Stop the network thread (links should be closed first)."""
        self._running = False
        self._wake()
        self._thread.join(10)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- called from any thread ---------------------------------------------------------------------

    def change(self, action: str, sock: Any, client: mqtt.Client | None = None) -> None:
        """Queue a selector change for the loop thread."""
        self._changes.append((action, sock, client))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the loop thread ----------------------------------------------------------------------------

    def _apply(self) -> None:
        while self._changes:
            action, sock, client = self._changes.popleft()
            try:
                if action == "open" and client is not None:
                    self._selector.register(sock, selectors.EVENT_READ, client)
                    self._clients.add(client)
                elif action == "close":
                    key = self._selector.unregister(sock)
                    self._clients.discard(key.data)
                else:
                    key = self._selector.get_key(sock)
                    mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if action == "write" else 0)
                    self._selector.modify(sock, mask, key.data)
            except (KeyError, ValueError, OSError):
                pass  # a socket closed before its change was applied

    def _loop(self) -> None:
        next_misc = time.monotonic() + MISC_INTERVAL_S
        while self._running:
            self._apply()
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
                except Exception:  # one client's failure must not stop the others' I/O
                    log.exception("link pool: I/O of %s failed", client)
            if time.monotonic() >= next_misc:
                next_misc = time.monotonic() + MISC_INTERVAL_S
                for client in list(self._clients):
                    try:
                        client.loop_misc()
                    except Exception:
                        log.exception("link pool: keepalive of %s failed", client)


class PooledLink(AckedClient):
    """A device connection whose network I/O runs on a `LinkPool`."""

    def __init__(self, spec: LinkSpec, pool: LinkPool) -> None:
        super().__init__(spec)
        self._pool = pool
        client = self._client
        client.on_socket_open = lambda c, u, sock: pool.change("open", sock, c)
        client.on_socket_close = lambda c, u, sock: pool.change("close", sock)
        client.on_socket_register_write = lambda c, u, sock: pool.change("write", sock)
        client.on_socket_unregister_write = lambda c, u, sock: pool.change("read", sock)

    def open(self, *, again: bool = False) -> None:
        """Connect and wait for CONNACK."""
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

    def drop(self) -> None:
        """Close the socket without DISCONNECT (after in-flight messages were acknowledged)."""
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=DRAIN_BEFORE_DROP_S)
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            self._pool.change("close", sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._dropped = True

    def reconnect(self) -> None:
        """A fresh connection after `drop`."""
        with self._lock:
            self._published = self._acknowledged
        self._dropped = False
        self.open(again=True)

    def close(self, *, timeout: float) -> int:
        """Wait for acknowledgements, then disconnect cleanly; returns how many are missing."""
        if self._dropped:
            return 0
        with self._lock:
            self._lock.wait_for(lambda: self._acknowledged >= self._published, timeout=timeout)
            missing = self._published - self._acknowledged
        self._client.disconnect()
        return max(0, missing)
