"""`midika export` against the API served over real HTTP by uvicorn."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from midika.export_cli import export
from tests.api.conftest import Seed
from tests.conftest import free_port


@pytest.fixture(scope="module")
def api_url(app: FastAPI) -> Iterator[str]:
    """The seeded app on a loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _run(*args: str) -> tuple[int, str]:
    cli = typer.Typer()
    cli.command("export")(export)
    cli.command("noop")(lambda: None)  # with two commands, Typer keeps the command name in the line
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


WINDOW = ["--trial", "alpha", "--start", "2026-07-01T00:00:00Z", "--end", "2026-07-02T00:00:00Z"]


def test_export_writes_the_file(api_url: str, admin_key: str, seed: Seed, tmp_path: Path) -> None:
    out = tmp_path / "alpha.csv"
    code, output = _run(
        "export", *WINDOW, "-o", str(out), "--url", api_url, "--key", admin_key, "--site", "beach"
    )
    assert code == 0, output
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0][:3] == ["time", "device", "site"]
    assert len(rows) - 1 == len({(r.ts, r.device) for r in seed.readings_of("alpha") if r.device == "cam-1"})
    assert not (tmp_path / "alpha.csv.part").exists()

    parquet = tmp_path / "alpha.parquet"
    code, output = _run("export", *WINDOW, "-o", str(parquet), "--format", "parquet", "--url", api_url,
                        "--key", admin_key)  # fmt: skip
    assert code == 0, output
    assert pq.read_table(parquet).num_rows == len(seed.readings_of("alpha"))


def test_a_refused_export_says_why_and_leaves_no_file(api_url: str, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    code, output = _run(
        "export", *WINDOW, "-o", str(out), "--url", api_url, "--key", "mk_00000000_" + "A" * 43
    )
    assert code != 0
    assert "401" in output
    assert not out.exists() and not (tmp_path / "x.csv.part").exists()
