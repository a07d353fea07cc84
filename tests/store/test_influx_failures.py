"""InfluxStore failure reporting against real influxd processes: nothing is swallowed, and the
retryable/permanent split is right (stopped server, bad request, body too large, bad credentials).

Each test starts its own small influxd, because it stops it or configures it unusually.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from midika.errors import ConfigError, StoreError, StoreUnavailable
from midika.models.records import Reading, StatusReport
from midika.store.base import ReadingQuery
from midika.store.influx import InfluxStore
from tests.conftest import free_port, require_program
from tests.influx_server import InfluxServer
from tests.influx_v2_shim import V2WriteShim

pytestmark = pytest.mark.servers

T0 = datetime(2025, 7, 1, tzinfo=UTC)
DB = "midika"


def reading(i: int, *, device: str = "dev-1", text: str | None = None) -> Reading:
    """A numeric reading (a text one when `text` is given) at T0 + i seconds."""
    return Reading(
        trial="t1",
        device=device,
        measurement="note" if text is not None else "temp",
        ts=T0 + timedelta(seconds=i),
        value=None if text is not None else 20.0 + i,
        ingest_ts=T0,
        text=text,
        seq=i,
    )


@contextmanager
def running_influx(
    tmp_path: Path, *, admin: tuple[str, str] | None = None, max_body_size: int = 25_000_000
) -> Iterator[tuple[InfluxServer, V2WriteShim]]:
    """A started influxd with database DB, and the v2 write shim in front of it."""
    program = require_program("influxd")
    server = InfluxServer(
        program=program, root=tmp_path / "influxd", admin=admin, max_body_size=max_body_size
    )
    with server, V2WriteShim(upstream_url=server.url) as shim:
        server.create_database(DB)
        yield server, shim


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[tuple[InfluxServer, V2WriteShim]]:
    """A disposable influxd (tests may stop it) behind the shim."""
    with running_influx(tmp_path) as running:
        yield running


def test_writes_to_a_stopped_influxd_raise_store_unavailable(
    influx: tuple[InfluxServer, V2WriteShim],
) -> None:
    server, shim = influx
    store = InfluxStore(url=shim.url, database=DB)
    assert store.write_readings([reading(0)]).written == 1
    server.stop()
    # The shim answers 502 for the dead upstream, as a reverse proxy would: a retryable 5xx.
    with pytest.raises(StoreUnavailable) as status_failure:
        store.write_status([StatusReport(trial="t1", device="dev-1", ts=T0, ingest_ts=T0, online=True)])
    assert status_failure.value.retryable
    assert "502" in str(status_failure.value)
    with pytest.raises(StoreUnavailable):
        store.write_readings([reading(1)])
    with pytest.raises(StoreUnavailable):
        store.query_readings(ReadingQuery(trial="t1"))
    store.close()


def test_writes_with_nothing_listening_raise_store_unavailable() -> None:
    store = InfluxStore(url=f"http://127.0.0.1:{free_port()}", database=DB, timeout_s=2)
    report = StatusReport(trial="t1", device="dev-1", ts=T0, ingest_ts=T0, online=False)
    with pytest.raises(StoreUnavailable) as failure:
        store.write_status([report])
    assert failure.value.retryable
    with pytest.raises(StoreUnavailable):
        store.write_readings([reading(0)])
    store.close()


def test_a_rejected_write_raises_a_permanent_store_error(influx: tuple[InfluxServer, V2WriteShim]) -> None:
    server, shim = influx
    # Someone wrote `value` as a string into this shard: InfluxDB rejects our float with a 400.
    httpx.post(
        f"{server.url}/write",
        params={"db": DB, "precision": "s"},
        content=f'readings,device=dev-9,measurement=temp,trial=t1 value="x" {int(T0.timestamp())}',
    ).raise_for_status()
    store = InfluxStore(url=shim.url, database=DB)
    with pytest.raises(StoreError) as failure:
        store.write_readings([reading(5)])
    assert not isinstance(failure.value, StoreUnavailable)
    assert not failure.value.retryable
    assert "400" in str(failure.value) and "field type conflict" in str(failure.value)
    store.close()


def test_a_missing_database_is_a_permanent_error(influx: tuple[InfluxServer, V2WriteShim]) -> None:
    _, shim = influx
    store = InfluxStore(url=shim.url, database="no_such_db")
    with pytest.raises(StoreError) as write_failure:
        store.write_status([StatusReport(trial="t1", device="dev-1", ts=T0, ingest_ts=T0)])
    assert not write_failure.value.retryable and "404" in str(write_failure.value)
    with pytest.raises(StoreError, match="database not found") as read_failure:
        store.query_readings(ReadingQuery(trial="t1"))
    assert not read_failure.value.retryable
    store.close()


def test_a_batch_over_the_body_limit_is_split_and_stored_whole(tmp_path: Path) -> None:
    with running_influx(tmp_path, max_body_size=4096) as (server, shim):
        store = InfluxStore(url=shim.url, database=DB)
        readings = [reading(i, device=f"dev-{i % 7}") for i in range(600)]  # ~70 kB of line protocol
        assert store.write_readings(readings).written == 600
        count = server.query('SELECT count("quality") FROM "readings"', database=DB)
        assert count["results"][0]["series"][0]["values"][0][1] == 600
        # One point over the limit cannot be split further: a permanent error, not a silent drop.
        with pytest.raises(StoreError, match="413") as failure:
            store.write_readings([reading(1000, text="x" * 5000)])
        assert not failure.value.retryable
        store.close()


def test_username_and_password_reach_both_endpoints(tmp_path: Path) -> None:
    with running_influx(tmp_path, admin=("midika", "s3cret")) as (_, shim):
        store = InfluxStore(url=shim.url, database=DB, username="midika", password="s3cret")
        assert store.write_readings([reading(0), reading(1)]).written == 2
        assert len(store.query_readings(ReadingQuery(trial="t1")).items) == 2
        store.close()

        wrong = InfluxStore(url=shim.url, database=DB, username="midika", password="wrong")
        with pytest.raises(StoreError, match="401") as failure:
            wrong.write_status([StatusReport(trial="t1", device="dev-1", ts=T0, ingest_ts=T0)])
        assert not failure.value.retryable
        with pytest.raises(StoreError, match="401"):
            wrong.query_readings(ReadingQuery(trial="t1"))
        wrong.close()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"url": "localhost:8086"}, "url"),
        ({"database": ""}, "database"),
        ({"token": "t", "username": "u"}, "token"),
        ({"password": "p"}, "password"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_configuration_fails_fast_naming_the_key(options: dict[str, object], key: str) -> None:
    config: dict[str, object] = {"url": "http://127.0.0.1:1", "database": DB} | options
    with pytest.raises(ConfigError, match=key):
        InfluxStore(**config)  # type: ignore[arg-type]
