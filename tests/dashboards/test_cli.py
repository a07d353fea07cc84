"""`midika dashboards build` and what `push` would send (Grafana itself cannot run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashboards import provisioning
from dashboards.cli import app
from dashboards.errors import DashboardError
from dashboards.push import dashboard_payload
from devices.trial_files import read_trial_files
from tests.conftest import REPO

TRIALS = [source.trial for source in read_trial_files(REPO / "trials")]


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings come from the environment of each command; run in tmp_path so no stray .env applies.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIDIKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MIDIKA_TRIALS_DIR", str(REPO / "trials"))


def test_build_writes_every_file_and_removes_dashboards_of_deleted_trials(tmp_path: Path) -> None:
    out = tmp_path / "grafana"
    (out / "dashboards").mkdir(parents=True)
    (out / "dashboards" / "midika-old-trial.json").write_text("{}")
    (out / "dashboards" / "someone-elses.json").write_text("{}")
    result = CliRunner().invoke(app, ["build", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = provisioning.render(TRIALS)
    for relative, text in files.items():
        assert (out / relative).read_text(encoding="utf-8") == text
    assert sorted(result.stdout.split()) == sorted(str(out / relative) for relative in files)
    assert not (out / "dashboards" / "midika-old-trial.json").exists()
    assert (out / "dashboards" / "someone-elses.json").exists()
    for trial in TRIALS:
        assert (out / "dashboards" / f"midika-{trial.id}.json").is_file()


def test_build_refuses_a_file_as_output(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(DashboardError, match="is a file"):
        provisioning.write({}, tmp_path / "taken")


def test_push_payload_replaces_the_dashboard_with_the_same_uid() -> None:
    document = provisioning.dashboards(TRIALS)[1]
    payload = dashboard_payload(document, folder_uid="midika")
    assert payload["overwrite"] is True
    assert payload["folderUid"] == "midika"
    assert payload["dashboard"]["id"] is None
    assert payload["dashboard"]["uid"] == document["uid"]
    assert {k: v for k, v in payload["dashboard"].items() if k != "id"} == document
    json.dumps(payload)  # what grafana-client sends as the request body
    with pytest.raises(DashboardError, match="without a uid"):
        dashboard_payload({"title": "x"})


def test_the_midika_command_mounts_dashboards() -> None:
    midika = Path(sys.executable).parent / "midika"
    result = subprocess.run(
        [str(midika), "dashboards", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "build" in result.stdout and "push" in result.stdout
    push_help = CliRunner().invoke(app, ["push", "--help"])
    assert "--url" in push_help.stdout and "--token" in push_help.stdout
