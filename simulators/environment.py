"""The conditions at a trial's place (sea, weather, rips, plankton), shared by all its devices.

Every method is a pure function of time for a given (seed, trial), so any subset of devices, any
start and any sampling rate see the same world. Constants are engineering estimates (see
REFERENCE_MODELS.md); they are named here so they are easy to change.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from midika.models.trial import Trial
from simulators.signals import (
    DAY,
    HOUR,
    BoolArray,
    Episodes,
    FloatArray,
    SmoothNoise,
    TideModel,
    beach_occupancy,
    diurnal,
    exposure,
    front_shape,
    rng_for,
    season_bump,
    seasonal,
    soft_cap,
    sun_elevation,
)

if TYPE_CHECKING:
    from simulators.atmosphere import Air
    from simulators.water import Water

HS_CAP = 3.95  # m: buoys saturate just below the 4 m the profile allows
FRONT_MAX_RISE = 36 * HOUR
FRONT_MEMORY = 6 * FRONT_MAX_RISE  # a front's swell has died down after six rise times
RIP_RATE_AT_1M = 2.0 / DAY  # rip onsets per zone at Hs 1 m; grows with Hs² (assumed)
GRID_S = 60.0  # smooth fields are computed on this grid and interpolated
GRID_BLOCK_S = 6 * 3600.0
GRID_CACHE = 4096  # blocks kept: a few hours of every field of a trial

P = ParamSpec("P")
C = TypeVar("C", bound="FieldCache")
S = TypeVar("S")
Field = Callable[Concatenate[C, FloatArray, P], FloatArray]


def gridded(method: Field[C, P]) -> Field[C, P]:
    """Compute a smooth field once per 6 h block on a 1-minute grid, and interpolate.

    A trial's devices sample the same fields at nearly the same times (each a few seconds apart);
    computing each field once per block instead of once per device and call is what makes a week
    of a trial take seconds. The grid is aligned to the epoch, so the field stays a pure function
    of time. Only for smooth fields: steps (a rip starting) would be smeared over a minute.
    """

    @functools.wraps(method)
    def wrapper(self: C, t: FloatArray, /, *args: P.args, **kwargs: P.kwargs) -> FloatArray:
        key = (method.__name__, args, tuple(sorted(kwargs.items())))
        return self.field(key, lambda x: method(self, x, *args, **kwargs), t)

    return wrapper


class FieldCache:
    """Shared random streams and gridded fields of one (seed, trial)."""

    def __init__(self, trial: Trial, seed: int) -> None:
        self.trial = trial
        self.seed = seed
        self._noise: dict[tuple[str, ...], SmoothNoise] = {}
        self._episodes: dict[tuple[str, ...], Episodes] = {}
        self._grid: OrderedDict[tuple[object, ...], FloatArray] = OrderedDict()
        self._shared: dict[str, Any] = {}

    def noise(self, *names: str, timescale_s: float) -> SmoothNoise:
        """The trial's smooth noise stream called `names`."""
        key = (*names, str(timescale_s))
        if key not in self._noise:
            self._noise[key] = SmoothNoise(self.seed, self.trial.id, *names, timescale_s=timescale_s)
        return self._noise[key]

    def episodes(self, *names: str, make: Callable[[], Episodes]) -> Episodes:
        """The trial's episode process called `names`, made on first use."""
        if names not in self._episodes:
            self._episodes[names] = make()
        return self._episodes[names]

    def shared(self, key: str, make: Callable[[], S]) -> S:
        """An object all devices of the trial share (a trail's climbers), made on first use."""
        if key not in self._shared:
            self._shared[key] = make()
        found: S = self._shared[key]
        return found

    def field(
        self, key: tuple[object, ...], fn: Callable[[FloatArray], FloatArray], t: FloatArray
    ) -> FloatArray:
        """`fn` at `t`, interpolated from its cached grid."""
        t = np.asarray(t, dtype=np.float64)
        if t.size == 0:
            return np.zeros(t.shape)
        first = math.floor(float(t.min()) / GRID_BLOCK_S)
        last = math.floor(float(t.max()) / GRID_BLOCK_S)
        if last - first > 48:  # a few samples far apart: computing them directly is cheaper
            return fn(t)
        if first == last:
            return np.interp(t, *self._grid_block(key, fn, first))
        out = np.empty(t.shape)
        blocks = np.floor(t / GRID_BLOCK_S)
        for block in range(first, last + 1):
            mask = blocks == block
            if mask.any():
                out[mask] = np.interp(t[mask], *self._grid_block(key, fn, block))
        return out

    def _grid_block(
        self, key: tuple[object, ...], fn: Callable[[FloatArray], FloatArray], block: int
    ) -> tuple[FloatArray, FloatArray]:
        xs = block * GRID_BLOCK_S + np.arange(0.0, GRID_BLOCK_S + GRID_S, GRID_S)
        values = self._grid.get((*key, block))
        if values is None:
            values = np.asarray(fn(xs), dtype=np.float64)
            self._grid[(*key, block)] = values
            if len(self._grid) > GRID_CACHE:
                self._grid.popitem(last=False)
        return xs, values


class Environment(FieldCache):
    """Sea and weather at one trial's place, for one seed."""

    def __init__(self, trial: Trial, seed: int) -> None:
        super().__init__(trial, seed)
        self.lat = sum(s.lat for s in trial.sites) / len(trial.sites)
        self.lon = sum(s.lon for s in trial.sites) / len(trial.sites)
        # Tides belong to the place, not to the seed: two seeds differ in weather, not in the moon.
        phases = rng_for(0, "tide", round(self.lat, 1), round(self.lon, 1)).uniform(0, 360, 4)
        self.tide = TideModel(phases_deg=(phases[0], phases[1], phases[2], phases[3]))

    @cached_property
    def water(self) -> Water:
        """Water quality and plankton, for fish farms."""
        from simulators.water import Water

        return Water(self)

    @cached_property
    def air(self) -> Air:
        """Air temperature, humidity, pressure, wind, sunshine and soil, at any altitude."""
        from simulators.atmosphere import Air

        return Air(self)

    # -- weather ----------------------------------------------------------------------------------

    @cached_property
    def fronts(self) -> Episodes:
        """Storm fronts: more in winter and in the typhoon season; duration = time to peak swell."""
        base = 1.0 / (5 * DAY)

        def rate(t: FloatArray) -> FloatArray:
            winter = season_bump(t, peak_doy=15, width_days=60)
            typhoon = season_bump(t, peak_doy=255, width_days=30)
            return base * (0.6 + 0.8 * winter + 0.8 * typhoon)

        return Episodes(
            self.seed,
            self.trial.id,
            "fronts",
            rate=rate,
            rate_max=2.2 * base,
            mean_duration_s=14 * HOUR,
            min_duration_s=6 * HOUR,
            max_duration_s=FRONT_MAX_RISE,
        )

    @cached_property
    def rain_spells(self) -> Episodes:
        """Rain: most in the tsuyu (June-July) and autumn rain seasons; size = intensity."""
        base = 1.0 / (4 * DAY)

        def rate(t: FloatArray) -> FloatArray:
            tsuyu = season_bump(t, peak_doy=170, width_days=15)
            autumn = season_bump(t, peak_doy=255, width_days=25)
            return base * (0.7 + 1.2 * tsuyu + 0.6 * autumn)

        return Episodes(
            self.seed,
            self.trial.id,
            "rain",
            rate=rate,
            rate_max=2.6 * base,
            mean_duration_s=5 * HOUR,
            max_duration_s=DAY,
        )

    @gridded
    def rain(self, t: FloatArray) -> FloatArray:
        """Rain intensity 0..1 (0 dry)."""
        out = np.zeros(np.shape(t))
        if np.size(t):
            for e in self.rain_spells.between(float(np.min(t)), float(np.max(t)) + 1):
                out = np.maximum(out, np.where((t >= e.start) & (t < e.end), 0.2 + 0.8 * e.size, 0.0))
        return out

    @gridded
    def cloud(self, t: FloatArray) -> FloatArray:
        """Cloud cover 0..1."""
        base = 0.45 + 0.3 * self.noise("cloud", timescale_s=8 * HOUR)(t)
        return np.clip(base + 0.5 * (self.rain(t) > 0), 0.0, 1.0)

    @gridded
    def sun(self, t: FloatArray) -> FloatArray:
        """Solar elevation, degrees."""
        return sun_elevation(t, self.lat, self.lon)

    def local_time(self, t: FloatArray) -> tuple[FloatArray, BoolArray]:
        """Civil local hour (0-24) and whether it is a weekend, in the trial's time zone."""
        hours = np.floor(np.asarray(t) / HOUR)
        offsets = np.empty(np.shape(t))
        for h in np.unique(hours):  # the UTC offset only changes on the hour, if ever
            when = datetime.fromtimestamp(float(h) * HOUR, UTC).astimezone(self.trial.zone)
            offset = when.utcoffset()
            offsets[hours == h] = offset.total_seconds() if offset is not None else 0.0
        local = np.asarray(t) + offsets
        weekday = np.mod(np.floor(local / DAY) + 3, 7)  # 1970-01-01 was a Thursday (3)
        return np.mod(local / HOUR, 24.0), weekday >= 5

    # -- sea state --------------------------------------------------------------------------------

    @gridded
    def hs(self, t: FloatArray) -> FloatArray:
        """Significant wave height, m: a seasonal base with noise plus swell from storm fronts."""
        base = seasonal(t, mean=0.85, amplitude=0.2, peak_doy=15)
        base = base * np.exp(0.35 * self.noise("hs", timescale_s=10 * HOUR)(t))
        swell = np.zeros(np.shape(t))
        if np.size(t):
            t0, t1 = float(np.min(t)), float(np.max(t)) + 1
            for e in self.fronts.between(t0, t1, lookback_s=FRONT_MEMORY):
                swell += (0.4 + 2.4 * e.size**2) * front_shape(t - e.start, e.end - e.start)
        return np.clip(soft_cap(base + swell, HS_CAP), 0.05, None)

    @gridded
    def tp(self, t: FloatArray) -> FloatArray:
        """Peak wave period, s: longer for bigger (swell-dominated) seas."""
        tp = 4.0 + 4.0 * np.sqrt(self.hs(t)) + 0.35 * self.noise("tp", timescale_s=6 * HOUR)(t)
        return np.clip(tp, 4.0, 16.0)

    def wave_dir(self, t: FloatArray) -> FloatArray:
        """Direction waves come from, degrees: mostly south-easterly swell."""
        return np.mod(140.0 + 30.0 * self.noise("wave_dir", timescale_s=12 * HOUR)(t), 360.0)

    def low_tide(self, t: FloatArray) -> FloatArray:
        """0 at mean level or above, rising to 1 a metre below it."""
        return np.clip((self.tide.datum_offset - self.tide.level(t)) / 1.0, 0.0, 1.0)

    @gridded
    def current_speed(self, t: FloatArray, *, depth_m: float = 0.0) -> FloatArray:
        """Current speed, m/s: tidal flow plus wind and wave drift, weaker at depth."""
        tidal = 0.18 * np.abs(self.tide.rate(t)) / 0.5
        drift = 0.05 + 0.08 * self.hs(t) + 0.04 * self.noise("current", timescale_s=4 * HOUR)(t)
        return np.clip((tidal + drift) * math.exp(-depth_m / 30.0), 0.0, None)

    def current_dir(self, t: FloatArray) -> FloatArray:
        """Direction the current flows towards, degrees: alongshore, reversing with the tide."""
        flood = self.tide.rate(t) >= 0
        return np.mod(
            np.where(flood, 60.0, 240.0) + 20 * self.noise("current_dir", timescale_s=3 * HOUR)(t), 360
        )

    @gridded
    def sea_temperature(self, t: FloatArray, *, depth_m: float = 0.5) -> FloatArray:
        """Water temperature, °C: seasonal, synoptic and diurnal near the surface; cooler below in summer."""
        surface = seasonal(t, mean=21.0 - 0.5 * (self.lat - 32.7), amplitude=5.5, peak_doy=235)
        surface = surface + 0.7 * self.noise("sst", timescale_s=5 * DAY)(t)
        day = diurnal(t, lon=self.lon, amplitude=0.35, peak_hour=15.0) * math.exp(-depth_m / 3.0)
        thermocline = 3.5 * self.stratification(t) * (1.0 - math.exp(-depth_m / 10.0))
        return surface + day - thermocline

    def stratification(self, t: FloatArray) -> FloatArray:
        """0 (mixed, winter) .. 1 (strongly stratified, late summer)."""
        return np.clip(seasonal(t, mean=0.4, amplitude=0.6, peak_doy=220), 0.0, 1.0)

    @gridded
    def salinity(self, t: FloatArray, *, depth_m: float = 0.5) -> FloatArray:
        """Practical salinity: about 34, dipping near the surface for days after heavy rain."""
        spells = []
        if np.size(t):
            spells = self.rain_spells.between(float(np.min(t)), float(np.max(t)) + 1, lookback_s=10 * DAY)
        fresh = exposure(t, spells, tau_s=1.5 * DAY)
        base = 34.0 + 0.15 * self.noise("salinity", timescale_s=3 * DAY)(t)
        return base - 5.0 * fresh * math.exp(-depth_m / 3.0)

    # -- the beach ----------------------------------------------------------------------------------

    def rips(self, zone: str) -> Episodes:
        """Rip currents in one zone: onsets more likely with bigger waves and at low tide."""

        def rate(t: FloatArray) -> FloatArray:
            return RIP_RATE_AT_1M * self.hs(t) ** 2 * (1.0 + 0.6 * self.low_tide(t))

        def make() -> Episodes:
            return Episodes(
                self.seed,
                self.trial.id,
                "rip",
                zone,
                rate=rate,
                rate_max=RIP_RATE_AT_1M * HS_CAP**2 * 1.6,
                mean_duration_s=40 * 60,
                min_duration_s=5 * 60,
                max_duration_s=3 * HOUR,
                block_s=DAY,
            )

        return self.episodes("rip", zone, make=make)

    @gridded
    def bathers(self, t: FloatArray) -> FloatArray:
        """Expected number of people in the water in one camera's view."""
        hour, weekend = self.local_time(t)
        return beach_occupancy(hour, t=t, weekend=weekend, hs=self.hs(t), rain=self.rain(t))

    @gridded
    def glare(self, t: FloatArray) -> FloatArray:
        """0..1 how unusable a beach camera's frame is: low sun off the water, droplets in rain."""
        elevation = self.sun(t)
        sun_glare = np.where(elevation > 0, np.exp(-0.5 * ((elevation - 12.0) / 7.0) ** 2), 0.0)
        return np.clip(sun_glare * (1.0 - 0.8 * self.cloud(t)) + 0.35 * self.rain(t), 0.0, 1.0)

    def rip_index(self, t: FloatArray, *, zone: str) -> FloatArray:
        """Rip danger level 1-4 over the last 30 min: waves, low tide and rips seen in the zone."""
        rips = self.rips(zone)
        recent = rips.active(t) | rips.active(t - 900.0) | rips.active(t - 1800.0)
        score = 0.9 * self.hs(t) + 0.7 * self.low_tide(t) + 0.8 * recent
        return np.clip(1.0 + np.floor(score), 1.0, 4.0)
