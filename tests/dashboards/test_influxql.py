"""The InfluxQL builder: statements, targets, and what it refuses to build."""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from dashboards.influxql import (
    Aggregate,
    Column,
    Fill,
    ResultFormat,
    Select,
    Target,
    Var,
    equals,
    flag,
    matches,
    one_of,
)

SOURCE = DataSourceRef(type_val="influxdb", uid="ds")


def test_time_series_statement() -> None:
    statement = (
        Select("readings")
        .select(Aggregate("mean", "value", alias="value"))
        .where(equals("trial", Var("trial")), equals("measurement", "hs"), matches("device", Var("device")))
        .every()
        .by("device")
        .filled(Fill.NONE)
    )
    assert statement.render() == (
        'SELECT mean("value") AS "value" FROM "readings" WHERE "trial" = \'$trial\' '
        'AND "measurement" = \'hs\' AND "device" =~ /^$device$/ AND $timeFilter '
        'GROUP BY time($__interval), "device" fill(none)'
    )


def test_pipe_variable_is_grouped_so_anchors_apply_to_every_alternative() -> None:
    assert matches("device", Var("site", "pipe")) == '"device" =~ /^(?:${site:pipe})$/'


def test_constant_set_is_regex_escaped() -> None:
    assert one_of("device", ["a.b", "c/d"]) == r'"device" =~ /^(?:a\.b|c\/d)$/'
    with pytest.raises(ValueError, match="no values"):
        one_of("device", [])


def test_literals_are_quoted() -> None:
    assert equals("type", "it's") == "\"type\" = 'it\\'s'"
    assert flag("online", False) == '"online" = false'


def test_subquery_newest_and_all_time() -> None:
    inner = Select("status").select(Aggregate("last", "online", alias="online")).by("device").all_time()
    outer = Select(inner).select(Aggregate("count", "online")).where(flag("online", True)).all_time()
    assert outer.render() == (
        'SELECT count("online") FROM (SELECT last("online") AS "online" FROM "status" GROUP BY "device") '
        'WHERE "online" = true'
    )
    events = Select("events").select(Column("device"), Column("data")).newest(5)
    assert (
        events.render()
        == 'SELECT "device", "data" FROM "events" WHERE $timeFilter ORDER BY time DESC LIMIT 5'
    )


def test_statements_are_immutable() -> None:
    base = Select("readings").select(Aggregate("count", "quality"))
    base.every("1h")
    assert "GROUP BY" not in base.render()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Select("readings").render(), "at least one column"),
        (lambda: Select("r").every("1 hour"), "duration"),
        (lambda: Select("r").newest(0), "at least 1"),
        (lambda: Var("bad-name"), "variable"),
        (lambda: Aggregate("mean(x)", "value"), "function"),
    ],
)
def test_refuses_what_would_not_parse(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_target_renders_grafana_raw_influxql_json_through_the_sdk() -> None:
    statement = Select("readings").select(Aggregate("count", "quality"))
    panel = timeseries.Panel().with_target(
        Target(statement=statement, datasource=SOURCE, ref_id="B", alias="$tag_device")
    )
    [target] = json.loads(json.dumps(panel.build(), cls=JSONEncoder))["targets"]
    assert target == {
        "refId": "B",
        "datasource": {"type": "influxdb", "uid": "ds"},
        "query": 'SELECT count("quality") FROM "readings" WHERE $timeFilter',
        "rawQuery": True,
        "resultFormat": "time_series",
        "alias": "$tag_device",
    }
    table = Target(statement=statement, datasource=SOURCE, result_format=ResultFormat.TABLE).build()
    assert table.to_json()["resultFormat"] == "table"
    assert "alias" not in table.to_json()
