"""What Grafana does to a raw InfluxQL target before InfluxDB sees it, for tests that run the queries.

Grafana cannot run here, so this reproduces the part of it the queries depend on: the macros
(`$timeFilter`, `$__interval`, `$interval`) and template variables as Grafana 11's InfluxDB data
source formats them in a raw query (`interpolateQueryExpr`): a multi-value variable's values are
regex-escaped, several as `(a|b)`; a single-value variable outside a regular expression is inserted
as it is; `${name:pipe}` joins values with `|` unescaped; "All" without a custom all-value stands for
every option. A reference to anything else fails the test, so a panel cannot name a variable its
dashboard does not define.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALL = "$__all"
_REFERENCE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")
# Grafana's escapeRegex (@grafana/data).
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
# Grafana's custom-variable syntax: items split on unescaped commas, "text : value" pairs.
_ITEM = re.compile(r"(?:\\,|[^,])+")
_PAIR = re.compile(r"^\s*(.+)\s:\s(.+)$")


@dataclass(frozen=True)
class Variable:
    """A template variable of a dashboard, with its options as Grafana derives them."""

    name: str
    kind: str
    options: tuple[tuple[str, str], ...]  # (text, value)
    multi: bool

    @classmethod
    def of(cls, model: Mapping[str, Any]) -> Variable:
        """The variable of a `templating.list` entry (constant or custom)."""
        kind = model["type"]
        if kind == "constant":
            return cls(model["name"], kind, ((model["query"], model["query"]),), multi=False)
        if kind != "custom":
            raise AssertionError(f"variable {model['name']}: type {kind} is not simulated here")
        options = []
        for raw in _ITEM.findall(model["query"]):
            item = raw.strip().replace("\\,", ",")
            pair = _PAIR.match(item)
            options.append((pair.group(1).strip(), pair.group(2).strip()) if pair else (item, item))
        return cls(model["name"], kind, tuple(options), multi=bool(model.get("multi")))

    def values(self, selected: Sequence[str] | None) -> list[str]:
        """The values of the options whose text is in `selected`; None selects All."""
        if selected is None:
            return [value for _, value in self.options]
        by_text = dict(self.options)
        missing = [s for s in selected if s not in by_text]
        assert not missing, f"variable {self.name} has no option {missing} (has {list(by_text)})"
        assert self.multi or len(selected) == 1, f"variable {self.name} takes one value"
        return [by_text[s] for s in selected]


def variables(dashboard: Mapping[str, Any]) -> dict[str, Variable]:
    """The dashboard's template variables by name."""
    return {v["name"]: Variable.of(v) for v in dashboard["templating"]["list"]}


def _escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\g<0>", value)


def _format(variable: Variable, values: list[str], fmt: str | None) -> str:
    if fmt == "pipe":
        return "|".join(values)
    if fmt is not None:
        raise AssertionError(f"format {fmt} is not simulated here")
    if not variable.multi:
        [value] = values
        return value
    escaped = [_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    query: str,
    dashboard: Mapping[str, Any],
    *,
    start: datetime,
    end: datetime,
    interval: str = "10m",
    selection: Mapping[str, Sequence[str] | None] | None = None,
) -> str:
    """`query` as Grafana sends it: macros and variables replaced; `selection` maps names to option texts."""
    known = variables(dashboard)
    chosen = selection or {}
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    macros = {
        "timeFilter": f"time >= {start_ms}ms and time <= {end_ms}ms",
        "__interval": interval,
        "interval": interval,
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in macros:
            return macros[name]
        assert name in known, f"{query}: ${name} is neither a macro nor a variable of the dashboard"
        variable = known[name]
        return _format(variable, variable.values(chosen.get(name)), match.group(2))

    return _REFERENCE.sub(replace, query)


def targets(dashboard: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every target of every panel."""
    return [(p.get("title", ""), t) for p in dashboard.get("panels", []) for t in p.get("targets", [])]
