"""Scenario files: which trial to simulate, which of its devices, from when, how fast, with which faults.

A scenario is YAML validated on load (no I/O beyond reading the file and the trials folder); a
mistake is reported as `file: path.inside: what is wrong`. Devices: a simulated device logs in
with its own id and secret, so only devices declared in the trial file can take part. A scenario
runs all of them, a list of them, or the first `count`; to simulate more devices, declare them in a
trial file (bench/simulate.py writes one with 1,000). Times: `start` is `now`, `now-<duration>`
(a backfill ending now), RFC 3339, or a local date-time in the trial's time zone; `speed` is a
factor (1 is real time) or `max` (as fast as the broker acknowledges). Shipped scenarios are in
`simulators/scenarios/`.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from midika.errors import ConfigError
from midika.models.trial import Trial
from midika.timeutil import utcnow
from simulators.faults import Fault, FaultKind

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"


def _seconds(value: object) -> object:
    """`90s`, `10m`, `6h`, `7d`, `1h30m` or a number of seconds."""
    if isinstance(value, str):
        from simulators.cli import parse_duration

        try:
            return parse_duration(value).total_seconds()
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("--duration: ")) from exc
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


class FaultSpec(BaseModel):
    """One fault as written in a scenario file (see simulators.faults.FaultKind for each kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: FaultKind
    devices: list[str] | None = None
    measurements: list[str] | None = None
    at: Seconds = 0.0
    for_: Seconds | None = Field(default=None, alias="for")
    size: float = 0.0
    rate: float = Field(default=0.0, ge=0)
    tau: Seconds = 0.0
    every: Seconds | None = None
    scale: float = 1.0
    offset: float = 0.0
    store_forward: bool = True
    batch: int = Field(default=50, ge=1, le=1000)
    from_hour: float = Field(default=0.0, ge=0, le=24)
    to_hour: float = Field(default=0.0, ge=0, le=24)

    def fault(self) -> Fault:
        """The fault the simulator applies."""
        return Fault(
            kind=self.kind,
            at_s=self.at,
            for_s=self.for_,
            devices=tuple(self.devices) if self.devices is not None else None,
            measurements=tuple(self.measurements) if self.measurements is not None else None,
            size=self.size,
            rate=self.rate,
            tau_s=self.tau,
            every_s=self.every,
            scale=self.scale,
            offset=self.offset,
            store_forward=self.store_forward,
            batch=self.batch,
            from_hour=self.from_hour,
            to_hour=self.to_hour,
        )


class Scenario(BaseModel):
    """A scenario file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trial: str = Field(min_length=1)
    description: str = ""
    seed: int = 1
    start: str = "now"
    duration: Seconds | None = None  # None: until stopped
    speed: float | Literal["max"] = 1.0
    devices: list[str] | Literal["all"] = "all"
    count: int | None = Field(default=None, ge=1, description="only the first N devices of the selection")
    faults: list[FaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _speed(self) -> Scenario:
        if self.speed != "max" and not (isinstance(self.speed, float) and self.speed > 0):
            raise ValueError("speed must be a positive factor (1 is real time) or max")
        return self

    @property
    def speed_factor(self) -> float:
        """Simulated seconds per real second; inf for `max`."""
        return math.inf if self.speed == "max" else float(self.speed)

    def device_ids(self, trial: Trial) -> list[str]:
        """The devices this scenario runs, in trial order."""
        chosen = [d.id for d in trial.devices] if self.devices == "all" else list(self.devices)
        return chosen[: self.count] if self.count is not None else chosen

    def fault_list(self) -> list[Fault]:
        """The faults, ready for the simulator."""
        return [spec.fault() for spec in self.faults]

    def start_time(self, trial: Trial, *, now: datetime | None = None) -> datetime:
        """The simulated start: now, now minus a duration, or a fixed time."""
        now = now or utcnow()
        text = self.start.strip()
        if text == "now":
            return now
        if text.startswith("now-"):
            from simulators.cli import parse_duration

            return now - parse_duration(text.removeprefix("now-"))
        from simulators.cli import parse_start

        return parse_start(text, trial)

    def check(self, trial: Trial) -> list[str]:
        """Problems only visible next to the trial: unknown devices or measurements."""
        problems = []
        known = {d.id for d in trial.devices}
        if self.devices != "all":
            problems += [
                f"devices: no device {d!r} in trial {trial.id!r}" for d in self.devices if d not in known
            ]
        measured = {m.name for p in trial.profiles for m in p.measurements}
        for i, spec in enumerate(self.faults):
            for d in spec.devices or ():
                if d not in known:
                    problems.append(f"faults.{i}.devices: no device {d!r} in trial {trial.id!r}")
            for m in spec.measurements or ():
                if m not in measured:
                    problems.append(f"faults.{i}.measurements: no measurement {m!r} in trial {trial.id!r}")
        return problems


def load_scenario(path: Path, trials: dict[str, Trial]) -> tuple[Scenario, Trial]:
    """Read and validate a scenario file against the trials; ConfigError names file and path."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the scenario: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from exc
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
    trial = trials.get(scenario.trial)
    if trial is None:
        raise ConfigError(f"{path}: trial: no trial {scenario.trial!r} (have {', '.join(sorted(trials))})")
    problems = scenario.check(trial)
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    return scenario, trial


def demo_scenarios() -> dict[str, Path]:
    """The shipped live demo of each trial that has one, by trial id (`<trial>-demo.yaml`)."""
    return {p.name.removesuffix("-demo.yaml"): p for p in sorted(SCENARIOS_DIR.glob("*-demo.yaml"))}
