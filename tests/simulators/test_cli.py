"""`midika simulate`: option parsing, and a short backfill against a real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from midika.errors import ConfigError
from midika.models.trial import Trial
from simulators.cli import parse_duration, parse_start, read_credentials, simulate
from simulators.truth import read_truth
from tests.conftest import REPO
from tests.simulators.brokers import Subscriber, mosquitto


def app() -> typer.Typer:
    command = typer.Typer()
    command.command()(simulate)
    return command


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("6h", 21600),
        ("7d", 604800),
        ("1h30m", 5400),
        ("0.5h", 1800),
        ("2w", 1209600),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "10x", "0s", "-5m", "5m garbage"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--duration"):
        parse_duration(text)


def test_start_times(onjuku: Trial) -> None:
    assert parse_start("2026-08-01", onjuku) == datetime(2026, 7, 31, 15, tzinfo=UTC)  # midnight JST
    assert parse_start("2026-08-01T10:00:00Z", onjuku) == datetime(2026, 8, 1, 10, tzinfo=UTC)
    assert parse_start("2026-08-01T10:00:00+09:00", onjuku) == datetime(2026, 8, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="--start"):
        parse_start("yesterday-ish", onjuku)


def test_credentials_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": "s1", "b": "s2"}), encoding="utf-8")
    assert read_credentials(good, ["a"]) == {"a": "s1", "b": "s2"}
    assert read_credentials(None, ["a", "b"]) == {"a": "", "b": ""}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match="--credentials"):
        read_credentials(bad, ["a"])
    with pytest.raises(ConfigError, match="--credentials"):
        read_credentials(tmp_path / "missing.json", ["a"])


def test_help_lists_every_option() -> None:
    result = CliRunner().invoke(app(), ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--trial",
        "--broker",
        "--credentials",
        "--seed",
        "--speed",
        "--duration",
        "--start",
        "--truth",
    ):
        assert option in result.output


@pytest.mark.servers
def test_backfill_from_the_command_line(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"goto-feeder-01": "x", "goto-cage01-wq-05m": "y"}), encoding="utf-8")
    with mosquitto(tmp_path) as port:
        subscriber = Subscriber(port, "midika/v1/goto-tuna/#")
        try:
            args = [
                "--trial", str(REPO / "trials" / "goto-tuna.yaml"),
                "--broker", f"mqtt://127.0.0.1:{port}",
                "--credentials", str(credentials),
                "--device", "goto-feeder-01", "--device", "goto-cage01-wq-05m",
                "--speed", "inf", "--duration", "1d", "--start", "2026-08-01",
                "--truth", str(tmp_path / "truth.ndjson"),
            ]  # fmt: skip
            result = CliRunner().invoke(app(), args)
            truth = list(read_truth(tmp_path / "truth.ndjson"))
            received = subscriber.wait_for(len(truth))
        finally:
            subscriber.close()
    assert result.exit_code == 0, result.output
    assert "done:" in result.output and f"{len(truth)} messages" in result.output
    assert {t.device for t in truth} == {"goto-feeder-01", "goto-cage01-wq-05m"}
    assert sum(t.kind == "evt" for t in truth) >= 4  # feedings
    assert sorted(r.payload for r in received) == sorted(t.payload for t in truth)


@pytest.mark.servers
def test_a_scenario_file_runs_with_progress_and_logs_its_faults(tmp_path: Path) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text(
        "trial: kahoku-grape\nseed: 3\nstart: '2026-08-01T06:00:00+09:00'\nduration: 6h\nspeed: max\n"
        "devices: [kahoku-field-a, kahoku-worklog-a]\n"
        "faults:\n  - {kind: outage, devices: [kahoku-field-a], at: 1h, for: 2h, batch: 4}\n"
        "  - {kind: duplicates, rate: 0.1}\n",
        encoding="utf-8",
    )
    with mosquitto(tmp_path) as port:
        args = [
            str(scenario),
            "--trial", str(REPO / "trials" / "kahoku-grape.yaml"),
            "--broker", f"mqtt://127.0.0.1:{port}",
            "--truth", str(tmp_path / "truth.ndjson"),
        ]  # fmt: skip
        result = CliRunner().invoke(app(), args)
    assert result.exit_code == 0, result.output
    assert "2 devices, 2 faults" in result.output and "done:" in result.output
    truth = list(read_truth(tmp_path / "truth.ndjson"))
    assert {t.device for t in truth} == {"kahoku-field-a", "kahoku-worklog-a"}
    faults = [json.loads(t.payload)["fault"] for t in truth if t.kind == "fault"]
    assert "outage" in faults
    assert any(t.payload.startswith(b"[") for t in truth if t.kind == "up")  # the late batches
