"""One dashboard per trial, generated from its `Trial` model: a new trial file is a new dashboard.

Layout: a row per device profile with measurements, holding a time-series panel per measurement
(the mean per `$__interval`, one line per device, in the measurement's unit; a text measurement
gets a table of each device's newest text instead), then an events row (counts by type, counts
over time, the newest events).

Variables: `trial` (a hidden constant, so every query names its trial the same way), `site` and
`device`. Sites are not InfluxDB tags (they live in the trial file), so both lists come from the
trial file: each site's value is the `|`-joined ids of its devices, and queries keep the devices
of the selected sites with `"device" =~ /^(?:${site:pipe})$/`, then the selected devices with
`"device" =~ /^$device$/`. Picking a site therefore narrows every panel to that site's devices
without any query against InfluxDB, and works for devices that have not sent anything yet.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeSeriesPanel
from grafana_foundation_sdk.models.dashboard import DashboardLinkType

from dashboards import panels
from dashboards.influxql import Aggregate, Column, Fill, Select, Var, equals, matches, one_of
from midika.models.trial import DeviceProfile, Measurement, Trial, ValueType
from midika.store.influx_schema import EVENTS, READINGS

TRIAL = Var("trial")
SITE = Var("site", "pipe")
DEVICE = Var("device")
EVENT_LIST_LIMIT = 500


def trial_dashboard(trial: Trial) -> dict[str, Any]:
    """The dashboard JSON of one trial."""
    builder = (
        dashboard_builders.Dashboard(trial.name)
        .uid(panels.dashboard_uid(trial.id))
        .description(trial.description or trial.name)
        .tags([*panels.TAGS, trial.domain])
        # People running a trial read local time.
        .timezone(trial.timezone)
        .time("now-24h", "now")
        .refresh("1m")
        .readonly()
        .with_variable(dashboard_builders.ConstantVariable("trial").value(trial.id))
        .with_variable(_site_variable(trial))
        .with_variable(_device_variable(trial))
        .link(
            dashboard_builders.DashboardLink("midika")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(panels.TAGS)
            .as_dropdown(True)
            .keep_time(True)
        )
    )
    shared = _shared_measurements(trial)
    for profile in trial.profiles:
        if not profile.measurements:
            continue
        devices = [d.id for d in trial.devices if d.profile == profile.id]
        builder = builder.with_row(panels.row(f"{profile.id} ({len(devices)} devices)"))
        for measurement in profile.measurements:
            builder = builder.with_panel(
                _measurement_panel(profile, measurement, devices if measurement.name in shared else None)
            )
    if any(profile.events for profile in trial.profiles):
        builder = _events_row(builder)
    return panels.to_json(builder)


def _site_variable(trial: Trial) -> dashboard_builders.CustomVariable:
    options = []
    for site in trial.sites:
        devices = [d.id for d in trial.devices if d.site == site.id]
        if devices:  # a site without devices would select nothing; it has no data to show either
            options.append((site.id, "|".join(devices)))
    return panels.choice(
        "site",
        label="Site",
        options=options,
        description="Sites of the trial; a site stands for the devices placed there.",
    )


def _device_variable(trial: Trial) -> dashboard_builders.CustomVariable:
    return panels.choice(
        "device",
        label="Device",
        options=[(f"{d.id} ({d.site})", d.id) for d in trial.devices],
        description="Devices of the trial (and of the selected sites).",
    )


def _shared_measurements(trial: Trial) -> set[str]:
    """Measurement names that more than one profile of the trial reports."""
    counts = Counter(m.name for p in trial.profiles for m in p.measurements)
    return {name for name, count in counts.items() if count > 1}


def _selected_devices() -> tuple[str, ...]:
    return (matches("device", SITE), matches("device", DEVICE))


def _measurement_panel(
    profile: DeviceProfile, measurement: Measurement, only: list[str] | None
) -> TimeSeriesPanel | TablePanel:
    """Mean per interval and device; `only` restricts to a profile's devices for a shared name."""
    readings = Select(READINGS).where(
        equals("trial", TRIAL), equals("measurement", measurement.name), *_selected_devices()
    )
    if only is not None:
        # Two profiles report this name: keep the series of this row's profile only.
        readings = readings.where(one_of("device", only))
    description = measurement.description or measurement.name
    if measurement.type is ValueType.STR:
        # Text has no mean: show what each device reported last.
        return panels.table_panel(
            measurement.name,
            readings.select(Aggregate("last", "text", alias="text")).by("device"),
            description=f"{description}: the newest text each device reported in the range",
            rename={"Time": "time"},
        )
    statement = readings.select(Aggregate("mean", "value", alias="value")).every().by("device")
    statement = statement.filled(Fill.NONE)
    if measurement.type is ValueType.BOOL:
        description += " (true = 1: the mean is the share of true readings)"
    if measurement.range is not None:
        description += f"; plausible range {measurement.range[0]:g} to {measurement.range[1]:g}"
    return panels.time_series(
        measurement.name,
        statement,
        unit=panels.grafana_unit(measurement.unit),
        alias="$tag_device",
        description=f"{description} [{measurement.unit}], from {profile.id} devices",
    )


def _events_row(builder: dashboard_builders.Dashboard) -> dashboard_builders.Dashboard:
    conditions = (equals("trial", TRIAL), *_selected_devices())
    counts = Select(EVENTS).select(Aggregate("count", "ingest_ts", alias="events")).where(*conditions)
    return (
        builder.with_row(panels.row("Events"))
        .with_panel(
            panels.table_panel(
                "Events by type",
                counts.by("type"),
                description="How many events of each type the selected devices raised in the range.",
                hide=("Time",),
                width=8,
            )
        )
        .with_panel(
            panels.time_series(
                "Events over time",
                counts.every().by("type").filled(Fill.NONE),
                unit="none",
                alias="$tag_type",
                description="Events per interval, by type.",
                bars=True,
                stacked=True,
                width=16,
            )
        )
        .with_panel(
            panels.table_panel(
                "Newest events",
                Select(EVENTS)
                .select(Column("device"), Column("type"), Column("data"))
                .where(*conditions)
                .newest(EVENT_LIST_LIMIT),
                description=f"The newest {EVENT_LIST_LIMIT} events in the range, with their data as JSON.",
                width=24,
                height=10,
            )
        )
    )
