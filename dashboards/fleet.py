"""The fleet dashboard: every device's health across trials, and what the ingest took in and refused.

Variable `trial` lists the trials from the trial files (several can be picked). The "now" panels
(online and offline counts, status per device, last seen) read each series' whole history rather
than the picked range: a device that went silent before the range is exactly what they must show.
Quarantined messages are not filtered by trial: a rejected message's trial is only what the sender
claimed, and many (bad topics, unknown trials) name none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders.table import Panel as TablePanel
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import DashboardLinkType, ValueMap, ValueMappingResult

from dashboards import panels
from dashboards.influxql import Aggregate, Fill, Select, Var, flag, matches
from midika.models.trial import Trial
from midika.store.influx_schema import DEVICE_SEEN, QUARANTINE, READINGS, STATUS

FLEET_UID = panels.dashboard_uid("fleet")
TRIAL = Var("trial")


def fleet_dashboard(trials: Sequence[Trial]) -> dict[str, Any]:
    """The fleet dashboard JSON over `trials`."""
    of_trials = matches("trial", TRIAL)
    builder = (
        dashboard_builders.Dashboard("midika fleet")
        .uid(FLEET_UID)
        .description("Device health across trials; readings and quarantined messages per hour.")
        .tags(panels.TAGS)
        .timezone("browser")
        .time("now-24h", "now")
        .refresh("1m")
        .readonly()
        .with_variable(
            panels.choice(
                "trial",
                label="Trial",
                options=[(t.id, t.id) for t in trials],
                description="Trials declared in trials/*.yaml.",
            )
        )
        .link(
            dashboard_builders.DashboardLink("Trials")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(panels.TAGS)
            .as_dropdown(True)
            .keep_time(True)
        )
        .with_row(panels.row("Devices now"))
        .with_panel(
            panels.stat_panel(
                "Online",
                _devices_reporting(online=True, of_trials=of_trials),
                description="Devices whose newest status report says online.",
                color="green",
            )
        )
        .with_panel(
            panels.stat_panel(
                "Offline",
                _devices_reporting(online=False, of_trials=of_trials),
                description="Devices whose newest status report (or the broker's last will) says offline.",
                color="red",
            )
        )
        .with_panel(_last_seen_table(of_trials))
        .with_panel(_status_table(of_trials))
        .with_row(panels.row("Over time"))
        .with_panel(
            panels.time_series(
                "Battery",
                _per_device(STATUS, "battery", of_trials),
                unit=units.Number,
                alias="$tag_trial $tag_device",
                description="Mean battery per interval: volts, or 0..1 state of charge, per profile.",
            )
        )
        .with_panel(
            panels.time_series(
                "RSSI",
                _per_device(STATUS, "rssi", of_trials),
                unit=units.DecibelMilliWatt,
                alias="$tag_trial $tag_device",
                description="Mean received signal strength per interval.",
            )
        )
        .with_panel(
            panels.time_series(
                "Readings per hour",
                Select(READINGS)
                .select(Aggregate("count", "quality", alias="readings"))
                .where(of_trials)
                .every("1h")
                .by("trial")
                .filled(Fill.NONE),
                unit=units.Number,
                alias="$tag_trial",
                description="Readings stored per hour, by trial (by event time).",
                bars=True,
                stacked=True,
            )
        )
        .with_panel(
            panels.time_series(
                "Quarantined messages per hour",
                Select(QUARANTINE)
                .select(Aggregate("count", "id", alias="messages"))
                .every("1h")
                .by("reason")
                .filled(Fill.NONE),
                unit=units.Number,
                alias="$tag_reason",
                description="Rejected messages per hour by reason, for all trials: a rejected message's "
                "trial is only a claim, and many name none. `midika` keeps each with its payload.",
                bars=True,
                stacked=True,
            )
        )
    )
    return panels.to_json(builder)


def _devices_reporting(*, online: bool, of_trials: str) -> Select:
    """How many devices' newest status report says `online` (or not)."""
    newest = (
        Select(STATUS)
        .select(Aggregate("last", "online", alias="online"))
        .where(of_trials)
        .by("trial", "device")
        .all_time()
    )
    return Select(newest).select(Aggregate("count", "online")).where(flag("online", online)).all_time()


def _per_device(measurement: str, field: str, *conditions: str) -> Select:
    return (
        Select(measurement)
        .select(Aggregate("mean", field, alias=field))
        .where(*conditions)
        .every()
        .by("trial", "device")
        .filled(Fill.NONE)
    )


def _status_table(of_trials: str) -> TablePanel:
    statement = (
        Select(STATUS)
        .select(
            Aggregate("last", "online", alias="online"),
            Aggregate("last", "battery", alias="battery"),
            Aggregate("last", "rssi", alias="rssi"),
            Aggregate("last", "firmware", alias="firmware"),
        )
        .where(of_trials)
        .by("trial", "device")
        .all_time()
    )
    return panels.table_panel(
        "Status per device",
        statement,
        description="Each field's newest value from the device's status reports.",
        hide=("Time",),
        width=24,
    ).mappings(
        [
            ValueMap(
                options={
                    "true": ValueMappingResult(text="online", color="green", index=0),
                    "false": ValueMappingResult(text="offline", color="red", index=1),
                }
            )
        ]
    )


def _last_seen_table(of_trials: str) -> TablePanel:
    statement = (
        Select(DEVICE_SEEN)
        .select(Aggregate("last", "records", alias="records"))
        .where(of_trials)
        .by("trial", "device")
        .all_time()
    )
    return panels.table_panel(
        "Last seen",
        statement,
        description="When midika last stored anything from each device (ingest time).",
        rename={"Time": "last seen", "records": "records in that write"},
    )
