"""Shared fixtures: free ports, and the rule for tests that need a real server program.

Under MIDIKA_REQUIRE_SERVERS=1 (what CI sets) a test whose server program is missing fails;
otherwise it skips, so a developer without mosquitto or influxd can still run the rest.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from midika.settings import Settings

if TYPE_CHECKING:  # the harness modules import this one: import them lazily, in the fixtures
    from tests.influx_server import InfluxServer
    from tests.influx_v2_shim import V2WriteShim

REQUIRE_SERVERS = os.environ.get("MIDIKA_REQUIRE_SERVERS") == "1"
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port that was free a moment ago on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_program(name: str) -> str:
    """The path of server program `name`; fail (CI) or skip (developer) when it is missing."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name})"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a fresh data folder and the shipped trials."""
    return Settings.load(data_dir=tmp_path / "data", trials_dir=REPO / "trials")


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxServer, V2WriteShim]]:
    """One real influxd for the whole run, with the test-only v2 write shim in front of it."""
    from tests.influx_server import InfluxServer
    from tests.influx_v2_shim import V2WriteShim

    server = InfluxServer(program=require_program("influxd"), root=tmp_path_factory.mktemp("influxd"))
    with server, V2WriteShim(upstream_url=server.url) as shim:
        yield server, shim


@pytest.fixture
def database(influx: tuple[InfluxServer, V2WriteShim]) -> Iterator[str]:
    """A fresh InfluxDB database, dropped after the test."""
    server, _ = influx
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    yield name
    server.drop_database(name)
