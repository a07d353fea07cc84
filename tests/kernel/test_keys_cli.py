"""`midika keys ...`, driven in-process through Typer's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from midika.keys import KeyRing, Role
from midika.keys_cli import app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Settings come from the environment of each command; run in tmp_path so no stray .env applies.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIDIKA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_create_shows_the_key_once_and_stores_its_hash(data_dir: Path) -> None:
    result = _run("create", "--role", "evaluator", "--trial", "onjuku-rip", "--name", "Chiba univ.")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    record = KeyRing(path=data_dir / "api_keys.json").authenticate(key)
    assert record is not None
    assert (record.role, record.trials, record.name) == (Role.EVALUATOR, ("onjuku-rip",), "Chiba univ.")
    assert key not in (data_dir / "api_keys.json").read_text()

    listing = _run("list")
    assert listing.exit_code == 0
    assert record.id in listing.stdout and "onjuku-rip" in listing.stdout and "active" in listing.stdout
    assert key not in listing.stdout


def test_revoke(data_dir: Path) -> None:
    key = _run("create", "--role", "admin").stdout.strip().splitlines()[0]
    ring = KeyRing(path=data_dir / "api_keys.json")
    record = ring.authenticate(key)
    assert record is not None
    result = _run("revoke", record.id)
    assert result.exit_code == 0, result.output
    assert ring.authenticate(key) is None
    assert "active" not in _run("list").stdout.splitlines()[1]


def test_bad_role_and_missing_trial_are_refused(data_dir: Path) -> None:
    assert _run("create", "--role", "root").exit_code != 0
    result = _run("create", "--role", "viewer")
    assert result.exit_code != 0
    assert "--trial" in str(result.exception) + result.output
