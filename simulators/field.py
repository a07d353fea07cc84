"""Vineyard devices: a field station that raises its own weather alerts, and the grower's work log.

The station's alerts come from the values it sends, so an evaluator can check them against the
readings. The work log follows the grape calendar of the Hokuriku (Delaware and Ruby Roman):
pruning in winter, disbudding and gibberellin in spring, thinning and bagging in early summer,
harvest from mid-July; no field work in the rain. Calendars and durations are assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import numpy as np

from midika.models.trial import Device, Measurement, Trial
from simulators.devices import KIND_ORDER, DeviceModel, IntArray, Observation
from simulators.environment import Environment
from simulators.signals import rng_for

HEAT_C = 35.0
FROST_C = 0.0
DISEASE_RH = 90.0
DISEASE_HOURS = 6.0
ONSET_SAMPLES = 3  # HEAT and FROST only after 30 minutes, so one noisy sample does not alert
UNSHIELDED_C_PER_W = 0.005  # an unshielded sensor reads ~5 °C high in full sun


class FieldStation(DeviceModel):
    """Air, light and soil; HEAT, FROST and DISEASE_RISK from its own 10-minute air readings."""

    profile_id = "field-station"
    handled_events = frozenset({"HEAT", "FROST", "DISEASE_RISK"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        # The trial file says which station lacks its radiation shield; the error is the hardware's.
        self.unshielded = "unshielded" in device.description.lower()
        self._runs = {"HEAT": 0, "FROST": 0, "DISEASE_RISK": 0}

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """Physics, plus the sun's heating of an unshielded air sensor."""
        values = super().measure(m, times_ms)
        if m.name == "air_temperature" and self.unshielded and values:
            bias = UNSHIELDED_C_PER_W * self.env.air.solar(times_ms / 1000.0)
            values = [round(float(v) + float(b), 1) for v, b in zip(values, bias, strict=True)]
        return values

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Readings first; alerts follow from the air values just sent."""
        readings = self.readings(t0_ms, t1_ms)
        out = [*self.status(t0_ms, t1_ms), *readings, *self.events(t0_ms, t1_ms)]
        for obs in readings:
            out.extend(self._alerts(obs))
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def _alerts(self, obs: Observation) -> list[Observation]:
        values = obs.body["values"]
        temp, rh = values.get("air_temperature"), values.get("relative_humidity")
        checks: list[tuple[str, float | None, bool, int]] = [
            ("HEAT", temp, temp is not None and temp > HEAT_C, ONSET_SAMPLES),
            ("FROST", temp, temp is not None and temp < FROST_C, ONSET_SAMPLES),
            ("DISEASE_RISK", rh, rh is not None and rh >= DISEASE_RH, int(DISEASE_HOURS * 6) + 1),
        ]
        out = []
        for kind, value, now, needed in checks:
            if value is None:
                continue
            self._runs[kind] = self._runs[kind] + 1 if now else 0
            if self._runs[kind] == needed:  # once per spell, when it has lasted long enough
                hours = round((needed - 1) / 6, 2)
                out.append(self.event(obs.time_ms, kind, {"value": float(value), "hours": hours}))
        return out


@dataclass(frozen=True, slots=True)
class Task:
    """A field task: the days of the year it is done on, the chance of it on one such day, minutes."""

    name: str
    first_doy: int
    last_doy: int
    chance: float
    minutes: float


CALENDAR: tuple[Task, ...] = (
    Task("pruning", 10, 80, 0.55, 180),
    Task("fertilising", 60, 90, 0.1, 120),
    Task("disbudding", 110, 140, 0.7, 150),
    Task("shoot_thinning", 130, 160, 0.6, 180),
    Task("gibberellin", 140, 168, 0.35, 120),
    Task("berry_thinning", 156, 181, 0.8, 240),
    Task("bagging", 176, 196, 0.7, 240),
    Task("spraying", 105, 243, 0.1, 90),
    Task("mowing", 121, 273, 0.07, 90),
    Task("harvest", 196, 258, 0.8, 300),
    Task("fertilising", 288, 334, 0.15, 120),
)


class WorkLog(DeviceModel):
    """The grower's app: a WORK event per task done, on dry working days, in daylight."""

    profile_id = "work-log"
    handled_events = frozenset({"WORK"})
    status_period_s: ClassVar[float] = 3600.0
    battery_decimals: ClassVar[int] = 2

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        letter = device.site.rsplit("-", 1)[-1]
        self.operators = [f"op-{letter}1", f"op-{letter}1", f"op-{letter}2"]  # the expert does most

    def battery(self, t: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """A phone: state of charge 0..1, drained by day and charged overnight."""
        hour, _ = self.env.local_time(t)
        return np.asarray(np.clip(1.0 - 0.05 * np.clip(hour - 6.0, 0.0, None), 0.15, 1.0))

    def events(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """The day's tasks for each local day the chunk touches, plus unmodelled event types."""
        out = super().events(t0_ms, t1_ms)
        zone = self.trial.zone
        day = datetime.fromtimestamp(t0_ms / 1000, UTC).astimezone(zone).date()
        last = datetime.fromtimestamp(t1_ms / 1000, UTC).astimezone(zone).date()
        while day <= last:
            out.extend(o for o in self._day(day) if t0_ms <= o.time_ms < t1_ms)
            day += timedelta(days=1)
        return out

    def _day(self, day: date) -> list[Observation]:
        # A fresh stream per day, drawn in full: whichever chunk asks, the day's log is the same.
        rng = rng_for(self.seed, self.device.id, "day", day.isoformat())
        doy = day.timetuple().tm_yday
        draws = rng.random(len(CALENDAR) + 1)
        if day.weekday() == 6 and draws[-1] < 0.7:  # most Sundays off
            return []
        clock = datetime.combine(day, datetime.min.time(), tzinfo=self.trial.zone) + timedelta(
            hours=float(rng.uniform(5.5, 8.0))
        )
        out = []
        for task, draw in zip(CALENDAR, draws, strict=False):
            if not (task.first_doy <= doy <= task.last_doy and draw < task.chance):
                continue
            minutes = round(float(task.minutes * rng.uniform(0.6, 1.4)), 0)
            when_ms = int(clock.timestamp()) * 1000
            if float(self.env.rain(np.array([when_ms / 1000.0]))[0]) > 0 or clock.hour >= 18:
                continue  # rain stops field work; nothing starts after dark
            operator = self.operators[int(rng.integers(0, len(self.operators)))]
            data = {"task": task.name, "operator": operator, "duration_min": minutes}
            out.append(self.event(when_ms, "WORK", data))
            clock += timedelta(minutes=minutes + float(rng.uniform(10, 60)))
        return out
