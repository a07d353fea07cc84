"""The air at a trial's place: temperature with altitude, humidity, pressure, wind, sunshine, soil.

Built on the environment's weather (fronts, rain, cloud), so a station on a mountain and a field
station see the same fronts. Like the rest of the environment, every method is a pure function of
time for a (seed, trial). Normals are engineering estimates from the JMA climate tables of nearby
stations (Kanazawa, Shizuoka, Rumoi), rounded; the lapse rate is the one observed on Mt Fuji in summer.
"""

from __future__ import annotations

import math

import numpy as np

from simulators.environment import Environment, FieldCache, gridded
from simulators.signals import DAY, HOUR, FloatArray, exposure, seasonal

LAPSE_C_PER_M = 0.0058  # °C per metre: Fuji summit is ~21 °C colder than the coast in August
SEA_LEVEL_HPA = 1013.25
LUMINOUS_EFFICACY = 110.0  # lx per W/m2 of daylight (about 100-120)


def magnus(temp_c: FloatArray) -> FloatArray:
    """Saturation vapour pressure, hPa (Magnus formula over water)."""
    return np.asarray(6.112 * np.exp(17.62 * temp_c / (243.12 + temp_c)))


class Air(FieldCache):
    """Near-surface weather for one trial and seed, at any altitude."""

    def __init__(self, env: Environment) -> None:
        super().__init__(env.trial, env.seed)
        self.env = env
        # Annual mean and half-range at sea level shrink and grow with latitude (Japan, 31-45 °N).
        self.mean_c = 16.5 - 0.8 * (env.lat - 35.0)
        self.amplitude_c = 10.5 + 0.45 * (env.lat - 35.0)

    def front_chill(self, t: FloatArray) -> FloatArray:
        """0..1: cold air behind a passing front (fronts are shared with the sea state)."""
        out = np.zeros(np.shape(t))
        if np.size(t):
            t0, t1 = float(np.min(t)), float(np.max(t)) + 1
            for e in self.env.fronts.between(t0, t1, lookback_s=4 * DAY):
                age = np.clip(t - e.end, 0.0, None)
                out = np.maximum(out, np.where(t >= e.end, e.size * np.exp(-age / (1.5 * DAY)), 0.0))
        return out

    @gridded
    def temperature(self, t: FloatArray, *, altitude_m: float = 0.0) -> FloatArray:
        """Air temperature, °C: season, synoptic swings, fronts, a sun-driven day cycle, lapse rate."""
        env = self.env
        base = seasonal(t, mean=self.mean_c, amplitude=self.amplitude_c, peak_doy=215)
        synoptic = 2.2 * self.noise("air", timescale_s=3 * DAY)(t) - 4.0 * self.front_chill(t)
        clear = 1.0 - env.cloud(t)
        # The day's swing follows the sun: warmest mid-afternoon, coolest just before dawn.
        swing = (2.0 + 4.0 * clear) * (1.0 - 0.4 * min(altitude_m, 4000.0) / 4000.0)
        phase = np.cos(2 * np.pi * (np.mod(t / HOUR + env.lon / 15.0, 24.0) - 14.5) / 24.0)
        return np.asarray(base + synoptic + swing * phase - LAPSE_C_PER_M * altitude_m)

    @gridded
    def humidity(self, t: FloatArray, *, altitude_m: float = 0.0) -> FloatArray:
        """Relative humidity, %: a dew point that moves slowly, so RH falls as the day warms."""
        temp = self.temperature(t, altitude_m=altitude_m)
        daily_min = seasonal(t, mean=self.mean_c, amplitude=self.amplitude_c, peak_doy=215)
        daily_min = daily_min - LAPSE_C_PER_M * altitude_m - 3.0
        wet = np.clip(self.env.rain(t) * 3.0, 0.0, 1.0)
        depression = (1.0 + 3.0 * (1.0 - self.env.cloud(t))) * (1.0 - wet)
        dew = np.minimum(daily_min - depression + 1.5 * self.noise("dew", timescale_s=DAY)(t), temp)
        return np.asarray(np.clip(100.0 * magnus(dew) / magnus(temp), 5.0, 100.0))

    @gridded
    def pressure(self, t: FloatArray, *, altitude_m: float = 0.0) -> FloatArray:
        """Station pressure, Pa: synoptic sea-level pressure reduced to the altitude (barometric formula)."""
        slp = SEA_LEVEL_HPA + 7.0 * self.noise("slp", timescale_s=2 * DAY)(t) - 12.0 * self.storm(t)
        t0_k = 273.15 + seasonal(t, mean=self.mean_c, amplitude=self.amplitude_c, peak_doy=215)
        ratio = np.clip(1.0 - 0.0065 * altitude_m / t0_k, 0.1, 1.0)
        return np.asarray(100.0 * slp * ratio**5.255)

    def storm(self, t: FloatArray) -> FloatArray:
        """0..1 how strongly a front is blowing through now."""
        out = np.zeros(np.shape(t))
        if np.size(t):
            for e in self.env.fronts.between(float(np.min(t)), float(np.max(t)) + 1, lookback_s=DAY):
                rise = e.end - e.start
                x = np.clip((t - e.start) / rise, 0.0, None)
                out = np.maximum(out, e.size * x * np.exp(1.0 - x))
        return out

    @gridded
    def wind(self, t: FloatArray, *, altitude_m: float = 0.0) -> FloatArray:
        """10-minute mean wind, m/s: stronger with altitude and in fronts; winter jet on the summit."""
        winter = np.clip(seasonal(t, mean=0.5, amplitude=0.5, peak_doy=20), 0.0, 1.0)
        base = 2.5 + altitude_m / 1000.0 * (2.0 + 4.0 * winter)
        gusty = np.exp(0.45 * self.noise("wind", timescale_s=6 * HOUR)(t))
        return np.asarray(base * gusty * (1.0 + 1.8 * self.storm(t)))

    def gust(self, t: FloatArray, *, altitude_m: float = 0.0) -> FloatArray:
        """Strongest 3-s gust in 10 minutes, m/s: a gust factor of 1.3-1.9."""
        factor = 1.6 + 0.15 * self.noise("gust", timescale_s=HOUR)(t)
        return np.asarray(self.wind(t, altitude_m=altitude_m) * factor)

    @gridded
    def solar(self, t: FloatArray) -> FloatArray:
        """Global horizontal irradiance, W/m2: clear-sky from the sun's height, dimmed by cloud."""
        sin_elev = np.clip(np.sin(np.radians(self.env.sun(t))), 0.0, None)
        clear_sky = 1100.0 * sin_elev**1.15
        flicker = 1.0 - 0.15 * np.clip(self.noise("cumulus", timescale_s=1200.0)(t), 0.0, None)
        return np.asarray(clear_sky * (1.0 - 0.75 * self.env.cloud(t) ** 3.0) * flicker)

    def illuminance(self, t: FloatArray) -> FloatArray:
        """Horizontal illuminance, lx."""
        return np.asarray(LUMINOUS_EFFICACY * self.solar(t))

    @gridded
    def soil_temperature(self, t: FloatArray, *, depth_m: float = 0.1) -> FloatArray:
        """Soil temperature, °C: the air's cycle damped and delayed with depth (damping depth ~12 cm)."""
        damping = 0.12
        lag_s = depth_m / damping * 24 * HOUR / (2 * math.pi)
        base = seasonal(t - 10 * DAY, mean=self.mean_c + 1.0, amplitude=self.amplitude_c * 0.9, peak_doy=215)
        day_swing = np.asarray(self.temperature(t - lag_s) - self.temperature(t - lag_s - 12 * HOUR)) / 2.0
        return np.asarray(np.clip(base + math.exp(-depth_m / damping) * day_swing, -2.0, None))

    @gridded
    def soil_moisture(self, t: FloatArray) -> FloatArray:
        """Volumetric water content, m3/m3: wetted by rain, dried by evaporation (more in summer)."""
        spells = []
        if np.size(t):
            spells = self.env.rain_spells.between(float(np.min(t)), float(np.max(t)) + 1, lookback_s=20 * DAY)
        wetting = exposure(t, spells, tau_s=4 * DAY)
        dry_season = seasonal(t, mean=0.0, amplitude=0.06, peak_doy=215)
        return np.asarray(np.clip(0.22 + 0.16 * wetting - dry_season, 0.06, 0.44))
