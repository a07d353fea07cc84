"""`midika devices ...`, driven in-process through Typer's test runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from devices.cli import app
from devices.registry import Registry
from devices.trial_files import read_trial_files
from midika.errors import NotFound
from tests.conftest import REPO
from tests.devices.factories import trial_data, write_trial


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Settings come from the environment of each command; run in tmp_path so no stray .env applies.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIDIKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MIDIKA_TRIALS_DIR", str(REPO / "trials"))
    monkeypatch.setenv("MIDIKA_CREDENTIAL_ITERATIONS", "1000")
    return tmp_path / "data"


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _fresh_registry(data_dir: Path) -> Registry:
    return Registry.load(trials_dir=REPO / "trials", state_file=data_dir / "registry.json")


def _password(result: Result) -> str:
    match = re.search(r"^  password  (\S+)$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    return match.group(1)


def test_help_of_every_command() -> None:
    for command in ("trials", "list", "credentials", "revoke", "validate"):
        result = _run(command, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.stdout


def test_trials(data_dir: Path) -> None:
    result = _run("trials")
    assert result.exit_code == 0, result.output
    assert re.search(r"^goto-tuna\s.*五島市 \(422118\)\s+fisheries", result.stdout, re.MULTILINE)
    assert re.search(
        r"^onjuku-rip\s.*御宿町 \(124435\)\s+disaster_prevention\s+4\s+4\s+no", result.stdout, re.M
    )


def test_list_shows_credential_state(data_dir: Path) -> None:
    result = _run("list", "onjuku-rip")
    assert result.exit_code == 0, result.output
    assert re.search(r"^onjuku-rip\s+onjuku-cam-01\s+rip-camera\s+main-beach-west\s+-$", result.stdout, re.M)
    assert "goto-" not in result.stdout
    assert _run("credentials", "onjuku-rip", "onjuku-cam-01").exit_code == 0
    listed = _run("list").stdout
    assert re.search(r"^onjuku-rip\s+onjuku-cam-01\s.*\s\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", listed, re.M)
    assert re.search(r"^onjuku-rip\s+onjuku-cam-02\s.*\s-$", listed, re.M)
    assert "goto-cage01-wq-01m" in listed


def test_list_of_unknown_trial(data_dir: Path) -> None:
    result = _run("list", "mashike")
    assert isinstance(result.exception, NotFound)
    shipped = sorted(path.stem for path in (REPO / "trials").glob("*.yaml"))
    assert f"known trials: {', '.join(shipped)})" in str(result.exception)


def test_credentials_are_shown_once_and_only_hashed(data_dir: Path) -> None:
    result = _run("credentials", "onjuku-rip", "onjuku-cam-01")
    assert result.exit_code == 0, result.output
    secret = _password(result)
    assert "  username  onjuku-cam-01" in result.stdout
    for kind in ("up", "evt", "status", "down"):
        assert f"midika/v1/onjuku-rip/onjuku-cam-01/{kind}" in result.stdout
    assert "shown only once" in result.stderr
    state = (data_dir / "registry.json").read_text()
    assert secret not in state
    assert json.loads(state)["credentials"]["onjuku-cam-01"]["hash"].startswith("$7$1000$")
    registry = _fresh_registry(data_dir)
    assert registry.verify("onjuku-cam-01", secret)
    assert secret not in _run("list").output  # never shown again


def test_credentials_are_not_replaced_by_accident(data_dir: Path) -> None:
    first = _password(_run("credentials", "goto-tuna", "goto-feeder-01"))
    again = _run("credentials", "goto-tuna", "goto-feeder-01")
    assert again.exit_code == 1
    assert "--replace" in again.stderr
    assert "password" not in again.stdout
    assert _fresh_registry(data_dir).verify("goto-feeder-01", first)
    replaced = _run("credentials", "goto-tuna", "goto-feeder-01", "--replace")
    assert replaced.exit_code == 0, replaced.output
    second = _password(replaced)
    registry = _fresh_registry(data_dir)
    assert registry.verify("goto-feeder-01", second)
    assert not registry.verify("goto-feeder-01", first)


def test_credentials_for_a_device_of_another_trial(data_dir: Path) -> None:
    result = _run("credentials", "goto-tuna", "onjuku-cam-01")
    assert isinstance(result.exception, NotFound)
    assert "belongs to trial 'onjuku-rip'" in str(result.exception)
    assert not (data_dir / "registry.json").exists()


def test_revoke(data_dir: Path) -> None:
    secret = _password(_run("credentials", "onjuku-rip", "onjuku-buoy-01"))
    result = _run("revoke", "onjuku-rip", "onjuku-buoy-01")
    assert result.exit_code == 0, result.output
    assert "revoked" in result.stdout
    assert not _fresh_registry(data_dir).verify("onjuku-buoy-01", secret)
    assert "nothing to revoke" in _run("revoke", "onjuku-rip", "onjuku-buoy-01").stdout


def test_validate_shipped_trials(data_dir: Path) -> None:
    result = _run("validate")
    assert result.exit_code == 0, result.output
    trials = read_trial_files(REPO / "trials")
    devices = sum(len(source.trial.devices) for source in trials)
    assert re.match(rf"ok: {len(trials)} trials, {devices} devices in ", result.stdout)


def test_validate_names_every_problem(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "trials"
    broken = trial_data("alpha")
    broken["devices"][0]["profile"] = "nothing"
    write_trial(folder, broken)
    (folder / "beta.yaml").write_text("id: beta\nname: [\n")
    monkeypatch.setenv("MIDIKA_TRIALS_DIR", str(folder))
    result = _run("validate")
    assert result.exit_code == 1
    assert "alpha.yaml" in result.stderr and "devices.0.profile" in result.stderr
    assert "no profile 'nothing'" in result.stderr
    assert "beta.yaml:3: YAML syntax error" in result.stderr
    assert "2 problem(s)" in result.stderr
