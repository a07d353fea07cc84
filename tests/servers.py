"""Real servers for integration tests: a Mosquitto broker on a free loopback port.

`Mosquitto` writes its own mosquitto.conf into a temporary folder, starts `mosquitto -c` in the
foreground, waits until the port accepts connections and stops it again (terminate, then kill).
Use it as a context manager, or through the `mosquitto` fixture of a test module.

With `persistence=True` it keeps its sessions and queued messages in `tmp/persistence/`, so a
`restart` (stop, then start on the same port) brings them back as a production broker would.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.conftest import free_port, require_program


class Mosquitto:
    """One mosquitto process listening on 127.0.0.1, logging to `log_file`; persistence off unless asked."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tmp: Path,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        allow_anonymous: bool | None = None,
        port: int | None = None,
        persistence: bool = False,
        max_queued_messages: int | None = None,
    ) -> None:
        self.program = require_program("mosquitto")
        self.tmp = tmp
        self.password_file = password_file
        self.acl_file = acl_file
        # Mosquitto 2 refuses anonymous clients once a password file is set; so do we, unless told.
        self.allow_anonymous = password_file is None if allow_anonymous is None else allow_anonymous
        self.port = port or free_port()
        self.persistence = persistence
        # Mosquitto's default of 1000 drops what queues up beyond it for a client that is away.
        self.max_queued_messages = max_queued_messages
        self.persistence_dir = tmp / "persistence"
        self.conf_file = tmp / "mosquitto.conf"
        self.log_file = tmp / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """mqtt://host:port, for settings and BrokerAddress.parse."""
        return f"mqtt://{self.host}:{self.port}"

    def config(self) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"log_dest file {self.log_file}",
            "log_type all",
            "connection_messages true",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.persistence_dir}/",  # mosquitto wants the trailing slash
                "autosave_interval 1",  # a clean stop saves too; this bounds what a crash loses
                "autosave_on_changes false",
            ]
        else:
            lines.append("persistence false")
        if self.max_queued_messages is not None:
            lines.append(f"max_queued_messages {self.max_queued_messages}")
        if os.geteuid() == 0:  # as root, mosquitto switches to user `mosquitto`, who cannot read tmp
            lines.append(f"user {getpass.getuser()}")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start mosquitto and wait until it accepts TCP connections."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        if self.persistence:
            self.persistence_dir.mkdir(exist_ok=True)
        self.conf_file.write_text(self.config(), encoding="utf-8")
        output = (self.tmp / "mosquitto.out").open("ab")  # appends: a restart keeps the first run's output
        self._process = subprocess.Popen(
            [self.program, "-c", str(self.conf_file)], stdout=output, stderr=subprocess.STDOUT
        )
        output.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._process.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not listen on {self.port} in {timeout} s:\n{self.logs()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate mosquitto; kill it if it has not exited after five seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self, timeout: float = 10.0) -> Mosquitto:
        """Stop mosquitto (SIGTERM: it saves its persistence file) and start it again on the same port."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        """Whether the mosquitto process is alive."""
        return self._process is not None and self._process.poll() is None

    def logs(self) -> str:
        """What mosquitto wrote to its log and its console, for failure messages."""
        parts = [
            p.read_text(errors="replace") for p in (self.tmp / "mosquitto.out", self.log_file) if p.exists()
        ]
        return "\n".join(parts)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
