"""Wrong trial files: the error names the file, the line, the path inside the file and the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices.registry import Registry
from midika.errors import ConfigError, TrialError
from tests.devices.factories import trial_data, write_trial

Data = dict[str, Any]


def _load_error(folder: Path) -> str:
    with pytest.raises(TrialError) as info:
        Registry.load(trials_dir=folder, state_file=folder.parent / "registry.json")
    return str(info.value)


def _without_name(d: Data) -> None:
    del d["name"]


def _bad_check_digit(d: Data) -> None:
    d["municipality"]["code"] = "124436"


def _unquoted_code(d: Data) -> None:
    d["municipality"]["code"] = 124435


def _unknown_profile(d: Data) -> None:
    d["devices"][1]["profile"] = "camera"


def _unknown_site(d: Data) -> None:
    d["devices"][0]["site"] = "pier"


def _bad_timezone(d: Data) -> None:
    d["timezone"] = "Asia/Tokio"


def _id_not_file_name(d: Data) -> None:
    d["id"] = "other"


def _bad_device_id(d: Data) -> None:
    d["devices"][0]["id"] = "Cam/01"


def _typo_in_field(d: Data) -> None:
    d["profiles"][0]["measurements"][0]["perod_s"] = 10


def _reversed_range(d: Data) -> None:
    d["profiles"][0]["measurements"][0]["range"] = [500, 0]


def _duplicate_measurement(d: Data) -> None:
    m = d["profiles"][0]["measurements"]
    m.append(dict(m[0]))


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (_without_name, ["alpha.yaml:1: name: Field required"]),
        (_bad_check_digit, ["municipality.code", "check digit of 124436 should be 5"]),
        (_unquoted_code, ["municipality.code", "YAML read 124435 as int; quote it"]),
        (_unknown_profile, ["devices.1.profile (in alpha-02)", "no profile 'camera'", "have ['counter']"]),
        (_unknown_site, ["devices.0.site (in alpha-01)", "no site 'pier'"]),
        (_bad_timezone, ["timezone", "unknown IANA time zone 'Asia/Tokio'"]),
        (_id_not_file_name, ["alpha.yaml:1: id: must be the file name 'alpha', got 'other'"]),
        (_bad_device_id, ["devices.0.id (in Cam/01)", "String should match pattern", "'Cam/01'"]),
        (_typo_in_field, ["profiles.0.measurements.0.perod_s (in count)", "Extra inputs are not permitted"]),
        (_reversed_range, ["profiles.0.measurements.0.range (in count)", "min <= max"]),
        (_duplicate_measurement, ["profiles.0.measurements (in counter)", "'count' is declared twice"]),
    ],
)
def test_wrong_content(tmp_path: Path, break_it: Callable[[Data], None], expected: list[str]) -> None:
    data = trial_data("alpha")
    break_it(data)
    write_trial(tmp_path / "trials", data, name="alpha")
    message = _load_error(tmp_path / "trials")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_line_numbers_point_at_the_mistake(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    data = trial_data("alpha")
    data["devices"][1]["profile"] = "camera"
    path = write_trial(folder, data)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "camera" in text)
    assert f"alpha.yaml:{line}: devices.1.profile" in _load_error(folder)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: alpha\nname: [unclosed\n", "alpha.yaml:3: YAML syntax error: expected ',' or ']'"),
        ("id: alpha\nname: x\n  indented: wrong\n", "alpha.yaml:3: YAML syntax error: mapping values"),
        ("id: alpha\n---\nid: again\n", "alpha.yaml:2: YAML syntax error: but found another document"),
        ("", "alpha.yaml:1: a trial file is a YAML mapping"),
        ("- id: alpha\n", "got a list"),
        ("id: alpha\nname: One\nname: Two\n", "alpha.yaml:3: (top level): key 'name' appears twice"),
    ],
)
def test_wrong_yaml(tmp_path: Path, text: str, expected: str) -> None:
    folder = tmp_path / "trials"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(text)
    assert expected in _load_error(folder)


def test_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    folder.mkdir()
    (folder / "alpha.yaml").write_bytes("name: 御宿町\n".encode("shift_jis"))
    assert "alpha.yaml:1: cannot read the file" in _load_error(folder)


def test_duplicate_device_id_across_trials(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    write_trial(folder, trial_data("alpha", devices=("cam-01",)))
    write_trial(folder, trial_data("beta", devices=("cam-02", "cam-01")))
    message = _load_error(folder)
    assert "beta.yaml" in message and "devices.1.id" in message
    assert "device id 'cam-01' is also declared at" in message
    assert "alpha.yaml" in message and "(devices.0.id)" in message
    assert "MQTT username" in message


def test_duplicate_trial_id_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    write_trial(folder, trial_data("alpha", devices=("a-1",)))
    write_trial(folder, trial_data("alpha", devices=("b-1",)), name="beta")
    message = _load_error(folder)
    assert "beta.yaml:1: id: must be the file name 'beta', got 'alpha'" in message
    assert "beta.yaml:1: id: trial id 'alpha' is also declared at" in message


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    bad_tz = trial_data("alpha", devices=("a-1",))
    bad_tz["timezone"] = "Mars/Olympus"
    bad_site = trial_data("beta", devices=("b-1",))
    bad_site["devices"][0]["site"] = "nowhere"
    write_trial(folder, bad_tz)
    write_trial(folder, bad_site)
    (folder / "gamma.yaml").write_text("id: gamma\nname: [\n")
    lines = _load_error(folder).splitlines()
    assert len(lines) == 3
    assert [Path(line.split(":")[0]).name for line in lines] == ["alpha.yaml", "beta.yaml", "gamma.yaml"]


def test_yml_extension_is_not_silently_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "trials"
    write_trial(folder, trial_data("alpha"), name="alpha")
    (folder / "alpha.yaml").rename(folder / "alpha.yml")
    assert "alpha.yml:1: trial files must end in .yaml" in _load_error(folder)


def test_missing_trials_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MIDIKA_TRIALS_DIR"):
        Registry.load(trials_dir=tmp_path / "nowhere", state_file=tmp_path / "registry.json")


def test_empty_folder_is_an_empty_registry(tmp_path: Path) -> None:
    (tmp_path / "trials").mkdir()
    assert Registry.load(trials_dir=tmp_path / "trials", state_file=tmp_path / "r.json").trials() == []
