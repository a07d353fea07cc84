"""A real `influxd` (1.x) for tests and benchmarks: generated config, free ports, files under a temp dir.

Test and bench only; it is not part of the installed package. Everything the server would do on its
own (usage reporting, the `_internal` monitor database, continuous queries, UDP/Graphite listeners)
is off, so a test sees only what it wrote.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.conftest import free_port

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # free_port() can race with another process; a fresh pair of ports fixes that


def _config(root: Path, *, http_port: int, rpc_port: int, auth: bool, max_body_size: int) -> str:
    return f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / "meta"}"
  logging-enabled = false

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  index-version = "inmem"
  query-log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
  pprof-enabled = false
  max-body-size = {max_body_size}

[logging]
  level = "warn"
  suppress-logo = true
"""


class InfluxServer:
    """One `influxd -config <generated>` process; a context manager that starts and stops it.

    With `admin` set, authentication is on and that (user, password) is created as the admin.
    """

    def __init__(
        self,
        *,
        program: str,
        root: Path,
        admin: tuple[str, str] | None = None,
        max_body_size: int = 25_000_000,
    ) -> None:
        self.program = program
        self.root = root
        self.admin = admin
        self.max_body_size = max_body_size
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL of the HTTP API, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start influxd, wait until /ping answers and create the admin user if there is one."""
        self.root.mkdir(parents=True, exist_ok=True)
        failure = ""
        for _ in range(_START_ATTEMPTS):
            self.http_port, rpc_port = free_port(), free_port()
            conf = self.root / "influxdb.conf"
            conf.write_text(
                _config(
                    self.root,
                    http_port=self.http_port,
                    rpc_port=rpc_port,
                    auth=self.admin is not None,
                    max_body_size=self.max_body_size,
                )
            )
            log = (self.root / "influxd.log").open("ab")
            self._process = subprocess.Popen(
                [self.program, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
            log.close()
            if self._wait_ready():
                if self.admin is not None:
                    user, password = self.admin
                    # With auth on, influxd accepts this one statement unauthenticated: the first admin.
                    self._post_query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")
                return
            failure = self._log_tail()
            self.stop()
        raise RuntimeError(f"influxd did not start; log tail:\n{failure}")

    def stop(self) -> None:
        """Terminate influxd, killing it if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT_S)

    def query(self, statement: str, *, database: str | None = None) -> dict[str, Any]:
        """Run an InfluxQL statement as the admin; raise on an HTTP or statement error."""
        body = self._post_query(statement, database=database)
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        if errors:
            raise RuntimeError(f"{statement}: {errors}")
        return body

    def create_database(self, name: str) -> None:
        """Create database `name` (with its default `autogen` retention policy)."""
        self.query(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        """Drop database `name` and its data."""
        self.query(f'DROP DATABASE "{name}"')

    def _post_query(self, statement: str, *, database: str | None = None) -> dict[str, Any]:
        params = {"q": statement} | ({"db": database} if database else {})
        auth = httpx.BasicAuth(*self.admin) if self.admin is not None else None
        response = httpx.post(f"{self.url}/query", data=params, auth=auth, timeout=30)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        log = self.root / "influxd.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""

    def __enter__(self) -> InfluxServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
