"""Every panel query of every dashboard, run against a real influxd holding data of every trial.

Each target is interpolated as Grafana would (macros, template variables, their regex and pipe
formats) and sent to InfluxDB's InfluxQL /query endpoint; a query must not fail and must return
rows. Variable selections: everything ("All"), several values at once (the `(a|b)` form), and one
device or one site at a time, where the rows must come from the selected devices only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dashboards import provisioning
from dashboards.trials import trial_dashboard
from devices.trial_files import read_trial_files
from midika.models.trial import Trial
from midika.store.influx import InfluxStore
from tests.conftest import REPO
from tests.dashboards.grafana import interpolate, targets
from tests.dashboards.seed import POINTS, STEP, seed, seed_quarantine
from tests.influx_server import InfluxServer
from tests.influx_v2_shim import V2WriteShim

pytestmark = pytest.mark.servers

START = datetime(2025, 7, 1, 9, tzinfo=UTC)
END = START + POINTS * STEP
TRIALS = [source.trial for source in read_trial_files(REPO / "trials")]
Selection = Mapping[str, Sequence[str] | None]


@pytest.fixture(scope="module")
def seeded(influx: tuple[InfluxServer, V2WriteShim]) -> Iterator[tuple[InfluxServer, str]]:
    """One database with an hour of data from every device of every trial, for the whole module."""
    server, shim = influx
    database = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(database)
    store = InfluxStore(url=shim.url, database=database, retention_policy="autogen")
    try:
        for trial in TRIALS:
            seed(store, trial, start=START)
        seed_quarantine(store, start=START)
        yield server, database
    finally:
        store.close()
        server.drop_database(database)


def _run(
    seeded: tuple[InfluxServer, str], dashboard: Mapping[str, Any], query: str, selection: Selection
) -> list[dict[str, Any]]:
    """The series InfluxDB returns for `query` as Grafana would send it; an InfluxQL error fails."""
    server, database = seeded
    statement = interpolate(
        query, dashboard, start=START, end=END + timedelta(minutes=1), selection=selection
    )
    body = server.query(statement, database=database)
    [result] = body["results"]
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _rows(series: list[dict[str, Any]]) -> int:
    return sum(len(s["values"]) for s in series)


def _devices(series: list[dict[str, Any]]) -> set[str]:
    """The devices the rows belong to: the device tag of grouped series, or the device column."""
    found = set()
    for s in series:
        if "device" in s.get("tags", {}):
            found.add(s["tags"]["device"])
        if "device" in s["columns"]:
            column = s["columns"].index("device")
            found.update(row[column] for row in s["values"])
    return found


def _dashboard(trial: Trial) -> dict[str, Any]:
    return trial_dashboard(trial)


def _fleet() -> dict[str, Any]:
    return provisioning.dashboards(TRIALS)[0]


def _several_devices(trial: Trial) -> list[str]:
    """A device of every profile, and at least two devices."""
    chosen: dict[str, str] = {}
    for device in trial.devices:
        chosen.setdefault(device.profile, device.id)
    extra = [d.id for d in trial.devices if d.id not in chosen.values()]
    return [*chosen.values(), *extra[: max(0, 2 - len(chosen))]]


@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_every_trial_target_returns_rows_for_all_and_for_several(
    seeded: tuple[InfluxServer, str], trial: Trial
) -> None:
    dashboard = _dashboard(trial)
    several = _several_devices(trial)
    sites = sorted({d.site for d in trial.devices if d.id in several})
    device_texts = [f"{d.id} ({d.site})" for d in trial.devices if d.id in several]
    assert len(several) > 1, "the (a|b) form needs two devices"
    selections: list[tuple[Selection, set[str]]] = [
        ({"site": None, "device": None}, {d.id for d in trial.devices}),
        ({"site": sites, "device": device_texts}, set(several)),
    ]
    for selection, expected in selections:
        for title, target in targets(dashboard):
            series = _run(seeded, dashboard, target["query"], selection)
            assert _rows(series) > 0, f"{trial.id} {title} {selection}: no rows for {target['query']}"
            assert _devices(series) <= expected, f"{trial.id} {title} {selection}: rows of other devices"


@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_one_device_shows_only_that_device(seeded: tuple[InfluxServer, str], trial: Trial) -> None:
    dashboard = _dashboard(trial)
    # A device of each profile: every panel gets its turn with data, at a few hundred queries a trial.
    for device in (trial.device(d) for d in _several_devices(trial)):
        assert device is not None
        profile = trial.profile(device.profile)
        selection = {"site": [device.site], "device": [f"{device.id} ({device.site})"]}
        answered = set()
        for title, target in targets(dashboard):
            series = _run(seeded, dashboard, target["query"], selection)
            assert _devices(series) <= {device.id}, f"{device.id} {title}: rows of other devices"
            if _rows(series):
                answered.add(title)
        assert {m.name for m in profile.measurements} <= answered, f"{device.id}: panels without rows"
        if profile.events:
            assert {"Events by type", "Events over time", "Newest events"} <= answered


@pytest.mark.parametrize("trial", TRIALS, ids=lambda t: t.id)
def test_a_site_shows_only_its_devices(seeded: tuple[InfluxServer, str], trial: Trial) -> None:
    dashboard = _dashboard(trial)
    several = _several_devices(trial)
    for site in sorted({d.site for d in trial.devices if d.id in several}):
        at_site = {d.id for d in trial.devices if d.site == site}
        rows = 0
        for _, target in targets(dashboard):
            series = _run(seeded, dashboard, target["query"], {"site": [site], "device": None})
            assert _devices(series) <= at_site, f"site {site}: rows of devices elsewhere"
            rows += _rows(series)
        assert rows > 0


def test_every_fleet_target_returns_rows(seeded: tuple[InfluxServer, str]) -> None:
    dashboard = _fleet()
    every_trial = [t.id for t in TRIALS]
    for selection in ({"trial": None}, {"trial": every_trial[:2]}, {"trial": every_trial[:1]}):
        for title, target in targets(dashboard):
            series = _run(seeded, dashboard, target["query"], selection)
            assert _rows(series) > 0, f"fleet {title} {selection}: no rows for {target['query']}"
            picked = set(selection["trial"] or every_trial)
            assert {s["tags"]["trial"] for s in series if "trial" in s.get("tags", {})} <= picked


def test_online_and_offline_count_every_reporting_device(seeded: tuple[InfluxServer, str]) -> None:
    dashboard = _fleet()
    counts = {}
    for title, target in targets(dashboard):
        if title in {"Online", "Offline"}:
            [series] = _run(seeded, dashboard, target["query"], {"trial": None})
            [[_, count]] = series["values"]
            counts[title] = count
    devices = [d for t in TRIALS for d in t.devices]
    # seed(): device n of each trial ends online when n is even.
    offline = sum(1 for t in TRIALS for n, _ in enumerate(t.devices) if n % 2)
    assert counts == {"Online": len(devices) - offline, "Offline": offline}
