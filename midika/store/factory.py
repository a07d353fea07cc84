"""Opens the store the settings choose; the one place that knows every adapter."""

from __future__ import annotations

from midika.errors import ConfigError
from midika.settings import Settings
from midika.store.base import Store


def open_store(settings: Settings) -> Store:
    """The store named by MIDIKA_STORE, connected and with its schema in place."""
    if settings.store == "duckdb":
        # Imported here so a deployment on InfluxDB does not load DuckDB at all.
        from midika.store.duckdb import DuckDBStore

        path = settings.duckdb_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"MIDIKA_DUCKDB_PATH / MIDIKA_DATA_DIR: cannot create {path.parent}: {exc}"
            ) from exc
        return DuckDBStore(path=path)
    if settings.store == "influxdb":
        raise ConfigError(
            "MIDIKA_STORE=influxdb: the InfluxDB store is not available yet; use MIDIKA_STORE=duckdb"
        )
    # Settings validates the value; this guards a new choice added there but not here.
    raise ConfigError(f"MIDIKA_STORE={settings.store}: no such store")
