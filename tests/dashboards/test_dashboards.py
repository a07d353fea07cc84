"""The dashboards' shape: variables, a panel per measurement, units, ids, and the committed files."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import provisioning
from dashboards.panels import DATASOURCE_UID, dashboard_uid, grafana_unit
from dashboards.trials import trial_dashboard
from devices.trial_files import read_trial_files
from midika.models.trial import Trial
from tests.conftest import REPO
from tests.dashboards.grafana import Variable, targets, variables

TRIALS = [source.trial for source in read_trial_files(REPO / "trials")]
COMMITTED = REPO / "deploy" / "grafana"


def _by_trial() -> dict[str, dict[str, Any]]:
    return {t.id: trial_dashboard(t) for t in TRIALS}


@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_trial_variables_come_from_the_trial_file(trial: Trial) -> None:
    found = variables(trial_dashboard(trial))
    assert list(found) == ["trial", "site", "device"]
    assert found["trial"].kind == "constant"
    assert found["trial"].values(None) == [trial.id]
    assert found["device"].values(None) == [d.id for d in trial.devices]
    assert found["device"].multi and found["site"].multi
    # A site's value is the alternation of its devices' ids.
    for site in trial.sites:
        at_site = [d.id for d in trial.devices if d.site == site.id]
        if at_site:
            assert found["site"].values([site.id]) == ["|".join(at_site)]


@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_a_panel_per_measurement_in_its_profile_row(trial: Trial) -> None:
    dashboard = trial_dashboard(trial)
    row = None
    placed: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"].split(" ")[0]
        elif row is not None and row != "Events":
            placed.setdefault(row, []).append(panel["title"])
    expected = {p.id: [m.name for m in p.measurements] for p in trial.profiles if p.measurements}
    assert placed == expected


def test_units_follow_senml_where_grafana_has_one() -> None:
    assert grafana_unit("Cel") == "celsius"
    assert grafana_unit("m/s") == "velocityms"
    assert grafana_unit("/") == "none"  # a ratio that can be an index of 1-4, not a percentage
    assert grafana_unit("cells/mL") == "suffix: cells/mL"
    [onjuku] = [t for t in TRIALS if t.id == "onjuku-rip"]
    units = {
        p["title"]: p["fieldConfig"]["defaults"].get("unit")
        for p in trial_dashboard(onjuku)["panels"]
        if p["type"] == "timeseries"
    }
    assert units["water_temp"] == "celsius"
    assert units["hs"] == "lengthm"
    assert units["wave_dir"] == "degree"


def test_fleet_dashboard() -> None:
    fleet = provisioning.dashboards(TRIALS)[0]
    found = variables(fleet)
    assert list(found) == ["trial"]
    assert found["trial"].values(None) == sorted(t.id for t in TRIALS)
    titles = {p["title"] for p in fleet["panels"]}
    assert {
        "Online",
        "Offline",
        "Status per device",
        "Last seen",
        "Battery",
        "RSSI",
        "Readings per hour",
        "Quarantined messages per hour",
    } <= titles


@pytest.mark.parametrize("dashboard", provisioning.dashboards(TRIALS), ids=lambda d: d["uid"])
def test_every_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
    assert len(dashboard["uid"]) <= 40
    for title, target in targets(dashboard):
        assert target["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, title
        assert target["rawQuery"] is True and target["refId"] == "A"
        assert target["resultFormat"] in {"time_series", "table"}
    # The SDK reads it back: the JSON fits Grafana's dashboard schema as the SDK models it.
    assert Dashboard.from_json(dashboard).uid == dashboard["uid"]


def test_long_trial_ids_get_uids_grafana_accepts() -> None:
    long = dashboard_uid("a" * 63)
    assert len(long) == 40 and long.startswith("midika-aaa")
    assert dashboard_uid("a" * 63) != dashboard_uid("a" * 62 + "b")
    assert dashboard_uid("onjuku-rip") == "midika-onjuku-rip"


def test_committed_files_are_a_fresh_build() -> None:
    """deploy/grafana is generated: after changing trials/ or dashboards/, run `midika dashboards build`."""
    fresh = provisioning.render(TRIALS)
    committed = {
        str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
        for p in COMMITTED.rglob("*")
        if p.is_file() and p.suffix in {".json", ".yaml"}
    }
    assert sorted(committed) == sorted(fresh)
    for path, text in fresh.items():
        assert committed[path] == text, f"{path} differs from a fresh build"


def test_datasource_speaks_influxql_to_influxdb_2_with_the_token_from_the_environment() -> None:
    document = yaml.safe_load(provisioning.render(TRIALS)[provisioning.DATASOURCE_FILE])
    [source] = document["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://influxdb:8086"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "midika"
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token $__env{MIDIKA_INFLUX_TOKEN}"
    provider = yaml.safe_load(provisioning.render(TRIALS)[provisioning.PROVIDER_FILE])
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_variable_options_follow_grafanas_custom_syntax() -> None:
    variable = Variable.of({"type": "custom", "name": "x", "multi": True, "query": "a : 1|2, b"})
    assert variable.options == (("a", "1|2"), ("b", "b"))
    assert json.loads(json.dumps(variable.values(["a", "b"]))) == ["1|2", "b"]
