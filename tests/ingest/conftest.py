"""Fixtures the ingest's test modules share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from midika.store.base import Store
from midika.store.duckdb import DuckDBStore
from midika.store.influx import InfluxStore


@pytest.fixture(params=["duckdb", "influxdb"])
def real_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each real store, empty: DuckDB, then a fresh database of a real influxd (behind the v2 write shim)."""
    if request.param == "duckdb":
        opened: Store = DuckDBStore(path=tmp_path / "midika.duckdb")
    else:
        _, shim = request.getfixturevalue("influx")
        opened = InfluxStore(
            url=shim.url, database=request.getfixturevalue("database"), retention_policy="autogen"
        )
    yield opened
    opened.close()
