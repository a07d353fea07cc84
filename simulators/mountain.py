"""Climbers on a mountain trail, and the receivers, counters and weather stations that watch them.

The trail is the trial's sites ordered by altitude (read from "(2400 m)" in each site's name). Each
local day brings climbers drawn from the season, the weekday and the weather: most start in the
morning, some start at midday and sleep in a hut, and "bullet" climbers start late in the evening
for the sunrise. Each walks at their own pace, a few turn back, and every one comes down again. A
receiver sights the beacons passing its station (missing some in crowds); a counter counts them.
Like the environment, the climbers are a pure function of (seed, trial, day). Numbers are assumed
(REFERENCE_MODELS.md §4: up to ~6,000 climbers a day on the whole mountain).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from midika.models.trial import Device, Measurement, Trial
from simulators.devices import KIND_ORDER, DeviceModel, IntArray, Observation, site_altitude
from simulators.environment import Environment
from simulators.signals import DAY, FloatArray, rng_for

SEASON_OPEN_DOY, SEASON_CLOSE_DOY = 191, 253  # 10 July - 10 September (Fujinomiya trail)
PEAK_CLIMBERS = 1500.0  # a day at Obon, on this trail
PEAK_DOY = 225.0
OFF_SEASON_CLIMBERS = 3.0
UP_MIN_PER_M = 0.22  # ascent: ~1300 m in about 5 hours with rests
DOWN_MIN_PER_M = 0.10
BEACONS = 7000
CONGESTION_PER_30_MIN = 400
GUST_WARNING = 20.0
FREEZING = 0.0

NDArrayInt = np.ndarray[Any, np.dtype[np.int64]]
NDArrayBool = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class Passes:
    """Every passing of one station on one day, sorted by time."""

    time: FloatArray  # epoch seconds
    beacon: NDArrayInt
    up: NDArrayBool
    dwell: FloatArray  # seconds the beacon stays in range


class Trail:
    """The climbers of one trial: who passes which station, when."""

    def __init__(self, trial: Trial, env: Environment) -> None:
        self.trial, self.env = trial, env
        ranked = sorted((site_altitude(trial, s.id), s.id) for s in trial.sites)
        self.stations = [site for _, site in ranked]
        altitudes = np.array([alt for alt, _ in ranked])
        self.up_min = np.diff(altitudes) * UP_MIN_PER_M + 5.0  # minutes between stations, going up
        self.down_min = np.diff(altitudes) * DOWN_MIN_PER_M + 2.0
        # Midday starters sleep in the hut nearest 3,100 m and set off again at 2 a.m.
        self.hut = int(np.argmin(np.abs(altitudes - 3100.0)))
        self._days = lru_cache(maxsize=8)(self._day)

    def expected(self, day: date) -> float:
        """Mean number of climbers starting on `day`."""
        doy = day.timetuple().tm_yday
        if not SEASON_OPEN_DOY <= doy <= SEASON_CLOSE_DOY:
            return OFF_SEASON_CLIMBERS
        mean = 250.0 + (PEAK_CLIMBERS - 250.0) * np.exp(-0.5 * ((doy - PEAK_DOY) / 12.0) ** 2)
        noon = datetime.combine(day, datetime.min.time(), tzinfo=self.trial.zone) + timedelta(hours=12)
        storm = float(self.env.air.storm(np.array([noon.timestamp()]))[0])
        weekend = 1.5 if day.weekday() == 5 else 1.15 if day.weekday() == 6 else 1.0
        return float(mean * weekend * (1.0 - 0.6 * min(storm, 1.0)))

    def passes(self, station: str, t0: float, t1: float) -> Passes:
        """Passings of `station` with a time in [t0, t1), across the days that can have them."""
        index = self.stations.index(station)
        zone = self.trial.zone
        first = datetime.fromtimestamp(t0, UTC).astimezone(zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(t1, UTC).astimezone(zone).date()
        parts: list[Passes] = []
        day = first
        while day <= last:
            p = self._days(day)[index]
            keep = (p.time >= t0) & (p.time < t1)
            parts.append(Passes(p.time[keep], p.beacon[keep], p.up[keep], p.dwell[keep]))
            day += timedelta(days=1)
        time = np.concatenate([p.time for p in parts])
        order = np.argsort(time, kind="stable")
        return Passes(
            time[order],
            np.concatenate([p.beacon for p in parts])[order],
            np.concatenate([p.up for p in parts])[order],
            np.concatenate([p.dwell for p in parts])[order],
        )

    def _day(self, day: date) -> list[Passes]:
        rng = rng_for(self.env.seed, self.trial.id, "climbers", day.isoformat())
        n = int(rng.poisson(self.expected(day)))
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=self.trial.zone).timestamp()
        kind = rng.choice(3, n, p=[0.45, 0.30, 0.25])  # morning, hut stay, bullet (night) climbers
        start_h = np.select(
            [kind == 0, kind == 1],
            [rng.normal(7.5, 1.2, n), rng.normal(12.0, 1.0, n)],
            rng.normal(21.0, 1.0, n),
        )
        pace = np.exp(rng.normal(0.0, 0.2, n)) * np.where(rng.random(n) < 0.01, 2.5, 1.0)
        top = len(self.stations) - 1
        turn = np.where(rng.random(n) < 0.07, rng.integers(1, max(2, top), n), top)
        stay = rng.uniform(20.0, 90.0, n) * 60.0
        resume = midnight + DAY + 2 * 3600.0 + rng.normal(0.0, 1800.0, n)
        beacons = rng.choice(BEACONS, n, replace=False) if n <= BEACONS else rng.integers(0, BEACONS, n)
        dwell = np.exp(rng.normal(np.log(120.0), 0.7, (len(self.stations), 2, n)))
        up_times = np.empty((len(self.stations), n))
        up_times[0] = midnight + start_h * 3600.0
        for s in range(1, len(self.stations)):
            walk = up_times[s - 1] + self.up_min[s - 1] * 60.0 * pace
            if s - 1 == self.hut:
                walk = np.where(kind == 1, np.maximum(walk, resume), walk)
            up_times[s] = walk
        down_times = np.full((len(self.stations), n), np.nan)
        down_times[turn, np.arange(n)] = up_times[turn, np.arange(n)] + np.where(turn == top, stay, 300.0)
        for s in range(top - 1, -1, -1):
            below = down_times[s + 1] + self.down_min[s] * 60.0 * pace
            down_times[s] = np.where(s < turn, below, down_times[s])
        out = []
        for s in range(len(self.stations)):
            reached = s <= turn
            goes_down = s < turn
            time = np.concatenate([up_times[s][reached], down_times[s][goes_down]])
            up = np.concatenate([np.ones(int(reached.sum()), bool), np.zeros(int(goes_down.sum()), bool)])
            who = np.concatenate([beacons[reached], beacons[goes_down]])
            stays = np.concatenate([dwell[s, 0][reached], dwell[s, 1][goes_down]])
            if s == top:
                stays = np.maximum(stays, np.concatenate([stay[reached], stay[goes_down]]))
            order = np.argsort(time, kind="stable")
            out.append(
                Passes(time[order], who[order].astype(np.int64), up[order], np.clip(stays[order], 5, 7200))
            )
        return out


def trail(env: Environment) -> Trail:
    """The trial's trail, shared by all its devices."""
    return env.shared("trail", lambda: Trail(env.trial, env))


class _HutPowered(DeviceModel):
    """A device on a hut's 12 V system, topped up by a solar panel."""

    def battery(self, t: FloatArray) -> FloatArray:
        """12 V lead battery: 12.4 V at night, up to 13.6 V charging in sunshine."""
        sun = np.clip(self.env.air.solar(t) / 800.0, 0.0, 1.0)
        return np.asarray(12.4 + 1.2 * sun + 0.05 * self.smooth("battery", timescale_s=DAY)(t))


class BeaconReceiver(_HutPowered):
    """Sights the beacons passing its station; misses more of them in a crowd."""

    profile_id = "beacon-receiver"
    handled_events = frozenset({"SIGHTING"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        self.trail = trail(env)
        self._seen_ms = np.zeros(0, dtype=np.int64)  # sightings of the last 10 minutes, for beacons_seen
        self._seen_beacon = np.zeros(0, dtype=np.int64)

    def sightings(self, t0_ms: int, t1_ms: int) -> tuple[NDArrayInt, Passes, IntArray]:
        """(first-seen ms, the passes sighted, rssi) for sightings first seen in [t0, t1)."""
        # Look back an hour: a long dwell starts well before the passing it centres on.
        p = self.trail.passes(self.device.site, t0_ms / 1000.0 - 3600.0, t1_ms / 1000.0 + 3600.0)
        rng = rng_for(self.seed, self.device.id, "sightings", round(t0_ms / 1000.0 - 3600.0))
        crowd = np.searchsorted(p.time, p.time + 120.0) - np.searchsorted(p.time, p.time - 120.0)
        detected = rng.random(p.time.size) < 0.95 - 0.35 * np.minimum(crowd / 150.0, 1.0)
        first_ms = np.floor((p.time - p.dwell / 2.0) * 1000.0).astype(np.int64)
        first_ms += rng.integers(0, 1000, p.time.size)  # receivers stamp milliseconds
        rssi = np.rint(rng.uniform(-92.0, -45.0, p.time.size)).astype(np.int64)
        keep = detected & (first_ms >= t0_ms) & (first_ms < t1_ms)
        order = np.argsort(first_ms[keep], kind="stable")
        first = first_ms[keep][order]
        # An event is identified by its type and time: two sightings never share a millisecond.
        for i in range(1, first.size):
            if first[i] <= first[i - 1]:
                first[i] = first[i - 1] + 1
        chosen = Passes(p.time[keep][order], p.beacon[keep][order], p.up[keep][order], p.dwell[keep][order])
        return first, chosen, rssi[keep][order]

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Sightings, then the 10-minute counts of distinct beacons they add up to."""
        first, p, rssi = self.sightings(t0_ms, t1_ms)
        events = [
            self.event(
                int(when),
                "SIGHTING",
                {"beacon_id": f"b{int(beacon):04d}", "rssi": int(r), "dwell_s": round(float(d), 1)},
            )
            for when, beacon, r, d in zip(
                first.tolist(), p.beacon.tolist(), rssi.tolist(), p.dwell.tolist(), strict=True
            )
        ]
        self._seen_ms = np.concatenate([self._seen_ms, first])
        self._seen_beacon = np.concatenate([self._seen_beacon, p.beacon])
        out = [*self.status(t0_ms, t1_ms), *self.readings(t0_ms, t1_ms), *events, *self.events(t0_ms, t1_ms)]
        keep = self._seen_ms >= t1_ms - 600_000
        self._seen_ms, self._seen_beacon = self._seen_ms[keep], self._seen_beacon[keep]
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """beacons_seen: distinct beacons first seen in the 10 minutes before each time."""
        if m.name != "beacons_seen":
            return super().measure(m, times_ms)
        window = round(m.period_s * 1000)
        return [
            int(np.unique(self._seen_beacon[(self._seen_ms > t - window) & (self._seen_ms <= t)]).size)
            for t in times_ms.tolist()
        ]


class TrailCounter(_HutPowered):
    """Counts climbers up and down every 30 minutes (missing a few who walk side by side)."""

    profile_id = "trail-counter"
    handled_events = frozenset({"CONGESTION"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        self.trail = trail(env)

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """up_count and down_count over the period before each time."""
        if m.name not in ("up_count", "down_count"):
            return super().measure(m, times_ms)
        out = []
        rng = self.rng("miscount", m.name)
        for t in (times_ms / 1000.0).tolist():
            p = self.trail.passes(self.device.site, t - m.period_s, t)
            n = int(p.up.sum()) if m.name == "up_count" else int((~p.up).sum())
            out.append(int(rng.binomial(n, 0.93)) if n else 0)
        return out

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Counts, and CONGESTION when the climbers going up exceed what the segment holds."""
        readings = self.readings(t0_ms, t1_ms)
        out = [*self.status(t0_ms, t1_ms), *readings, *self.events(t0_ms, t1_ms)]
        for obs in readings:
            count = obs.body["values"].get("up_count")
            if isinstance(count, int) and count >= CONGESTION_PER_30_MIN:
                out.append(self.event(obs.time_ms, "CONGESTION", {"count": count}))
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out


class WeatherStation(_HutPowered):
    """Station weather at the hut's altitude; WEATHER_WARNING when a gust or frost begins."""

    profile_id = "weather-station"
    handled_events = frozenset({"WEATHER_WARNING"})
    quiet_samples: ClassVar[int] = 6  # a new warning only after an hour without one

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        self._calm = {"gust": self.quiet_samples, "freezing": self.quiet_samples}

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Readings, then warnings from the values just sent."""
        readings = self.readings(t0_ms, t1_ms)
        out = [*self.status(t0_ms, t1_ms), *readings, *self.events(t0_ms, t1_ms)]
        for obs in readings:
            values = obs.body["values"]
            gust, temp = values.get("wind_gust"), values.get("air_temperature")
            warned = False
            for reason, value, bad in (
                ("gust", gust, gust is not None and gust >= GUST_WARNING),
                ("freezing", temp, temp is not None and temp < FREEZING),
            ):
                if value is None:
                    continue
                if bad and self._calm[reason] >= self.quiet_samples:
                    if warned:  # one event per (device, type, ts) is all a store keeps: warn next sample
                        continue
                    out.append(self.event(obs.time_ms, "WEATHER_WARNING", {"reason": reason, "value": value}))
                    warned = True
                self._calm[reason] = 0 if bad else self._calm[reason] + 1
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out
