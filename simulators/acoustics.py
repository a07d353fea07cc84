"""Underwater sound at a hydrophone buoy: ambient noise per 1/3-octave band, boats, divers, transients.

Ambient follows the Wenz curves in outline: distant shipping below a few hundred hertz, wind and
surf (from the sea state) across the middle, rain and snapping shrimp at the top, shrimp louder at
night. A boat is an engine source (peak near 200 Hz) whose level falls with spherical spreading as
it passes along the coast; boats pass more at night (squid fishing, and poachers) and at dawn. A
diver is a breathing source (30-1200 Hz) tens of metres from one buoy. The buoy sends per-minute
levels and raises VESSEL, DIVER or UNKNOWN when its detector would. Levels are dB re 1 µPa; source
levels and rates are engineering estimates chosen so a boat at 521 m is detected about 90 % of
the time (REFERENCE_MODELS.md §3).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from midika.models.trial import Device, Measurement, Trial
from simulators.devices import KIND_ORDER, DeviceModel, IntArray, Observation
from simulators.environment import Environment
from simulators.signals import DAY, HOUR, Episode, Episodes, FloatArray, rng_for

VESSEL_SOURCE_DB = 160.0  # band level at 1 m in the peak band (small fishing boat, assumed)
VESSEL_PEAK_HZ = 200.0
DIVER_SOURCE_DB = 118.0  # open-circuit breathing, band level at 1 m (assumed)
DIVER_PEAK_HZ = 400.0
DETECT_SNR_DB = 6.0  # detector's 50 % point
VESSELS_PER_DAY = 4.0
DIVERS_PER_DAY = 0.25  # per buoy
METRES_PER_DEG_LAT = 111_000.0
_BAND = re.compile(r"^spl_(\d+(?:_\d+)?)hz$")


def band_hz(name: str) -> float | None:
    """The centre frequency of a band-level measurement (`spl_31_5hz` → 31.5), or None."""
    found = _BAND.match(name)
    return float(found.group(1).replace("_", ".")) if found else None


def _power_sum(levels_db: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(10.0 * np.log10(np.sum(10.0 ** (levels_db / 10.0), axis=axis)))


@dataclass(frozen=True, slots=True)
class Pass:
    """A boat's transit along the coast: where and how fast, from an episode of the vessel process."""

    episode: Episode
    offset_m: float  # distance from the line of buoys
    y0_m: float  # where it enters, metres north of the southern end
    velocity: float  # m/s, positive northwards

    def range_m(self, t: FloatArray, y_m: float) -> FloatArray:
        """Distance to a buoy at `y_m` (metres north) at times `t`."""
        y = self.y0_m + self.velocity * (np.asarray(t) - self.episode.start)
        return np.asarray(np.hypot(self.offset_m, y - y_m))

    def closest(self, y_m: float) -> float:
        """When the boat is closest to a buoy at `y_m`."""
        return self.episode.start + (y_m - self.y0_m) / self.velocity


class Sea:
    """Boats passing the trial's buoys; shared by all of them."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.south = min(s.lat for s in env.trial.sites) * METRES_PER_DEG_LAT - 2000.0
        self.length = (max(s.lat for s in env.trial.sites) - min(s.lat for s in env.trial.sites)) * (
            METRES_PER_DEG_LAT
        ) + 4000.0
        base = VESSELS_PER_DAY / DAY

        def rate(t: FloatArray) -> FloatArray:
            hour, _ = env.local_time(t)
            night = (hour >= 20.0) | (hour < 4.0)
            dawn = (hour >= 4.0) & (hour < 7.0)
            return np.asarray(base * np.where(night, 3.0, np.where(dawn, 2.0, 0.4)))

        self.episodes = Episodes(
            env.seed,
            env.trial.id,
            "vessels",
            rate=rate,
            rate_max=3.0 * base,
            mean_duration_s=40 * 60,
            min_duration_s=15 * 60,
            max_duration_s=90 * 60,
            block_s=DAY,
        )

    def passes(self, t0: float, t1: float) -> list[Pass]:
        """Boats in the area at some time in [t0, t1)."""
        out = []
        for e in self.episodes.between(t0, t1):
            north = e.mark < 0.5
            speed = self.length / (e.end - e.start)
            out.append(
                Pass(
                    episode=e,
                    offset_m=40.0 + 1500.0 * e.size**2,
                    y0_m=0.0 if north else self.length,
                    velocity=speed if north else -speed,
                )
            )
        return out


class HydrophoneBuoy(DeviceModel):
    """Per-minute band levels and detections of one buoy."""

    profile_id = "hydrophone-buoy"
    handled_events = frozenset({"VESSEL", "DIVER", "UNKNOWN"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        self.sea = env.shared("sea", lambda: Sea(env))
        lat = device.location.lat if device.location is not None else trial.sites[0].lat
        self.y_m = lat * METRES_PER_DEG_LAT - self.sea.south
        self.bands = [(m, hz) for m in self.profile.measurements if (hz := band_hz(m.name)) is not None]
        self.freqs = np.array([hz for _, hz in self.bands])
        self.mounting_db = self.rng("mounting").normal(0.0, 1.5, self.freqs.size)  # per-band calibration
        night = 2.0 / DAY

        def diver_rate(t: FloatArray) -> FloatArray:
            hour, _ = env.local_time(t)
            return np.asarray(
                np.where((hour >= 21.0) | (hour < 3.0), night * 3, night * 0.2) * DIVERS_PER_DAY
            )

        self.divers = Episodes(
            seed, device.id, "divers", rate=diver_rate, rate_max=night * 3 * DIVERS_PER_DAY,
            mean_duration_s=40 * 60, min_duration_s=15 * 60, max_duration_s=2 * HOUR, block_s=DAY,
        )  # fmt: skip

        def transient_rate(t: FloatArray) -> FloatArray:
            return np.asarray((0.5 + 3.0 * env.hs(t) + 6.0 * env.rain(t)) / DAY)

        self.transients = Episodes(
            seed, device.id, "transients", rate=transient_rate, rate_max=25.0 / DAY,
            mean_duration_s=90.0, min_duration_s=20.0, max_duration_s=600.0, block_s=DAY,
        )  # fmt: skip
        self._levels: dict[int, list[float]] = {}

    # -- sound --------------------------------------------------------------------------------------

    def ambient(self, t: FloatArray) -> FloatArray:
        """Ambient band levels, shape (len(t), bands): shipping, wind and surf, rain, shrimp."""
        f = self.freqs[None, :]
        hs = self.env.hs(t)[:, None]
        rain = self.env.rain(t)[:, None]
        hour, _ = self.env.local_time(t)
        night = ((hour >= 19.0) | (hour < 5.0)).astype(float)[:, None]
        wind = 61.0 + 12.0 * np.log10(1.0 + 5.0 * hs) - 17.0 * np.log10(np.maximum(f, 500.0) / 1000.0)
        shipping = 70.0 - 20.0 * np.log10(np.maximum(f, 80.0) / 80.0) + 0.0 * hs
        rainfall = 35.0 + 30.0 * rain - 5.0 * np.abs(np.log2(f / 13000.0))
        shrimp = 47.0 + 8.0 * night - 6.0 * np.abs(np.log2(f / 5000.0))
        spectrum = _power_sum(np.stack(np.broadcast_arrays(wind, shipping, rainfall, shrimp)), axis=0)
        return np.asarray(spectrum + 10.0 * np.log10(0.2316 * f))

    def vessel_levels(self, p: Pass, t: FloatArray) -> FloatArray:
        """Band levels of one boat at this buoy, shape (len(t), bands)."""
        r = np.maximum(p.range_m(t, self.y_m), 1.0)[:, None]
        source = VESSEL_SOURCE_DB - 6.0 * np.abs(np.log2(self.freqs[None, :] / VESSEL_PEAK_HZ))
        absorption = 0.06 * (self.freqs[None, :] / 1000.0) ** 1.5 * r / 1000.0  # dB, small below 10 kHz
        return np.asarray(source - 20.0 * np.log10(r) - absorption)

    def diver_levels(self, range_m: float) -> FloatArray:
        """Band levels of a breathing diver at `range_m`, shape (bands,)."""
        f = self.freqs
        source = np.where(
            (f >= 30.0) & (f <= 1250.0), DIVER_SOURCE_DB - 3.0 * np.abs(np.log2(f / DIVER_PEAK_HZ)), 60.0
        )
        return np.asarray(source - 20.0 * math.log10(max(range_m, 1.0)))

    def diver_range(self, e: Episode) -> float:
        """How close a diver comes to this buoy."""
        return 10.0 + 140.0 * e.size

    def levels(self, t: FloatArray) -> FloatArray:
        """What the hydrophone hears per band (1-minute Leq ending at each t), before sensor noise."""
        mid = t - 30.0
        parts = [self.ambient(mid)]
        t0, t1 = float(np.min(mid)), float(np.max(mid)) + 1.0
        parts += [self.vessel_levels(p, mid) for p in self.sea.passes(t0, t1)]
        for e in self.divers.between(t0, t1):
            here = ((mid >= e.start) & (mid < e.end))[:, None]
            parts.append(np.where(here, self.diver_levels(self.diver_range(e))[None, :], 0.0))
        for e in self.transients.between(t0, t1):
            here = ((mid >= e.start - 60.0) & (mid < e.end))[:, None]
            burst = 80.0 + 15.0 * e.size - 4.0 * np.abs(np.log2(self.freqs / (2000.0 + 12000.0 * e.mark)))
            parts.append(np.where(here, burst[None, :], 0.0))
        return _power_sum(np.stack(parts), axis=0) + self.mounting_db[None, :]

    # -- what the buoy sends ------------------------------------------------------------------------

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Band levels of the chunk first, then readings and the chunk's detections."""
        self._levels = {}
        minute = min((m.period_s for m, _ in self.bands), default=60.0)
        times = self.grid(minute, t0_ms, t1_ms)
        if times.size and self.bands:
            heard = self.levels(times / 1000.0)
            heard = heard + self.rng("band-noise").normal(0.0, 1.0, heard.shape)
            for when, row in zip(times.tolist(), np.round(heard, 1).tolist(), strict=True):
                self._levels[when] = row
        out = [*self.status(t0_ms, t1_ms), *self.readings(t0_ms, t1_ms), *self.events(t0_ms, t1_ms)]
        out += self.detections(t0_ms, t1_ms)
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """Band and broadband levels from the chunk's spectrum; physics for the rest."""
        if m.name == "spl_broadband" and self._levels:
            return [round(float(_power_sum(np.array(self._levels[w]))), 1) for w in times_ms.tolist()]
        hz = band_hz(m.name)
        if hz is None or not self._levels:
            return super().measure(m, times_ms)
        k = int(np.argmin(np.abs(self.freqs - hz)))
        lo, hi = m.range or (-math.inf, math.inf)
        return [float(min(max(self._levels[w][k], lo), hi)) for w in times_ms.tolist()]

    def detections(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """VESSEL at a boat's closest approach, DIVER a few minutes into a dive, UNKNOWN transients."""
        t0, t1 = t0_ms / 1000.0, t1_ms / 1000.0
        out = []
        for p in self.sea.passes(t0 - 2 * HOUR, t1 + 2 * HOUR):
            cpa = p.closest(self.y_m)
            if t0 <= cpa < t1:
                out.extend(self._vessel(p, cpa))
        for e in self.divers.between(t0 - 600.0, t1):
            when = e.start + 300.0
            if t0 <= when < t1:
                out.extend(self._diver(e, when))
        for e in self.transients.between(t0, t1):
            if t0 <= e.start < t1:
                rng = rng_for(self.seed, self.device.id, "transient", e.start)
                data = {
                    "confidence": round(float(rng.uniform(0.2, 0.6)), 2),
                    "range_m": round(float(rng.uniform(50, 800)), 0),
                    "duration_s": round(e.end - e.start, 0),
                    "peak_band_hz": float(
                        self.freqs[int(np.argmin(np.abs(self.freqs - 2000 - 12000 * e.mark)))]
                    ),
                }
                out.append(self.event(int(e.start * 1000), "UNKNOWN", data))
        return out

    def _detect(self, snr: float, key: object) -> tuple[bool, np.random.Generator]:
        rng = rng_for(self.seed, self.device.id, "detect", key)
        chance = 1.0 / (1.0 + math.exp(-(snr - DETECT_SNR_DB) / 2.0))
        return bool(rng.random() < chance), rng

    def _vessel(self, p: Pass, cpa: float) -> list[Observation]:
        t = np.array([cpa])
        k = int(np.argmin(np.abs(self.freqs - VESSEL_PEAK_HZ)))
        snr = float(self.vessel_levels(p, t)[0, k] - self.ambient(t)[0, k])
        found, rng = self._detect(snr, ("vessel", p.episode.start))
        if not found:
            return []
        audible = 10 ** ((VESSEL_SOURCE_DB - float(self.ambient(t)[0, k]) - 3.0) / 20.0)
        half = math.sqrt(max(audible**2 - p.offset_m**2, 0.0)) / abs(p.velocity)
        data = {
            "confidence": round(min(0.99, 0.5 + snr / 40.0), 2),
            "range_m": round(p.offset_m * float(np.exp(rng.normal(0.0, 0.2))), 0),
            "duration_s": round(max(60.0, 2 * half), 0),
            "peak_band_hz": float(self.freqs[k]),
        }
        return [self.event(int(cpa * 1000), "VESSEL", data)]

    def _diver(self, e: Episode, when: float) -> list[Observation]:
        t = np.array([when])
        k = int(np.argmin(np.abs(self.freqs - DIVER_PEAK_HZ)))
        distance = self.diver_range(e)
        snr = float(self.diver_levels(distance)[k] - self.ambient(t)[0, k])
        found, rng = self._detect(snr, ("diver", e.start))
        if not found:
            return []
        data = {
            "confidence": round(min(0.99, 0.45 + snr / 40.0), 2),
            "range_m": round(distance * float(np.exp(rng.normal(0.0, 0.25))), 0),
            "duration_s": round(e.end - e.start, 0),
            "peak_band_hz": float(self.freqs[k]),
        }
        return [self.event(int(when * 1000), "DIVER", data)]

    def battery(self, t: FloatArray) -> FloatArray:
        """12 V battery charged by the panel: sags after days of little sun (winter in Hokkaido)."""
        past = t[:, None] - np.arange(0, 72) * HOUR
        mean_w = np.mean(self.solar_w(past.ravel()).reshape(past.shape), axis=1)
        charge = np.clip(0.45 + (mean_w - 4.0) / 10.0, 0.02, 1.0)
        return np.asarray(11.6 + 1.5 * charge + 0.5 * np.clip(self.solar_w(t) / 40.0, 0.0, 1.0))

    def solar_w(self, t: FloatArray) -> FloatArray:
        """Panel output, W: 45 W peak, less with snow and salt on it in winter."""
        return np.asarray(0.045 * self.env.air.solar(t))
