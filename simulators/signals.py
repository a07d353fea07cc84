"""Physical models as numpy functions of time (epoch seconds), and the random processes behind them.

Conditions shared by several devices (tide, waves, rain, rips, blooms) must agree wherever and
whenever they are sampled, so their randomness is a *pure function of time*: it is drawn per block
of time from a generator seeded by (seed, names, block). A buoy read every 30 min and a camera read
every 10 s then see the same sea, and a run that starts a day later sees the same weather on the
days both cover. Per-device sensor noise is sequential instead (`ar1`), from the device's own stream.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
RateFn = Callable[[FloatArray], FloatArray]

HOUR = 3600.0
DAY = 86400.0
YEAR = 365.2422 * DAY  # tropical year: keeps the seasons in place over decades of epoch seconds
J2000 = 946_728_000.0  # 2000-01-01T12:00:00Z, the epoch of the solar and tidal formulas

# Tidal constituents: name → period. M2 and S2 beat into the 14.77-day spring-neap cycle.
M2_PERIOD = 12.4206012 * HOUR
S2_PERIOD = 12.0 * HOUR
K1_PERIOD = 23.9344696 * HOUR
O1_PERIOD = 25.8193417 * HOUR


def stable_hash(*parts: object) -> int:
    """A 128-bit integer from `parts` that is the same in every process (unlike hash())."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest(), "little")


def rng_for(seed: int, *names: object) -> np.random.Generator:
    """A generator for one named stream; streams of different names are independent."""
    return np.random.Generator(np.random.PCG64(stable_hash(seed, *names)))


def ar1_phi(step_s: float, timescale_s: float) -> float:
    """The AR(1) coefficient that gives correlation time `timescale_s` at sampling step `step_s`."""
    return math.exp(-step_s / timescale_s) if timescale_s > 0 else 0.0


def ar1(rng: np.random.Generator, n: int, *, phi: float, sigma: float, x0: float) -> FloatArray:
    """n steps of a stationary AR(1) process with standard deviation `sigma`, continuing from x0."""
    innovations = rng.standard_normal(n) * sigma * math.sqrt(max(0.0, 1.0 - phi * phi))
    out = np.empty(n)
    x = x0
    for i in range(n):  # sequential by nature; n is one chunk of one device
        x = phi * x + innovations[i]
        out[i] = x
    return out


class SmoothNoise:
    """Zero-mean, unit-variance noise correlated over `timescale_s`; a pure function of time.

    Gaussian knots every `timescale_s`, joined by a cubic B-spline and rescaled so the variance is
    one everywhere (a B-spline of white knots is otherwise quieter between knots).
    """

    _BLOCK = 256

    def __init__(self, seed: int, *names: object, timescale_s: float) -> None:
        self._seed = seed
        self._names = names
        self._scale = timescale_s
        self._knots = lru_cache(maxsize=16)(self._make_block)

    def _make_block(self, block: int) -> FloatArray:
        return rng_for(self._seed, *self._names, "knots", block).standard_normal(self._BLOCK)

    def _knot_range(self, first: int, last: int) -> FloatArray:
        """Knots first..last inclusive, from as many cached blocks as they span."""
        b0, b1 = first // self._BLOCK, last // self._BLOCK
        knots = np.concatenate([self._knots(b) for b in range(b0, b1 + 1)])
        return knots[first - b0 * self._BLOCK : last - b0 * self._BLOCK + 1]

    def __call__(self, t: FloatArray) -> FloatArray:
        x = np.asarray(t, dtype=np.float64) / self._scale
        if x.size == 0:
            return np.zeros(x.shape)
        k = np.floor(x).astype(np.int64)
        u = x - k
        first = int(k.min()) - 1
        knots = self._knot_range(first, int(k.max()) + 2)
        i = k - first
        w0, w1 = (1 - u) ** 3 / 6, (3 * u**3 - 6 * u**2 + 4) / 6
        w2, w3 = (-3 * u**3 + 3 * u**2 + 3 * u + 1) / 6, u**3 / 6
        value = w0 * knots[i - 1] + w1 * knots[i] + w2 * knots[i + 1] + w3 * knots[i + 2]
        return np.asarray(value / np.sqrt(w0 * w0 + w1 * w1 + w2 * w2 + w3 * w3), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Episode:
    """One occurrence of an episodic process: a rip, a storm front, a rain spell, a bloom."""

    start: float
    end: float
    size: float  # uniform in [0, 1): how strong it is, mapped to physical units by the user
    mark: float  # a second independent uniform, for whatever else varies per episode


class Episodes:
    """Episodes whose onset is a Poisson process with a condition-dependent rate; pure in time.

    Onsets are drawn per block of time by thinning: candidates at `rate_max`, each kept with
    probability rate(t)/rate_max, so any pure function of time (wave height, season, water
    temperature) can drive the rate. Durations are exponential, capped at `max_duration_s`.
    """

    def __init__(
        self,
        seed: int,
        *names: object,
        rate: RateFn,
        rate_max: float,
        mean_duration_s: float,
        max_duration_s: float,
        min_duration_s: float = 0.0,
        block_s: float = 7 * DAY,
    ) -> None:
        self._seed = seed
        self._names = names
        self._rate = rate
        self._rate_max = rate_max
        self._mean = mean_duration_s
        self._min = min_duration_s
        self._max = max_duration_s
        self._block_s = block_s
        self._blocks = lru_cache(maxsize=32)(self._make_block)

    def _make_block(self, block: int) -> tuple[Episode, ...]:
        rng = rng_for(self._seed, *self._names, "episodes", block)
        n = int(rng.poisson(self._rate_max * self._block_s))
        onsets = np.sort(block * self._block_s + rng.random(n) * self._block_s)
        keep = rng.random(n) * self._rate_max < self._rate(onsets)
        durations = np.clip(rng.exponential(self._mean, n), self._min, self._max)
        sizes, marks = rng.random(n), rng.random(n)
        return tuple(
            Episode(float(s), float(s + d), float(z), float(m))
            for s, d, z, m, k in zip(onsets, durations, sizes, marks, keep, strict=True)
            if k
        )

    def between(self, t0: float, t1: float, *, lookback_s: float | None = None) -> list[Episode]:
        """Episodes that started before t1 and ended after t0 - lookback (default: none after t0)."""
        since = t0 - (lookback_s or 0.0)
        first = math.floor((since - self._max) / self._block_s)
        last = math.floor(t1 / self._block_s)
        return [e for b in range(first, last + 1) for e in self._blocks(b) if e.start < t1 and e.end > since]

    def active(self, t: FloatArray) -> BoolArray:
        """Whether any episode is under way at each time."""
        out = np.zeros(np.shape(t), dtype=bool)
        if np.size(t):
            for e in self.between(float(np.min(t)), float(np.max(t)) + 1):
                out |= (t >= e.start) & (t < e.end)
        return out


# --- astronomy and cycles ------------------------------------------------------------------------


def day_of_year(t: FloatArray) -> FloatArray:
    """Fractional day of the year, 0 at 1 January 00:00 UTC (to within a day over 1970-2100)."""
    return np.asarray(np.mod(t - 0.0, YEAR) / DAY, dtype=np.float64)


def solar_hour(t: FloatArray, lon: float) -> FloatArray:
    """Local mean solar time in hours, 0-24: what the sun, not the clock, says."""
    return np.asarray(np.mod(t / HOUR + lon / 15.0, 24.0), dtype=np.float64)


def sun_elevation(t: FloatArray, lat: float, lon: float) -> FloatArray:
    """Solar elevation above the horizon in degrees (low-precision almanac, ~0.5° accuracy)."""
    d = (np.asarray(t, dtype=np.float64) - J2000) / DAY
    g = np.radians(357.529 + 0.98560028 * d)
    q = 280.459 + 0.98564736 * d
    ecl_lon = np.radians(q + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 0.00000036 * d)
    dec = np.arcsin(np.sin(eps) * np.sin(ecl_lon))
    ra = np.arctan2(np.cos(eps) * np.sin(ecl_lon), np.cos(ecl_lon))
    gmst_deg = np.mod(280.46061837 + 360.98564736629 * d, 360.0)
    hour_angle = np.radians(gmst_deg + lon) - ra
    phi = math.radians(lat)
    s = math.sin(phi) * np.sin(dec) + math.cos(phi) * np.cos(dec) * np.cos(hour_angle)
    return np.asarray(np.degrees(np.arcsin(np.clip(s, -1.0, 1.0))), dtype=np.float64)


def seasonal(t: FloatArray, *, mean: float, amplitude: float, peak_doy: float) -> FloatArray:
    """An annual cosine cycle peaking on day `peak_doy`."""
    return np.asarray(mean + amplitude * np.cos(2 * np.pi * (day_of_year(t) - peak_doy) / 365.2422))


def diurnal(t: FloatArray, *, lon: float, amplitude: float, peak_hour: float) -> FloatArray:
    """A zero-mean daily cosine cycle peaking at `peak_hour` local solar time."""
    return np.asarray(amplitude * np.cos(2 * np.pi * (solar_hour(t, lon) - peak_hour) / 24.0))


def season_bump(t: FloatArray, *, peak_doy: float, width_days: float) -> FloatArray:
    """0..1: a Gaussian bump around `peak_doy`, wrapping over New Year."""
    delta = np.mod(day_of_year(t) - peak_doy + 182.6211, 365.2422) - 182.6211
    return np.asarray(np.exp(-0.5 * (delta / width_days) ** 2))


# --- sea ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TideModel:
    """Harmonic tide: semi-diurnal M2 and S2, diurnal K1 and O1, above chart datum."""

    datum_offset: float = 0.9  # mean sea level above chart datum, m
    m2: float = 0.50
    s2: float = 0.23
    k1: float = 0.24
    o1: float = 0.19
    phases_deg: tuple[float, float, float, float] = (0.0, 30.0, 200.0, 170.0)

    def level(self, t: FloatArray) -> FloatArray:
        """Sea level above chart datum, m."""
        return self.datum_offset + self._sum(t, derivative=False)

    def rate(self, t: FloatArray) -> FloatArray:
        """d(level)/dt in m per hour: tidal currents follow it."""
        return self._sum(t, derivative=True)

    def _sum(self, t: FloatArray, *, derivative: bool) -> FloatArray:
        x = np.asarray(t, dtype=np.float64) - J2000
        total = np.zeros_like(x)
        terms = (self.m2, self.s2, self.k1, self.o1)
        periods = (M2_PERIOD, S2_PERIOD, K1_PERIOD, O1_PERIOD)
        for amp, period, phase in zip(terms, periods, self.phases_deg, strict=True):
            omega = 2 * np.pi / period
            arg = omega * x - math.radians(phase)
            total += -amp * omega * HOUR * np.sin(arg) if derivative else amp * np.cos(arg)
        return total


def front_shape(age_s: FloatArray, rise_s: float) -> FloatArray:
    """0..1 response to a weather front `age_s` after onset: peaks at `rise_s`, decays slowly."""
    x = np.clip(np.asarray(age_s, dtype=np.float64), 0.0, None) / rise_s
    return np.asarray(x * np.exp(1.0 - x))


def soft_cap(x: FloatArray, cap: float) -> FloatArray:
    """Compress values smoothly below `cap` (near-linear well below it)."""
    return np.asarray(cap * np.tanh(np.asarray(x) / cap))


def do_saturation(temp_c: FloatArray, salinity: FloatArray) -> FloatArray:
    """Oxygen solubility in seawater, mg/L (Benson-Krause / Garcia-Gordon fit, 1 atm)."""
    tk = np.asarray(temp_c) + 273.15
    ln_c = (
        -139.34411
        + 1.575701e5 / tk
        - 6.642308e7 / tk**2
        + 1.243800e10 / tk**3
        - 8.621949e11 / tk**4
        - np.asarray(salinity) * (0.017674 - 10.754 / tk + 2140.7 / tk**2)
    )
    return np.asarray(np.exp(ln_c), dtype=np.float64)


def exposure(t: FloatArray, episodes: list[Episode], *, tau_s: float) -> FloatArray:
    """A leaky integral of episodes (size-weighted): rises during each, decays with tau afterwards."""
    out = np.zeros(np.shape(t))
    for e in episodes:
        during = np.clip(t - e.start, 0.0, e.end - e.start)
        after = np.clip(t - e.end, 0.0, None)
        out += e.size * (1.0 - np.exp(-during / tau_s)) * np.exp(-after / tau_s)
    return out


# --- people ---------------------------------------------------------------------------------------


def beach_occupancy(
    local_hour: FloatArray, *, t: FloatArray, weekend: BoolArray, hs: FloatArray, rain: FloatArray
) -> FloatArray:
    """Expected people in the water per camera view: swimmers in summer, surfers all year."""
    day = np.exp(-0.5 * ((local_hour - 13.0) / 2.5) ** 2)
    swim_season = season_bump(t, peak_doy=215.0, width_days=18.0)  # peak early August
    calm = np.clip((2.0 - hs) / 1.2, 0.0, 1.0)  # a red flag goes up in big surf
    swimmers = 160.0 * swim_season * day * calm * np.where(weekend, 1.7, 1.0)
    surf_day = np.exp(-0.5 * ((local_hour - 8.0) / 2.0) ** 2) + 0.7 * np.exp(
        -0.5 * ((local_hour - 16.0) / 1.5) ** 2
    )
    surfable = np.exp(-0.5 * ((hs - 1.3) / 0.6) ** 2)
    surfers = 18.0 * surf_day * surfable * np.where(weekend, 1.8, 1.0)
    return np.asarray((swimmers + surfers) * (1.0 - 0.75 * np.clip(rain, 0.0, 1.0)))
