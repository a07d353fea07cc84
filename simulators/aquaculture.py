"""Fish-farm devices with state: the plankton counter (sampling faster in a bloom) and the feeder."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from midika.models.trial import Device, Trial
from simulators.devices import KIND_ORDER, DeviceModel, Observation
from simulators.environment import Environment
from simulators.signals import rng_for
from simulators.water import SPECIES, Species

BLOOM_SAMPLING_S = 3600.0  # counts go hourly while any species is at caution or above
LEVELS = ("caution", "alarm")
RELEASE = 0.5  # a level is left only when the count falls below half its threshold
FEEDING_TIMES = (time(7, 0), time(14, 30))  # local time (assumed)
FEEDING_JITTER_S = 15 * 60
CAGE_INTERVAL_S = 12 * 60  # the barge feeds one cage after the other
FEED_KG = 420.0  # per cage per feeding at the best water temperature (assumed)
STOP_DO_MG_L = 5.0
STOP_HS_M = 2.5


class PlanktonCounter(DeviceModel):
    """Counts harmful species daily (hourly in a bloom) and alerts when one crosses a threshold."""

    profile_id = "plankton-counter"
    handled_events = frozenset({"BLOOM_ALERT"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        periods = [m.period_s for m in self.profile.measurements]
        self.period_s = min(periods) if periods else 86400.0
        self._next_ms = self.anchor_ms
        self._level: dict[str, int] = {}  # species → 0 none, 1 caution, 2 alarm

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Samples on an adaptive schedule; a BLOOM_ALERT follows a count that raised a level."""
        out = [*self.status(t0_ms, t1_ms), *self.events(t0_ms, t1_ms)]
        while self._next_ms < t1_ms:
            when = self._next_ms
            values = {
                m.name: self.measure(m, np.array([when], dtype=np.int64))[0]
                for m in self.profile.measurements
            }
            if when >= t0_ms and values:
                out.append(Observation(when, "up", {"values": values}))
            blooming = False
            for name, value in values.items():
                species = SPECIES.get(name)
                if species is None or not isinstance(value, int | float):
                    continue
                level, was = _level(species, value), self._level.get(name, 0)
                if level > was:
                    data = {"species": name, "cells_per_ml": float(value), "level": LEVELS[level - 1]}
                    out.append(self.event(when, "BLOOM_ALERT", data))
                elif level < was and value > RELEASE * (species.alarm if was == 2 else species.caution):
                    level = was  # hysteresis: a count wobbling around a threshold alerts once
                self._level[name] = level
                blooming = blooming or level > 0
            self._next_ms = when + round(
                1000 * (min(BLOOM_SAMPLING_S, self.period_s) if blooming else self.period_s)
            )
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out


def _level(species: Species, cells: float) -> int:
    return 2 if cells >= species.alarm else 1 if cells >= species.caution else 0


class Feeder(DeviceModel):
    """Feeds every cage twice a day, or reports why it stopped: low oxygen, red tide, rough sea."""

    profile_id = "feeder"
    handled_events = frozenset({"FEEDING", "FEED_STOP"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        # The cages are the other sites that have devices; a feeder alone on a trial feeds its own site.
        others = {d.site for d in trial.devices if d.site != device.site and d.profile != device.profile}
        self.cages = sorted(others) or [device.site]
        self.types = {e.type for e in self.profile.events}

    def events(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Feeding slots in [t0, t1), plus the generic trickle for event types without a model."""
        out = super().events(t0_ms, t1_ms)
        zone = self.trial.zone
        first = datetime.fromtimestamp(t0_ms / 1000, UTC).astimezone(zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(t1_ms / 1000, UTC).astimezone(zone).date()
        day = first
        while day <= last:
            for slot, at in enumerate(FEEDING_TIMES):
                out.extend(self._slot(day, slot, at, t0_ms, t1_ms))
            day += timedelta(days=1)
        return out

    def _slot(self, day: date, slot: int, at: time, t0_ms: int, t1_ms: int) -> list[Observation]:
        # A fresh stream per slot, drawn in full every time: whichever chunk asks, the slot is the same.
        rng = rng_for(self.seed, self.device.id, "slot", day.isoformat(), slot)
        jitter = int(rng.integers(-FEEDING_JITTER_S, FEEDING_JITTER_S + 1))
        shares = rng.uniform(0.85, 1.15, len(self.cages))
        start_ms = int(datetime.combine(day, at, tzinfo=self.trial.zone).timestamp() + jitter) * 1000
        if start_ms >= t1_ms or start_ms + len(self.cages) * CAGE_INTERVAL_S * 1000 <= t0_ms:
            return []
        reason = self.stop_reason(start_ms / 1000)
        if reason is not None:
            if "FEED_STOP" in self.types and t0_ms <= start_ms < t1_ms:
                return [self.event(start_ms, "FEED_STOP", {"reason": reason})]
            return []
        if "FEEDING" not in self.types:
            return []
        out = []
        for k, cage in enumerate(self.cages):
            when_ms = start_ms + k * CAGE_INTERVAL_S * 1000
            if t0_ms <= when_ms < t1_ms:
                temp = float(self.env.sea_temperature(np.array([when_ms / 1000]), depth_m=5.0)[0])
                appetite = math.exp(-0.5 * ((temp - 23.0) / 5.0) ** 2)
                kg = round(FEED_KG * appetite * float(shares[k]), 1)
                out.append(self.event(when_ms, "FEEDING", {"kg": kg, "cage": cage}))
        return out

    def stop_reason(self, t_s: float) -> str | None:
        """Why feeding must not go ahead at `t_s`, or None."""
        t = np.array([t_s])
        if any(
            float(self.env.water.cells(t, species=s, site=cage)[0]) >= s.alarm
            for s in SPECIES.values()
            for cage in self.cages
        ):
            return "red_tide"
        if float(self.env.water.oxygen(t, depth_m=5.0)[0]) < STOP_DO_MG_L:
            return "low_oxygen"
        if float(self.env.hs(t)[0]) > STOP_HS_M:
            return "rough_sea"
        return None
