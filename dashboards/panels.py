"""What every midika dashboard shares: the data source, units, panel and variable shapes, and JSON.

Panels are built with the foundation SDK's builders and given InfluxQL targets from `influxql`; a
dashboard is finished by `to_json`, which numbers the panels (Grafana needs ids unique within a
dashboard, and stable ids keep the committed JSON from changing between builds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common, units
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    FieldColorModeId,
    VariableOption,
)

from dashboards.influxql import ResultFormat, Select, Target

DATASOURCE_UID = "midika-influxdb"
DATASOURCE = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
TAGS = ["midika"]
UID_MAX = 40  # Grafana's limit on a dashboard uid
ALL = "$__all"

# SenML units (RFC 8428 and the IANA registry) and a few the trials use, to Grafana's unit ids. A unit
# without a Grafana id is shown as a suffix, so the axis still says what the number means.
SENML_UNITS: dict[str, str] = {
    "Cel": units.Celsius,
    "K": units.Kelvin,
    "m": units.Meter,
    "km": units.Kilometer,
    "mm": units.Millimeter,
    "s": units.Seconds,
    "ms": units.Milliseconds,
    "min": units.Minutes,
    "h": units.Hours,
    "d": units.Days,
    "deg": units.Degrees,
    "m/s": units.MetersPerSecond,
    "km/h": units.KilometersPerHour,
    "m/s2": units.MetersSecSquared,
    "V": units.Volt,
    "mV": units.MilliVolt,
    "A": units.Ampere,
    "W": units.Watt,
    "W/m2": units.WattPerSquareMeter,
    "kW": units.KiloWatt,
    "Wh": units.WattHour,
    "kWh": units.KiloWattHour,
    "Hz": units.Hertz,
    "Pa": units.Pascals,
    "hPa": units.Hectopascals,
    "bar": units.Bars,
    "kg": units.Kilogram,
    "g": units.Gram,
    "l": units.Litre,
    "ml": units.Millilitre,
    "lx": units.Lux,
    "dB": units.Decibel,
    "dBm": units.DecibelMilliWatt,
    "%": units.Percent,
    "%RH": units.Humidity,
    "ppm": units.PartsPerMillion,
    "B": units.BytesIEC,
    # SenML's ratio "/" is dimensionless but not necessarily 0..1 (an index of 1-4 uses it too), so
    # it is shown as a plain number rather than as a percentage.
    "/": units.Number,
    "1": units.Number,
    "count": units.Number,
}


def grafana_unit(senml: str) -> str:
    """Grafana's unit id for a SenML unit, or a `suffix:` custom unit where Grafana has none."""
    return SENML_UNITS.get(senml, f"suffix: {senml}")


def dashboard_uid(name: str) -> str:
    """`midika-<name>`, shortened with a digest when it would exceed Grafana's 40 characters."""
    uid = f"midika-{name}"
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - 9]}-{digest}"


def target(
    statement: Select,
    *,
    ref_id: str = "A",
    alias: str | None = None,
    result_format: ResultFormat = ResultFormat.TIME_SERIES,
) -> Target:
    """An InfluxQL target on midika's data source."""
    return Target(
        statement=statement, datasource=DATASOURCE, ref_id=ref_id, result_format=result_format, alias=alias
    )


def time_series(
    title: str,
    statement: Select,
    *,
    unit: str,
    alias: str,
    description: str = "",
    bars: bool = False,
    stacked: bool = False,
    width: int = 12,
) -> timeseries.Panel:
    """A time-series panel of one InfluxQL target, one line (or bar) per series."""
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(target(statement, alias=alias))
        .unit(unit)
        .span(width)
        .height(8)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    )
    if description:
        panel = panel.description(description)
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def table_panel(
    title: str,
    statement: Select,
    *,
    description: str = "",
    rename: dict[str, str] | None = None,
    hide: Sequence[str] = (),
    width: int = 12,
    height: int = 8,
) -> table.Panel:
    """A table of one InfluxQL target; `rename` and `hide` reshape its columns."""
    panel = (
        table.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(target(statement, result_format=ResultFormat.TABLE))
        .span(width)
        .height(height)
        .filterable(True)
    )
    if description:
        panel = panel.description(description)
    if rename or hide:
        panel = panel.with_transformation(
            DataTransformerConfig(
                id_val="organize",
                options={"renameByName": rename or {}, "excludeByName": dict.fromkeys(hide, True)},
            )
        )
    return panel


def stat_panel(title: str, statement: Select, *, description: str = "", color: str) -> stat.Panel:
    """A single number: the last value of one InfluxQL target."""
    panel = (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(target(statement, result_format=ResultFormat.TABLE))
        .span(6)
        .height(4)
        .no_value("0")
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .color_scheme(dashboard_builders.FieldColor().mode(FieldColorModeId.FIXED).fixed_color(color))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    return panel.description(description) if description else panel


def choice(
    name: str,
    *,
    label: str,
    options: Sequence[tuple[str, str]],
    description: str,
) -> dashboard_builders.CustomVariable:
    """A multi-value custom variable offering `options` (text, value), with "All" selected."""
    # Grafana's custom-variable syntax: "text : value" items separated by commas.
    for text, value in options:
        if "," in text + value or " : " in text + value:
            raise ValueError(f"variable {name}: option {text!r} / {value!r} may not contain ',' or ' : '")
    query = ", ".join(f"{text} : {value}" for text, value in options)
    return (
        dashboard_builders.CustomVariable(name)
        .label(label)
        .description(description)
        .values(query)
        .multi(True)
        .include_all(True)
        .current(VariableOption(selected=True, text=["All"], value=[ALL]))
        .options(
            [VariableOption(selected=True, text="All", value=ALL)]
            + [VariableOption(selected=False, text=text, value=value) for text, value in options]
        )
    )


def row(title: str) -> dashboard_builders.Row:
    """A row heading; the panels added after it belong to it."""
    return dashboard_builders.Row(title)


def to_json(builder: dashboard_builders.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON with every panel numbered 1, 2, ... in layout order."""
    model = builder.build()
    for number, panel in enumerate(model.panels or [], start=1):
        panel.id_val = number
    document: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return document
