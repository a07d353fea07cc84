"""Simulated devices: what one device observes and sends over a stretch of simulated time.

A device's profile decides what it sends. Each measurement the simulator knows by name has a
physical model in `PHYSICS` (the environment's value at the device plus sensor noise); any other
measurement gets a bounded noisy signal inside its declared range, and any event type without a
model is raised now and then with plausible fields, so a new profile field never breaks a run.
Profiles whose events need state (cameras, plankton counters, feeders) have their own classes,
listed in `model_for`.

Devices are deterministic for (seed, device id): every random stream is a generator seeded from a
stable hash of (seed, device id, stream name), one stream per purpose, so adding a measurement to a
profile does not reshuffle the others.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from midika.models.trial import Device, EventType, Measurement, Trial, ValueType
from simulators.environment import Environment
from simulators.signals import DAY, HOUR, FloatArray, SmoothNoise, ar1, ar1_phi, rng_for
from simulators.water import SPECIES

Kind = Literal["status", "up", "evt"]
KIND_ORDER: dict[str, int] = {"status": 0, "up": 1, "evt": 2}
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Observation:
    """One message a device sends, before encoding: `body` is the payload without ts and seq."""

    time_ms: int  # simulated time it is sent
    kind: Kind
    body: dict[str, Any]
    ts_ms: int | None = None  # the timestamp the device writes, when its clock disagrees with time_ms

    @property
    def device_ts_ms(self) -> int:
        """The timestamp to put in the payload."""
        return self.time_ms if self.ts_ms is None else self.ts_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Physics:
    """How a known measurement behaves: its true value at the device and the sensor's noise."""

    truth: Callable[[DeviceModel, FloatArray], FloatArray]
    sigma: float  # noise standard deviation (relative: of log value)
    timescale_s: float = 0.0  # noise correlation time; 0 is white noise
    relative: bool = False
    decimals: int | None = None  # default: from the measurement's range


def _cells(name: str) -> Callable[[DeviceModel, FloatArray], FloatArray]:
    species = SPECIES[name]
    return lambda d, t: d.env.water.cells(t, species=species, site=d.device.site)


PHYSICS: dict[str, Physics] = {
    # wave buoy
    "hs": Physics(truth=lambda d, t: d.env.hs(t), sigma=0.04, timescale_s=HOUR, relative=True, decimals=2),
    "tp": Physics(truth=lambda d, t: d.env.tp(t), sigma=0.3, decimals=1),
    "wave_dir": Physics(truth=lambda d, t: d.env.wave_dir(t), sigma=6.0, decimals=0),
    "current_speed": Physics(
        truth=lambda d, t: d.env.current_speed(t, depth_m=d.depth_m), sigma=0.02, decimals=2
    ),
    "current_dir": Physics(truth=lambda d, t: d.env.current_dir(t), sigma=8.0, decimals=0),
    "water_temp": Physics(truth=lambda d, t: d.env.sea_temperature(t, depth_m=0.5), sigma=0.05, decimals=2),
    "tide": Physics(truth=lambda d, t: d.env.tide.level(t), sigma=0.02, decimals=2),
    # water quality, at the probe's depth
    "water_temperature": Physics(
        truth=lambda d, t: d.env.sea_temperature(t, depth_m=d.depth_m),
        sigma=0.03,
        timescale_s=HOUR,
        decimals=2,
    ),
    "dissolved_oxygen": Physics(
        truth=lambda d, t: d.env.water.oxygen(t, depth_m=d.depth_m), sigma=0.08, timescale_s=HOUR, decimals=2
    ),
    "salinity": Physics(truth=lambda d, t: d.env.salinity(t, depth_m=d.depth_m), sigma=0.05, decimals=2),
    "ph": Physics(
        truth=lambda d, t: d.env.water.ph(t, depth_m=d.depth_m), sigma=0.01, timescale_s=HOUR, decimals=3
    ),
    "chlorophyll_a": Physics(
        truth=lambda d, t: d.env.water.chlorophyll(t, depth_m=d.depth_m),
        sigma=0.08,
        relative=True,
        decimals=2,
    ),
    "turbidity": Physics(
        truth=lambda d, t: d.env.water.turbidity(t, depth_m=d.depth_m), sigma=0.1, relative=True, decimals=2
    ),
    # beach camera
    "glare_score": Physics(truth=lambda d, t: d.env.glare(t), sigma=0.04, timescale_s=60.0, decimals=3),
    "rip_index": Physics(truth=lambda d, t: d.env.rip_index(t, zone=d.device.site), sigma=0.0),
    # plankton counts: counting error is independent per sample
    **{name: Physics(truth=_cells(name), sigma=0.25, relative=True, decimals=1) for name in SPECIES},
    # weather and field stations, at the site's altitude
    "air_temperature": Physics(
        truth=lambda d, t: d.env.air.temperature(t, altitude_m=d.altitude_m),
        sigma=0.15,
        timescale_s=1800.0,
        decimals=1,
    ),
    "relative_humidity": Physics(
        truth=lambda d, t: d.env.air.humidity(t, altitude_m=d.altitude_m),
        sigma=1.2,
        timescale_s=HOUR,
        decimals=1,
    ),
    "air_pressure": Physics(
        truth=lambda d, t: d.env.air.pressure(t, altitude_m=d.altitude_m), sigma=15.0, decimals=0
    ),
    "wind_speed": Physics(
        truth=lambda d, t: d.env.air.wind(t, altitude_m=d.altitude_m), sigma=0.05, relative=True, decimals=1
    ),
    "wind_gust": Physics(
        truth=lambda d, t: d.env.air.gust(t, altitude_m=d.altitude_m), sigma=0.08, relative=True, decimals=1
    ),
    "solar_radiation": Physics(truth=lambda d, t: d.env.air.solar(t), sigma=0.04, relative=True, decimals=0),
    "illuminance": Physics(
        truth=lambda d, t: d.env.air.illuminance(t), sigma=0.04, relative=True, decimals=-2
    ),
    "soil_temperature": Physics(
        truth=lambda d, t: d.env.air.soil_temperature(t, depth_m=0.1),
        sigma=0.05,
        timescale_s=HOUR,
        decimals=2,
    ),
    "solar_power": Physics(
        truth=lambda d, t: 0.045 * d.env.air.solar(t), sigma=0.05, relative=True, decimals=1
    ),
    "soil_moisture": Physics(
        truth=lambda d, t: d.env.air.soil_moisture(t), sigma=0.004, timescale_s=6 * HOUR, decimals=3
    ),
}

_ALTITUDE = re.compile(r"\((\d+(?:\.\d+)?) m\)")


def site_altitude(trial: Trial, site_id: str) -> float:
    """A site's altitude in metres, from a "(2400 m)" in its name; 0 (sea level) without one."""
    site = next((s for s in trial.sites if s.id == site_id), None)
    found = _ALTITUDE.search(site.name) if site is not None else None
    return float(found.group(1)) if found is not None else 0.0


class DeviceModel:
    """A device with no model of its own: physics for known measurements, generic signals otherwise."""

    profile_id: ClassVar[str | None] = None  # the profile a subclass models
    handled_events: ClassVar[frozenset[str]] = frozenset()  # event types the subclass raises itself
    status_period_s: ClassVar[float] = 600.0
    firmware: ClassVar[str] = "1.4.2"
    generic_event_rate: ClassVar[float] = 1.0 / DAY  # per unmodelled event type

    trial: Trial
    device: Device
    env: Environment
    depth_m: float  # of the sensor below the surface; 1 m when the trial does not say
    altitude_m: float  # of the site above sea level

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        self.trial = trial
        self.device = device
        self.profile = trial.profile(device.profile)
        self.env = env
        self.seed = seed
        location = device.location
        self.depth_m = location.depth_m if location is not None and location.depth_m is not None else 1.0
        self.altitude_m = site_altitude(trial, device.site)
        self._rngs: dict[str, np.random.Generator] = {}
        self._smooth: dict[str, SmoothNoise] = {}
        self._noise_state: dict[str, float] = {}
        # Devices boot at slightly different moments; whole seconds keep timestamps readable.
        self.anchor_ms = start_ms + 1000 * int(self.rng("phase").integers(0, 5))
        self.boot_ms = start_ms - 1000 * int(self.rng("boot").integers(int(HOUR), int(30 * DAY)))

    # -- random streams -----------------------------------------------------------------------------

    def rng(self, *names: object) -> np.random.Generator:
        """This device's generator for one purpose."""
        key = "/".join(str(n) for n in names)
        if key not in self._rngs:
            self._rngs[key] = rng_for(self.seed, self.device.id, *names)
        return self._rngs[key]

    def smooth(self, name: str, *, timescale_s: float) -> SmoothNoise:
        """This device's smooth noise stream `name` (a pure function of time)."""
        if name not in self._smooth:
            self._smooth[name] = SmoothNoise(self.seed, self.device.id, name, timescale_s=timescale_s)
        return self._smooth[name]

    # -- what the device sends ---------------------------------------------------------------------

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Everything the device sends with a send time in [t0_ms, t1_ms), in order."""
        out = [*self.status(t0_ms, t1_ms), *self.readings(t0_ms, t1_ms), *self.events(t0_ms, t1_ms)]
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def grid(self, period_s: float, t0_ms: int, t1_ms: int) -> IntArray:
        """Times in [t0_ms, t1_ms) on this device's schedule of one reading every `period_s`."""
        period_ms = max(1, round(period_s * 1000))
        first = max(0, -(-(t0_ms - self.anchor_ms) // period_ms))
        last = -(-(t1_ms - self.anchor_ms) // period_ms)
        return np.asarray(self.anchor_ms + period_ms * np.arange(first, max(first, last)), dtype=np.int64)

    def silent(self, times_ms: IntArray) -> NDArray[np.bool_]:
        """Where the device sends no reading (an outage); none by default."""
        return np.zeros(times_ms.shape, dtype=bool)

    def readings(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """One /up message per distinct sample time, holding every measurement due then."""
        by_time: dict[int, dict[str, Any]] = {}
        for m in self.profile.measurements:
            times = self.grid(m.period_s, t0_ms, t1_ms)
            times = times[~self.silent(times)]
            if times.size:
                for when, value in zip(times.tolist(), self.measure(m, times), strict=True):
                    by_time.setdefault(when, {})[m.name] = value
        return [Observation(when, "up", {"values": values}) for when, values in sorted(by_time.items())]

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """Wire values of `m` at `times_ms`: physics (or a generic signal), sensor noise, range, type."""
        t = times_ms / 1000.0
        physics = PHYSICS.get(m.name)
        if m.type in (ValueType.BOOL, ValueType.STR):
            return self._wire(m, self.generic(m, t), decimals=None)
        if physics is None:
            lo, hi = m.range or (-1.0, 1.0)
            raw = self.generic(m, t) + self.noise(m, t.size, sigma=0.02 * (hi - lo), timescale_s=0.0)
            return self._wire(m, raw, decimals=None)
        raw = physics.truth(self, t)
        if physics.sigma > 0:
            noise = self.noise(m, t.size, sigma=physics.sigma, timescale_s=physics.timescale_s)
            raw = raw * np.exp(noise) if physics.relative else raw + noise
        return self._wire(m, raw, decimals=physics.decimals)

    def noise(self, m: Measurement, n: int, *, sigma: float, timescale_s: float) -> FloatArray:
        """Sensor noise for the next n samples of `m`, continuing the previous chunk's AR(1) state."""
        rng = self.rng("noise", m.name)
        x0 = self._noise_state.get(m.name)
        if x0 is None:
            x0 = float(rng.standard_normal() * sigma)
        values = ar1(rng, n, phi=ar1_phi(m.period_s, timescale_s), sigma=sigma, x0=x0)
        if n:
            self._noise_state[m.name] = float(values[-1])
        return values

    def generic(self, m: Measurement, t: FloatArray) -> FloatArray:
        """A slowly wandering signal inside the middle of `m`'s range (or around 0 without one)."""
        lo, hi = m.range or (-1.0, 1.0)
        wander = self.smooth(f"generic/{m.name}", timescale_s=max(6 * HOUR, 10 * m.period_s))(t)
        if m.type is ValueType.BOOL:
            return np.asarray(wander > 0.8, dtype=np.float64)
        return np.asarray((lo + hi) / 2 + 0.3 * (hi - lo) / 2 * wander)

    @staticmethod
    def _wire(m: Measurement, raw: FloatArray, *, decimals: int | None) -> list[Any]:
        values = np.asarray(raw, dtype=np.float64)
        if m.unit == "deg":
            values = np.mod(values, 360.0)
        if m.range is not None:
            values = np.clip(values, m.range[0], m.range[1])
        if m.type is ValueType.INT:
            return [int(v) for v in np.rint(values)]
        if m.type is ValueType.BOOL:
            return [bool(v >= 0.5) for v in values]
        if m.type is ValueType.STR:
            return ["ok"] * values.size
        if decimals is None:
            span = (m.range[1] - m.range[0]) if m.range is not None else 2.0
            decimals = min(6, max(0, 2 - math.floor(math.log10(span)))) if span > 0 else 3
        return [float(v) for v in np.round(values, decimals)]

    def status(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Health messages: at boot, then every `status_period_s`; retained by the broker."""
        times = self.grid(self.status_period_s, t0_ms, t1_ms)
        if not times.size:
            return []
        t = times / 1000.0
        battery = self.battery(t)
        rssi = (
            -72.0
            + 5.0 * self.smooth("rssi", timescale_s=2 * HOUR)(t)
            + self.rng("rssi").normal(0, 1.5, t.size)
        )
        return [
            Observation(
                when,
                "status",
                {
                    "online": True,
                    "battery": round(float(v), self.battery_decimals),
                    "rssi": round(float(r)),
                    "firmware": self.firmware,
                    "uptime": (when - self.boot_ms) // 1000,
                },
            )
            for when, v, r in zip(times.tolist(), battery, rssi, strict=True)
        ]

    battery_decimals: ClassVar[int] = 2

    def battery(self, t: FloatArray) -> FloatArray:
        """Battery volts at `t`: a solar-charged lithium cell, higher while the sun charges it."""
        sun = np.clip(np.sin(np.radians(self.env.sun(t))), 0.0, None) * (1.0 - 0.6 * self.env.cloud(t))
        return np.asarray(3.72 + 0.35 * sun + 0.02 * self.smooth("battery", timescale_s=DAY)(t))

    def events(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Event types without a model: a Poisson trickle with plausible fields."""
        out = []
        for et in self.profile.events:
            if et.type in self.handled_events:
                continue
            rng = self.rng("event", et.type)
            n = int(rng.poisson(self.generic_event_rate * (t1_ms - t0_ms) / 1000.0))
            for when in np.sort(rng.integers(t0_ms // 1000, -(-t1_ms // 1000), n)).tolist():
                if t0_ms <= when * 1000 < t1_ms:
                    out.append(self.event(when * 1000, et.type, self.generic_data(et, rng)))
        return out

    def event(self, when_ms: int, type_: str, data: dict[str, Any]) -> Observation:
        """An /evt message."""
        return Observation(when_ms, "evt", {"type": type_, "data": data})

    def generic_data(self, et: EventType, rng: np.random.Generator) -> dict[str, Any]:
        """Fields of an unmodelled event, each of its declared type."""
        data: dict[str, Any] = {}
        for name, vt in et.fields.items():
            if vt is ValueType.FLOAT:
                data[name] = round(float(rng.random()), 3)
            elif vt is ValueType.INT:
                data[name] = int(rng.integers(1, 10))
            elif vt is ValueType.BOOL:
                data[name] = bool(rng.random() < 0.5)
            else:
                data[name] = self.device.site  # zones, cages, areas: the site is the plausible text
        return data


def model_for(profile_id: str) -> type[DeviceModel]:
    """The device class for a profile: its own model where one exists, the generic one otherwise."""
    from simulators.acoustics import HydrophoneBuoy
    from simulators.aquaculture import Feeder, PlanktonCounter
    from simulators.beach import RipCamera
    from simulators.field import FieldStation, WorkLog
    from simulators.health import BloodPressureMonitor
    from simulators.mountain import BeaconReceiver, TrailCounter, WeatherStation

    models: tuple[type[DeviceModel], ...] = (
        RipCamera,
        PlanktonCounter,
        Feeder,
        HydrophoneBuoy,
        BeaconReceiver,
        TrailCounter,
        WeatherStation,
        BloodPressureMonitor,
        FieldStation,
        WorkLog,
    )
    return next((cls for cls in models if cls.profile_id == profile_id), DeviceModel)
