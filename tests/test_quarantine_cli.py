"""`midika quarantine list|reingest` on a real DuckDB file, and its error while another process holds it."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.pipeline import Rejected
from midika.errors import ConfigError
from midika.quarantine_cli import app, parse_since
from midika.store.duckdb import DuckDBStore
from tests.conftest import REPO
from tests.ingest.helpers import BUOY, Trials, run

GOOD = {"ts": "2026-07-20T11:59:00Z", "values": {"hs": 1.2, "tp": 9.0}}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder whose store holds one message quarantined before its trial was known."""
    monkeypatch.setenv("MIDIKA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MIDIKA_TRIALS_DIR", str(REPO / "trials"))
    monkeypatch.setenv("MIDIKA_STORE", "duckdb")
    monkeypatch.delenv("MIDIKA_DUCKDB_PATH", raising=False)
    outcome = run(BUOY + "/up", GOOD, trials=Trials([]))
    assert isinstance(outcome, Rejected)
    store = DuckDBStore(path=tmp_path / "midika.duckdb")
    store.write_quarantine([outcome.quarantine])
    store.close()
    return tmp_path / "midika.duckdb"


def test_list_then_reingest(env: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--reason", "unknown_trial", "--since", "2026-07-01T00:00Z"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split()[:3] == ["id", "received", "(UTC)"]
    assert row.split()[3:6] == ["unknown_trial", "onjuku-rip", "onjuku-buoy-01"]
    ident = row.split()[0]

    done = runner.invoke(app, ["reingest", "--id", ident, "--id", "99"])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"{ident}: stored (2 readings, 0 already stored): stored",
        "99: not_found: no quarantined message",
    ]
    assert runner.invoke(app, ["list"]).output.splitlines()[1:] == []


def test_a_held_duckdb_file_points_to_the_api(env: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(env)!r}); print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        result = subprocess.run(
            [str(Path(sys.executable).parent / "midika"), "quarantine", "list"],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        holder.communicate("")
    assert result.returncode == 2, result.stderr
    assert "/api/v1/admin/quarantine" in result.stderr and "open in another process" in result.stderr


def test_since() -> None:
    now = datetime(2026, 7, 20, 12, tzinfo=UTC)
    assert parse_since("2h", now=now) == datetime(2026, 7, 20, 10, tzinfo=UTC)
    assert parse_since("2026-07-20T09:00+09:00", now=now) == datetime(2026, 7, 20, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday", now=now)
