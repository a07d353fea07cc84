"""Every setting of midika, declared once. Read from `MIDIKA_*` environment variables (or `.env`).

Settings are built once by the entry point (`Settings.load()`) and passed down; no module keeps a
global instance. `tests/test_settings.py` checks that every field is documented in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from midika.errors import ConfigError

ENV_PREFIX = "MIDIKA_"


class Settings(BaseSettings):
    """midika's configuration; every field maps to the environment variable MIDIKA_<FIELD>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True, validate_default=True
    )

    data_dir: Path = Field(Path(".midika"), description="where the embedded store and registry live")
    trials_dir: Path = Field(Path("trials"), description="folder of trial YAML files")
    store: Literal["duckdb", "influxdb"] = Field("duckdb", description="which store adapter to use")
    duckdb_path: Path | None = Field(None, description="DuckDB file; default <data_dir>/midika.duckdb")
    duckdb_memory_limit: str | None = Field(
        None,
        pattern=r"^\d+(\.\d+)? ?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="most memory DuckDB may take, e.g. 256MB (beyond it, it spills to disk); "
        "unset is DuckDB's default, 80% of RAM",
    )

    influx_url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL (1.8+, 2.x, 3.x)")
    influx_token: SecretStr | None = Field(None, description="InfluxDB API token (2.x, 3.x)")
    influx_username: str | None = Field(None, description="InfluxDB user (1.x with auth)")
    influx_password: SecretStr | None = Field(None, description="InfluxDB password (1.x with auth)")
    influx_org: str = Field("-", description="InfluxDB organisation (2.x only)")
    influx_database: str = Field("midika", min_length=1, description="database queried with InfluxQL")
    influx_rp: str | None = Field(None, description="retention policy; unset uses the default")
    influx_bucket: str | None = Field(None, description="write bucket; default <database>/<rp>")
    influx_timeout_s: float = Field(10.0, gt=0, description="InfluxDB request timeout in seconds")

    broker_url: str | None = Field(
        None, description="external broker, e.g. mqtt://host:1883; unset runs the embedded broker"
    )
    broker_host: str = Field("127.0.0.1", description="embedded broker listen address")
    broker_port: int = Field(1883, ge=0, le=65535, description="embedded broker port (0 = any free)")

    api_host: str = Field("127.0.0.1", description="HTTP API listen address")
    api_port: int = Field(8000, ge=0, le=65535, description="HTTP API port")

    ingest_client_id: str = Field("midika-ingest", min_length=1, description="MQTT client id of the ingest")
    ingest_username: str = Field("midika-ingest", min_length=1, description="MQTT user of the ingest")
    ingest_password: SecretStr | None = Field(
        None, description="MQTT password of the ingest on an external broker"
    )
    ingest_batch_size: int = Field(5000, ge=1, le=1_000_000, description="readings per store write")
    ingest_flush_interval_s: float = Field(0.2, gt=0, le=60, description="max seconds a reading waits")
    ingest_max_unacked: int = Field(
        10_000,
        ge=1,
        le=65_535,  # MQTT 5's Receive Maximum, which tells the broker this cap
        description="messages the ingest holds unacknowledged (not yet stored or spooled) before it "
        "stops reading from the broker",
    )
    ingest_session_expiry_s: int = Field(
        7 * 86_400,
        ge=0,
        description="how long the broker keeps the ingest's session and queued messages while it is away",
    )
    ingest_share_group: str | None = Field(
        None,
        pattern=r"^[^/+#]+$",
        description="subscribe as a member of this MQTT shared-subscription group ($share/<group>/...), "
        "so several ingest workers split the load; unset: one worker takes every message",
    )
    ingest_spool_dir: Path | None = Field(
        None, description="the outage spool's folder; default <data_dir>/spool/<ingest_client_id>"
    )
    ingest_spool_max_bytes: int = Field(
        1 << 30,
        ge=0,
        description="most disk the outage spool may take; when full, the ingest stops acknowledging "
        "(0: no spool)",
    )

    metrics_host: str = Field("127.0.0.1", description="listen address of `python -m ingest`'s /metrics")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="port of `python -m ingest`'s /metrics; unset: not served"
    )

    future_tolerance_s: float = Field(
        300.0, ge=0, description="device timestamps further ahead than this are quarantined"
    )
    max_payload_bytes: int = Field(1_048_576, ge=1, description="larger MQTT payloads are quarantined")
    quarantine_payload_cap: int = Field(8192, ge=0, description="bytes of a rejected payload kept")
    # Secrets are 256-bit random tokens, not passwords people choose: key stretching adds no real
    # protection, while every round slows a reconnect storm of a thousand devices on one core.
    credential_iterations: int = Field(
        1000, ge=100, description="PBKDF2-SHA512 rounds for device secrets (mosquitto $7$ format)"
    )

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        """Build settings from the environment; a bad value raises ConfigError naming its variable."""
        try:
            return cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"bad setting: {problems}") from exc

    @property
    def duckdb_file(self) -> Path:
        """The DuckDB file the embedded store uses."""
        return self.duckdb_path or self.data_dir / "midika.duckdb"

    @property
    def spool_dir(self) -> Path:
        """Where the ingest keeps messages while the store is down."""
        return self.ingest_spool_dir or self.data_dir / "spool" / self.ingest_client_id

    @property
    def api_keys_file(self) -> Path:
        """Where API key hashes are kept."""
        return self.data_dir / "api_keys.json"

    @property
    def admin_key_file(self) -> Path:
        """Where `midika up` keeps the local admin key (mode 0600)."""
        return self.data_dir / "admin.key"

    @property
    def registry_file(self) -> Path:
        """Where device credential hashes are kept."""
        return self.data_dir / "registry.json"
