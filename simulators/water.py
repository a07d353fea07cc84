"""Water quality and harmful plankton at a fish farm: blooms, and what they do to oxygen and pH.

Like the rest of the environment, every method is a pure function of time for a (seed, trial).
Thresholds are the reference model's (REFERENCE_MODELS.md §2); bloom seasons and sizes are
engineering estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.environment import Environment, FieldCache, gridded
from simulators.signals import DAY, HOUR, Episodes, FloatArray, do_saturation, exposure, season_bump, seasonal


@dataclass(frozen=True, slots=True)
class Species:
    """A harmful plankton species: alert thresholds (cells/mL) and when it blooms."""

    name: str
    caution: float
    alarm: float
    background: float  # cells/mL outside a bloom, at the height of its season
    peak_doy: float  # day of the year its season peaks
    width_days: float
    blooms_per_year: float


SPECIES: dict[str, Species] = {
    s.name: s
    for s in (
        # name, caution, alarm, background, season peak (day of year), season width (days), blooms a year
        Species("chattonella", 10, 100, 0.05, 210, 25, 1.5),
        Species("karenia_mikimotoi", 100, 1000, 0.5, 195, 30, 1.0),
        Species("cochlodinium", 100, 1000, 0.3, 245, 30, 0.8),
        Species("heterosigma", 10_000, 50_000, 30, 160, 30, 1.5),
    )
}


class Water(FieldCache):
    """Plankton, chlorophyll, oxygen, pH and turbidity, on top of the environment's sea and weather."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env.trial, env.seed)
        self.env = env

    def blooms(self, species: Species) -> Episodes:
        """Blooms of one species: in its season, more likely in warm water."""
        base = species.blooms_per_year / (60 * DAY)  # a season is about two months wide

        def rate(t: FloatArray) -> FloatArray:
            warm = np.clip((self.env.sea_temperature(t) - 16.0) / 8.0, 0.2, 1.5)
            return base * season_bump(t, peak_doy=species.peak_doy, width_days=species.width_days) * warm

        def make() -> Episodes:
            return Episodes(
                self.seed,
                self.trial.id,
                "bloom",
                species.name,
                rate=rate,
                rate_max=1.5 * base,
                mean_duration_s=10 * DAY,
                min_duration_s=4 * DAY,
                max_duration_s=25 * DAY,
                block_s=30 * DAY,
            )

        return self.episodes("bloom", species.name, make=make)

    @gridded
    def cells(self, t: FloatArray, *, species: Species, site: str = "") -> FloatArray:
        """Cells/mL of `species` at `site`: a seasonal background plus blooms that rise and fall."""
        season = season_bump(t, peak_doy=species.peak_doy, width_days=species.width_days)
        wander = np.exp(0.6 * self.noise(species.name, timescale_s=DAY)(t))
        out = species.background * (0.3 + season) * wander
        if np.size(t):
            for e in self.blooms(species).between(float(np.min(t)), float(np.max(t)) + 1):
                peak = species.caution * 10 ** (2.3 * e.size - 0.5)  # from a third to 60× caution
                x = np.clip((t - e.start) / (e.end - e.start), 0.0, 1.0)
                out = out + peak * np.sin(np.pi * x) ** 2
        # Cages a few hundred metres apart sit in the same water, but patches differ.
        return out * np.exp(0.25 * self.noise("patch", site, species.name, timescale_s=6 * HOUR)(t))

    @gridded
    def bloom_stress(self, t: FloatArray) -> FloatArray:
        """0 (none) .. about 6: how far harmful species are towards their alarm levels, summed."""
        return np.asarray(sum(np.minimum(self.cells(t, species=s) / s.alarm, 1.5) for s in SPECIES.values()))

    @gridded
    def chlorophyll(self, t: FloatArray, *, depth_m: float = 1.0) -> FloatArray:
        """Chlorophyll-a, µg/L: a subsurface maximum near 5-10 m, plus bloom biomass."""
        base = seasonal(t, mean=1.2, amplitude=0.5, peak_doy=120)
        base = base * np.exp(0.35 * self.noise("chl", timescale_s=2 * DAY)(t))
        profile = 0.8 + 0.5 * math.exp(-(((depth_m - 7.0) / 6.0) ** 2))
        bloom = 9.0 * self.bloom_stress(t) * math.exp(-depth_m / 12.0)
        return base * profile + bloom

    @gridded
    def oxygen(self, t: FloatArray, *, depth_m: float = 1.0) -> FloatArray:
        """Dissolved oxygen, mg/L: saturation, daytime photosynthesis, night-time bloom respiration."""
        env = self.env
        sat = do_saturation(env.sea_temperature(t, depth_m=depth_m), env.salinity(t, depth_m=depth_m))
        light = np.clip(np.sin(np.radians(env.sun(t))), 0.0, None) * (1.0 - 0.5 * env.cloud(t))
        stress = self.bloom_stress(t)
        photo = 0.10 * light * math.exp(-depth_m / 8.0) * (1.0 + 0.5 * stress)
        night_respiration = 0.12 * stress * (light <= 0)
        deep_deficit = 0.12 * env.stratification(t) * depth_m / 20.0
        return sat * (0.97 + photo - night_respiration - deep_deficit)

    @gridded
    def ph(self, t: FloatArray, *, depth_m: float = 1.0) -> FloatArray:
        """pH: follows photosynthesis (oxygen above saturation raises it) and dips with fresh water."""
        salinity = self.env.salinity(t, depth_m=depth_m)
        sat = do_saturation(self.env.sea_temperature(t, depth_m=depth_m), salinity)
        supersaturation = self.oxygen(t, depth_m=depth_m) / sat - 0.97
        return 8.08 + 0.6 * supersaturation - 0.03 * (34.0 - salinity)

    @gridded
    def turbidity(self, t: FloatArray, *, depth_m: float = 1.0) -> FloatArray:
        """Turbidity, NTU: stirred up by waves, raised by run-off after rain and by bloom biomass."""
        spells = []
        if np.size(t):
            t0, t1 = float(np.min(t)), float(np.max(t)) + 1
            spells = self.env.rain_spells.between(t0, t1, lookback_s=4 * DAY)
        runoff = exposure(t, spells, tau_s=12 * HOUR) * math.exp(-depth_m / 6.0)
        base = 0.8 * np.exp(0.3 * self.noise("turbidity", timescale_s=DAY)(t))
        return base + 0.5 * self.env.hs(t) + 3.0 * runoff + 0.1 * self.bloom_stress(t)
