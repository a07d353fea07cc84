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
        return DuckDBStore(path=path, memory_limit=settings.duckdb_memory_limit)
    if settings.store == "influxdb":
        from midika.store.influx import InfluxStore

        return InfluxStore(
            url=settings.influx_url,
            database=settings.influx_database,
            retention_policy=settings.influx_rp,
            bucket=settings.influx_bucket,
            token=settings.influx_token.get_secret_value() if settings.influx_token else None,
            username=settings.influx_username,
            password=settings.influx_password.get_secret_value() if settings.influx_password else None,
            org=settings.influx_org,
            timeout_s=settings.influx_timeout_s,
        )
    # Settings validates the value; this guards a new choice added there but not here.
    raise ConfigError(f"MIDIKA_STORE={settings.store}: no such store")
