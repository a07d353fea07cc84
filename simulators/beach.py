"""A rip-current camera: frame by frame, what it sees of the bathers and the rips in its zone.

The rips themselves are the environment's (they exist whether or not a camera looks); the camera
detects about 80 % of them after a short delay, only in daylight, sometimes sees one that is not
there (surfers, cloud shadows), and now and then loses its picture altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from midika.models.trial import Device, Measurement, Trial
from simulators.devices import KIND_ORDER, DeviceModel, IntArray, Observation
from simulators.environment import Environment
from simulators.signals import DAY, HOUR, Episodes, ar1, ar1_phi

DETECTION_RATE = 0.8  # share of rips the detector ever raises (KPI ~80 %)
FALSE_RIPS_PER_DAY = 0.4  # false detections per daylight day (assumed)
ENTRY_RATE = 0.0006  # chance per person in the water per 10-s frame of entering an active rip zone
ZONE_DWELL_S = 180.0  # mean time a person stays in a rip zone before leaving or being rescued


@dataclass(frozen=True, slots=True)
class _Sighting:
    """A stretch of time the detector reports a rip, true or false."""

    start: float
    end: float
    confidence: float
    pull: float  # how strongly it draws people in: a share of the ENTRY_RATE


class RipCamera(DeviceModel):
    """Counts people, detects rips and people entering them; goes offline now and then."""

    profile_id = "rip-camera"
    handled_events = frozenset({"RIP_DETECTED", "RIP_CLEARED", "ZONE_ENTRY", "CAMERA_OFFLINE"})
    counted = frozenset({"persons_in_water", "persons_in_rip_zone"})

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        self.zone = device.site
        counts = self.profile.measurement("persons_in_water")
        self.frame_s = counts.period_s if counts is not None else 10.0
        self.outages = Episodes(
            seed,
            device.id,
            "outages",
            rate=lambda t: np.full(np.shape(t), 1 / (4 * DAY)),
            rate_max=1 / (4 * DAY),
            mean_duration_s=15 * 60,
            min_duration_s=120,
            max_duration_s=3 * HOUR,
            block_s=DAY,
        )
        self.false_rips = Episodes(
            seed,
            device.id,
            "false-rips",
            rate=lambda t: np.full(np.shape(t), FALSE_RIPS_PER_DAY / DAY),
            rate_max=FALSE_RIPS_PER_DAY / DAY,
            mean_duration_s=240,
            min_duration_s=60,
            max_duration_s=1200,
            block_s=DAY,
        )
        self._reported = False
        self._in_zone = 0
        self._crowd = 0.0  # AR(1) state of the log-crowd factor
        self._online = True
        self._frames: dict[str, dict[int, int]] = {}

    def silent(self, times_ms: IntArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """No readings while the camera is offline."""
        return self.outages.active(times_ms / 1000.0)

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Run the frames first: counts and events come from the same pass."""
        frame_events = self._run_frames(t0_ms, t1_ms)
        out = [*self.status(t0_ms, t1_ms), *self.readings(t0_ms, t1_ms), *frame_events]
        out.extend(self.events(t0_ms, t1_ms))
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def measure(self, m: Measurement, times_ms: IntArray) -> list[Any]:
        """Counts come from the frame pass; everything else from physics."""
        if m.name in self.counted and m.period_s == self.frame_s:
            frames = self._frames[m.name]
            return [frames[int(when)] for when in times_ms]
        return super().measure(m, times_ms)

    def _sightings(self, t0: float, t1: float) -> list[_Sighting]:
        out = []
        for rip in self.env.rips(self.zone).between(t0, t1, lookback_s=60.0):
            if rip.mark < DETECTION_RATE:  # mark is uniform: this rip is one the detector catches
                delay = 20.0 + 200.0 * rip.mark / DETECTION_RATE  # N of the last M frames must agree
                confidence = 0.6 + 0.35 * rip.size
                out.append(_Sighting(rip.start + delay, rip.end + 30.0, confidence, 0.5 + rip.size))
        for ghost in self.false_rips.between(t0, t1):
            out.append(_Sighting(ghost.start, ghost.end, 0.35 + 0.25 * ghost.size, 0.2))
        return out

    def _run_frames(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        frames = self.grid(self.frame_s, t0_ms, t1_ms)
        self._frames = {"persons_in_water": {}, "persons_in_rip_zone": {}}
        if not frames.size:
            return []
        t = frames / 1000.0
        offline = self.outages.active(t)
        daylight = self.env.sun(t) > 0.0
        sightings = self._sightings(float(t[0]), float(t[-1]) + 1.0)
        seen = np.zeros(t.size, dtype=bool)
        confidence = np.zeros(t.size)
        pull = np.zeros(t.size)
        for s in sightings:
            inside = (t >= s.start) & (t < s.end)
            seen |= inside
            confidence = np.where(inside, np.maximum(confidence, s.confidence), confidence)
            pull = np.where(inside, np.maximum(pull, s.pull), pull)
        crowd = ar1(self.rng("crowd"), t.size, phi=ar1_phi(self.frame_s, 600.0), sigma=0.25, x0=self._crowd)
        self._crowd = float(crowd[-1])
        rng = self.rng("frames")
        persons = np.minimum(rng.poisson(self.env.bathers(t) * np.exp(crowd)), 500)
        entries = rng.poisson(ENTRY_RATE * pull * persons)
        leave = 1.0 - np.exp(-self.frame_s / ZONE_DWELL_S)
        exits_rng = self.rng("zone-exits")
        clear_confidence = 0.75 + 0.2 * rng.random(t.size)

        events: list[Observation] = []
        persons_by_frame, in_zone_by_frame = (
            self._frames["persons_in_water"],
            self._frames["persons_in_rip_zone"],
        )
        # Plain lists: this loop runs once per frame, and numpy scalar indexing is slow.
        columns = zip(
            frames.tolist(),
            offline.tolist(),
            daylight.tolist(),
            seen.tolist(),
            confidence.tolist(),
            clear_confidence.tolist(),
            persons.tolist(),
            entries.tolist(),
            strict=True,
        )
        for when, is_offline, is_day, is_seen, conf, clear_conf, crowd_count, new in columns:
            if is_offline:
                if self._online:
                    events.append(self.event(when, "CAMERA_OFFLINE", {}))
                self._online = False
                continue
            self._online = True
            # In the dark the detector can neither confirm nor clear a rip: it keeps what it said.
            now_seen = is_seen if is_day else self._reported
            if now_seen != self._reported:
                kind, level = ("RIP_DETECTED", conf) if now_seen else ("RIP_CLEARED", clear_conf)
                events.append(self.event(when, kind, {"confidence": round(level, 2), "zone": self.zone}))
                self._reported = now_seen
            count = crowd_count if is_day else 0
            in_zone = 0
            if self._reported and is_day:
                exits = int(exits_rng.binomial(self._in_zone, leave)) if self._in_zone else 0
                in_zone = min(count, self._in_zone - exits + new)
                if new > 0 and count > 0:
                    events.append(self.event(when, "ZONE_ENTRY", {"zone": self.zone, "persons": new}))
            self._in_zone = in_zone
            persons_by_frame[when] = count
            in_zone_by_frame[when] = in_zone
        return events
