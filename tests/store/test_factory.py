"""open_store picks the adapter MIDIKA_STORE names."""

from __future__ import annotations

import pytest

from midika.errors import ConfigError
from midika.settings import Settings
from midika.store.base import ReadingQuery
from midika.store.duckdb import DuckDBStore
from midika.store.factory import open_store
from midika.store.influx import InfluxStore
from tests.influx_server import InfluxServer
from tests.influx_v2_shim import V2WriteShim
from tests.store.samples import TRIAL, at, reading


def test_duckdb_is_opened_in_the_data_folder(settings: Settings) -> None:
    assert not settings.data_dir.exists()

    store = open_store(settings)
    try:
        assert isinstance(store, DuckDBStore)
        assert store.write_readings([reading(ts=at(0))]).written == 1
    finally:
        store.close()
    assert settings.duckdb_file.is_file()


def test_an_explicit_duckdb_path_wins(settings: Settings) -> None:
    custom = settings.model_copy(update={"duckdb_path": settings.data_dir / "nested" / "x.duckdb"})

    open_store(custom).close()

    assert (settings.data_dir / "nested" / "x.duckdb").is_file()
    assert not (settings.data_dir / "midika.duckdb").exists()


@pytest.mark.servers
def test_influxdb_is_opened_from_its_settings(
    settings: Settings, influx: tuple[InfluxServer, V2WriteShim], database: str
) -> None:
    _, shim = influx
    chosen = settings.model_copy(
        update={
            "store": "influxdb",
            "influx_url": shim.url,
            "influx_database": database,
            "influx_rp": "autogen",
        }
    )

    store = open_store(chosen)
    try:
        assert isinstance(store, InfluxStore)
        assert store.write_readings([reading(ts=at(0))]).written == 1
        assert [r.ts for r in store.query_readings(ReadingQuery(trial=TRIAL)).items] == [at(0)]
    finally:
        store.close()


def test_bad_influx_url_names_the_setting(settings: Settings) -> None:
    chosen = settings.model_copy(update={"store": "influxdb", "influx_url": "not a url"})

    with pytest.raises(ConfigError, match=r"(?i)influx url"):
        open_store(chosen)
