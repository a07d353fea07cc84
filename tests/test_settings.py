"""Every setting is documented in the README, and a bad value names its variable."""

from __future__ import annotations

import pytest

from midika.errors import ConfigError
from midika.settings import ENV_PREFIX, Settings
from tests.conftest import REPO


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_is_documented_in_readme(name: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"`{ENV_PREFIX}{name.upper()}`" in readme


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDIKA_API_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="MIDIKA_API_PORT"):
        Settings.load()


def test_unknown_store_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDIKA_STORE", "sqlite")
    with pytest.raises(ConfigError, match="MIDIKA_STORE"):
        Settings.load()


def test_duckdb_file_defaults_into_data_dir() -> None:
    settings = Settings.load(data_dir="/srv/midika")
    assert str(settings.duckdb_file) == "/srv/midika/midika.duckdb"


def test_duckdb_memory_limit_must_be_a_size(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load(duckdb_memory_limit="256MB").duckdb_memory_limit == "256MB"
    monkeypatch.setenv("MIDIKA_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match="MIDIKA_DUCKDB_MEMORY_LIMIT"):
        Settings.load()
