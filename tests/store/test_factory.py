"""open_store picks the adapter MIDIKA_STORE names."""

from __future__ import annotations

import pytest

from midika.errors import ConfigError
from midika.settings import Settings
from midika.store.duckdb import DuckDBStore
from midika.store.factory import open_store
from tests.store.samples import at, reading


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


def test_influxdb_is_not_available_yet(settings: Settings) -> None:
    influx = settings.model_copy(update={"store": "influxdb"})

    with pytest.raises(ConfigError, match="MIDIKA_STORE=influxdb"):
        open_store(influx)
