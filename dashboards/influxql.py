"""Typed InfluxQL for Grafana panels: SELECT statements with Grafana's macros, rendered as raw targets.

The foundation SDK has no InfluxDB query model, so this module supplies one: `Select` composes a
statement from typed parts (aggregates, tag conditions, template variables, time grouping), and
`Target` turns it into a dataquery the SDK's panel builders accept (`Builder[Dataquery]`), rendered
as Grafana's InfluxQL "raw query" JSON: refId, query, rawQuery, resultFormat, alias, datasource.

Grafana substitutes before the query reaches InfluxDB: `$timeFilter` becomes the picked time range,
`$__interval` a bucket width that suits the panel's width, and template variables their values.
Its InfluxDB data source (11.x) inserts a multi-value variable's values regex-escaped, several as
`(a|b)`, so such variables are matched with `=~ /^$device$/`; a single-value variable outside a
regular expression goes in as it is (`'$trial'`); `${site:pipe}` joins values with `|` unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from midika.store.influx_query import ident, literal

TIME_FILTER = "$timeFilter"
AUTO_INTERVAL = "$__interval"

# Identifiers that need no escaping anywhere Grafana or InfluxQL puts them: variable names, aliases.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# InfluxQL duration literals, e.g. 10s, 1h, 7d.
_DURATION = re.compile(r"^[1-9][0-9]*(u|µ|ms|s|m|h|d|w)$")
# What a regular expression in InfluxQL (Go RE2, between slashes) must escape in a literal value.
_REGEX_META = re.compile(r"[\\^$.|?*+()\[\]{}/]")
# Grafana's variable formats that make sense inside an InfluxQL regular expression.
VarFormat = Literal["regex", "pipe"]


def _name(kind: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{kind} {value!r} must match {_NAME.pattern}")
    return value


class ResultFormat(StrEnum):
    """How Grafana turns the InfluxQL response into data frames."""

    TIME_SERIES = "time_series"
    TABLE = "table"


class Fill(StrEnum):
    """What InfluxDB puts in time buckets without points."""

    NONE = "none"
    NULL = "null"
    ZERO = "0"
    PREVIOUS = "previous"


@dataclass(frozen=True, slots=True)
class Var:
    """A Grafana template variable, referenced as `$name` or `${name:format}`."""

    name: str
    format: VarFormat | None = None

    def __post_init__(self) -> None:
        _name("variable", self.name)

    def __str__(self) -> str:
        return f"${{{self.name}:{self.format}}}" if self.format else f"${self.name}"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """`fn("field") AS "alias"`; fn is an InfluxQL function of one field (mean, last, count, ...)."""

    function: str
    field: str
    alias: str | None = None

    def __post_init__(self) -> None:
        _name("function", self.function)
        if self.alias is not None:
            _name("alias", self.alias)

    def render(self) -> str:
        """The select-list item."""
        text = f"{self.function}({ident(self.field)})"
        return f"{text} AS {ident(self.alias)}" if self.alias else text


@dataclass(frozen=True, slots=True)
class Column:
    """A raw field or tag in the select list (for tables of points)."""

    name: str

    def render(self) -> str:
        """The select-list item."""
        return ident(self.name)


def equals(key: str, value: str | Var) -> str:
    """`"key" = 'value'`: a tag or string field equals a constant or a single-value variable."""
    # A variable inside a string literal is replaced by Grafana before InfluxDB parses the quote.
    return f"{ident(key)} = {literal(str(value))}"


def matches(key: str, variable: Var) -> str:
    """`"key" =~ /^$var$/`: a tag matches any of a (multi-value) variable's values."""
    # Grafana escapes regex metacharacters in each value; midika ids ([a-z0-9_-]) contain none.
    pattern = f"(?:{variable})" if variable.format == "pipe" else str(variable)
    return f"{ident(key)} =~ /^{pattern}$/"


def one_of(key: str, values: Sequence[str]) -> str:
    """`"key" =~ /^(?:a|b)$/`: a tag is one of constant `values`."""
    if not values:
        raise ValueError(f"one_of({key!r}): no values, which would match nothing")
    pattern = "|".join(_REGEX_META.sub(r"\\\g<0>", v) for v in values)
    return f"{ident(key)} =~ /^(?:{pattern})$/"


def flag(key: str, value: bool) -> str:
    """A boolean field is true (or false)."""
    return f"{ident(key)} = {'true' if value else 'false'}"


@dataclass(frozen=True, slots=True)
class Select:
    """An InfluxQL SELECT, built by chaining; every method returns a new statement."""

    source: str | Select
    columns: tuple[Aggregate | Column, ...] = ()
    conditions: tuple[str, ...] = ()
    time_filter: bool = True
    interval: str | None = None
    tags: tuple[str, ...] = ()
    fill: Fill | None = None
    newest_first: bool = False
    limit: int | None = None

    def select(self, *columns: Aggregate | Column) -> Select:
        """Add items to the select list."""
        return replace(self, columns=self.columns + columns)

    def where(self, *conditions: str) -> Select:
        """Add conditions, joined with AND (build them with `equals`, `matches`, `one_of`, `flag`)."""
        return replace(self, conditions=self.conditions + conditions)

    def all_time(self) -> Select:
        """Drop `$timeFilter`: the statement reads a series' whole history (current state, last seen)."""
        return replace(self, time_filter=False)

    def every(self, interval: str = AUTO_INTERVAL) -> Select:
        """Group into time buckets of `interval` (an InfluxQL duration, or Grafana's `$__interval`)."""
        if interval != AUTO_INTERVAL and not _DURATION.match(interval):
            raise ValueError(f"interval {interval!r} is neither {AUTO_INTERVAL} nor a duration like 1h")
        return replace(self, interval=interval)

    def by(self, *tags: str) -> Select:
        """Group by tags: one series (or table row group) per tag value."""
        return replace(self, tags=self.tags + tags)

    def filled(self, fill: Fill) -> Select:
        """What empty time buckets hold."""
        return replace(self, fill=fill)

    def newest(self, limit: int) -> Select:
        """Only the newest `limit` points, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        return replace(self, newest_first=True, limit=limit)

    def render(self) -> str:
        """The statement as InfluxQL text, with Grafana's macros and variables left in place."""
        if not self.columns:
            raise ValueError("a SELECT needs at least one column")
        source = f"({self.source.render()})" if isinstance(self.source, Select) else ident(self.source)
        text = f"SELECT {', '.join(c.render() for c in self.columns)} FROM {source}"
        conditions = [*self.conditions, *([TIME_FILTER] if self.time_filter else [])]
        if conditions:
            text += " WHERE " + " AND ".join(conditions)
        groups = [*([f"time({self.interval})"] if self.interval else []), *map(ident, self.tags)]
        if groups:
            text += " GROUP BY " + ", ".join(groups)
        if self.fill is not None:
            text += f" fill({self.fill})"
        if self.newest_first:
            text += " ORDER BY time DESC"
        if self.limit is not None:
            text += f" LIMIT {self.limit}"
        return text


@dataclass(frozen=True, slots=True)
class InfluxQLQuery(Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB data source stores it in dashboard JSON."""

    ref_id: str
    query: str
    result_format: ResultFormat
    datasource: DataSourceRef
    alias: str | None = None

    def to_json(self) -> dict[str, object]:
        """The target's JSON, as the SDK's encoder asks every model for."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": self.datasource.to_json(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": str(self.result_format),
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


@dataclass(frozen=True)
class Target(Builder[Dataquery]):
    """Builds an `InfluxQLQuery` from a `Select`, for `panel.with_target(...)`."""

    statement: Select
    datasource: DataSourceRef
    ref_id: str = "A"
    result_format: ResultFormat = ResultFormat.TIME_SERIES
    # Series names: `$tag_device` is the value of the series' device tag.
    alias: str | None = field(default=None)

    def build(self) -> InfluxQLQuery:
        """Render the statement into the target."""
        return InfluxQLQuery(
            ref_id=self.ref_id,
            query=self.statement.render(),
            result_format=self.result_format,
            datasource=self.datasource,
            alias=self.alias,
        )
