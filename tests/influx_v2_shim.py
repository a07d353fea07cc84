"""TEST-ONLY: serve InfluxDB's v2 write endpoint in front of an InfluxDB 1.x that lacks it.

midika writes through influxdb-client, which speaks `POST /api/v2/write` — served natively by
InfluxDB 1.8+, 2.x and 3.x. The InfluxDB our CI can install (Debian's 1.6.7) predates that endpoint,
so this shim translates a v2 write into the 1.x `/write` it does have and forwards every other
request (`/query`, `/ping`) unchanged. That way the tests exercise the real client write path, the
real storage engine and real InfluxQL; only the URL and parameter spelling of a write is adapted:

    /api/v2/write?org=…&bucket=db/rp&precision=us  ->  /write?db=db&rp=rp&precision=u
    Authorization: Token user:password             ->  u=user&p=password

The shim is not part of midika and must never sit in front of a production server: point midika
straight at InfluxDB 1.8+, 2.x or 3.x. An unreachable upstream answers 502, as a real reverse proxy
would, so the store's handling of 5xx responses is exercised too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

_PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
# Hop-by-hop headers, and those httpx sets itself from the forwarded body.
_DROPPED_HEADERS = {"host", "connection", "keep-alive", "transfer-encoding", "content-length"}
# The v2 API names its error codes; 1.x only has the status.
_V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    413: "request too large",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server offers; the client pools connections
    # Headers and body go out in separate writes: with Nagle's algorithm on, each response would
    # wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _ShimServer

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        if urlsplit(self.path).path == "/api/v2/write":
            self._write_v2()
        else:
            self._forward()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _write_v2(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query))
        bucket = params.get("bucket", "")
        database, _, retention_policy = bucket.partition("/")
        v1 = {"db": database, "precision": _PRECISIONS.get(params.get("precision", "ns"), "n")}
        if retention_policy:
            v1["rp"] = retention_policy
        scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
        if scheme == "Token" and ":" in credentials:
            v1["u"], _, v1["p"] = credentials.partition(":")
        headers = {k: v for k, v in self.headers.items() if k.lower() in {"content-type", "content-encoding"}}
        body = self._body()
        try:
            response = self.server.upstream.post(f"/write?{urlencode(v1)}", content=body, headers=headers)
        except httpx.TransportError as exc:
            self._reply_v2_error(HTTPStatus.BAD_GATEWAY, f"upstream unreachable: {exc}")
            return
        if response.status_code < 300:
            self._reply(response.status_code, b"", {})
            return
        try:
            message = str(response.json().get("error", response.text))
        except ValueError:
            message = response.text
        self._reply_v2_error(response.status_code, message)

    def _forward(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED_HEADERS}
        body = self._body() if self.command == "POST" else None
        try:
            response = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        except httpx.TransportError as exc:
            self._reply_v2_error(HTTPStatus.BAD_GATEWAY, f"upstream unreachable: {exc}")
            return
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS}
        kept.pop("content-encoding", None)  # httpx has already decoded the body
        self._reply(response.status_code, response.content, kept)

    def _reply_v2_error(self, status: int, message: str) -> None:
        body = json.dumps({"code": _V2_CODES.get(status, "internal error"), "message": message}).encode()
        self._reply(status, body, {"Content-Type": "application/json; charset=utf-8"})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ShimServer(ThreadingHTTPServer):
    # Handler threads are joined on close; `close_connections` first ends the kept-alive ones.
    daemon_threads = False
    block_on_close = True
    upstream: httpx.Client

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open client connection, so the handler threads waiting on them return."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class V2WriteShim:
    """The shim on a free loopback port, in a background thread; a context manager."""

    def __init__(self, *, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self._server: _ShimServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give influxdb-client and the store instead of the server's."""
        if self._server is None:
            raise RuntimeError("the shim is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Listen on a free port and serve in a daemon thread."""
        server = _ShimServer(("127.0.0.1", 0))
        server.upstream = httpx.Client(base_url=self.upstream_url, timeout=30)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="influx-v2-shim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the upstream connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        server.upstream.close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> V2WriteShim:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
