"""A subject's wrist blood-pressure monitor: sessions, the morning surge, and adherence that fades.

Each subject has their own usual pressure, morning surge, waking time and persistence, drawn from
the seed and the subject's code. Readings within a session are close (the second a little lower);
winter raises pressure; arrhythmia shows as irregular-heartbeat flags. Subjects take fewer readings
as the months go by (adherence decay), which is what ADHERENCE_GAP exists to catch. Population
figures are engineering estimates for a treated-hypertension cohort (assumed).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import numpy as np

from midika.models.trial import Device, Trial
from simulators.devices import KIND_ORDER, DeviceModel, Observation
from simulators.environment import Environment
from simulators.signals import DAY, FloatArray, rng_for, season_bump

HIGH_SYS, HIGH_DIA = 135.0, 85.0  # JSH2019 home hypertension
SEVERE_SYS, SEVERE_DIA = 180, 110  # assumed
GAP_DAYS = 3
MEAN_DAYS = 7
MIN_DAYS_FOR_MEAN = 5


@dataclass(frozen=True, slots=True)
class Subject:
    """What stays the same about one subject."""

    systolic: float
    diastolic: float
    pulse: float
    surge: float  # mmHg added to morning systolic
    wake_h: float  # local hour of the morning session
    bed_h: float
    persistence_days: float  # adherence falls to 1/e of its excess over the floor in this time
    arrhythmia: bool


class BloodPressureMonitor(DeviceModel):
    """Two readings per session, morning and evening; SEVERE, HOME_BP_HIGH and ADHERENCE_GAP."""

    profile_id = "wrist-bp-monitor"
    handled_events = frozenset({"HOME_BP_HIGH", "SEVERE", "ADHERENCE_GAP"})
    status_period_s: ClassVar[float] = 3600.0

    def __init__(self, *, trial: Trial, device: Device, env: Environment, seed: int, start_ms: int) -> None:
        super().__init__(trial=trial, device=device, env=env, seed=seed, start_ms=start_ms)
        r = self.rng("subject")
        systolic = float(np.clip(r.normal(138.0, 14.0), 105.0, 185.0))
        self.subject = Subject(
            systolic=systolic,
            diastolic=float(np.clip(0.5 * systolic + r.normal(15.0, 6.0), 60.0, 110.0)),
            pulse=float(r.normal(70.0, 8.0)),
            surge=float(np.clip(r.normal(10.0, 6.0), -2.0, 30.0)),
            wake_h=float(r.normal(6.5, 0.6)),
            bed_h=float(r.normal(21.8, 0.6)),
            persistence_days=float(r.uniform(45.0, 400.0)),
            arrhythmia=bool(r.random() < 0.08),
        )
        self.enrolled_ms = start_ms  # the trial hands out the watch when the simulation starts
        self._mornings: deque[tuple[date, float, float]] = deque()  # per day: mean systolic, diastolic
        self._last_morning: date | None = None
        self._gap_flagged: date | str | None = "never"  # the last morning before the gap flagged
        self._high_flagged: date | None = None
        self._day_done: date | None = None

    def battery(self, t: FloatArray) -> FloatArray:
        """State of charge 0..1: about 12 % a day, charged every fifth night."""
        days = (t - self.enrolled_ms / 1000.0) / DAY
        return np.asarray(np.clip(1.0 - 0.12 * np.mod(days, 5.0), 0.0, 1.0))

    def observe(self, t0_ms: int, t1_ms: int) -> list[Observation]:
        """Sessions of every local day the chunk touches; alerts as the readings come in."""
        out = [*self.status(t0_ms, t1_ms), *self.events(t0_ms, t1_ms)]
        zone = self.trial.zone
        day = datetime.fromtimestamp(t0_ms / 1000, UTC).astimezone(zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(t1_ms / 1000, UTC).astimezone(zone).date()
        while day <= last:
            for obs in self._day(day):
                if t0_ms <= obs.time_ms < t1_ms:
                    out.append(obs)
                    out.extend(self._alerts(obs, day))
            self._check_gap(day, t0_ms, t1_ms, out)
            day += timedelta(days=1)
        out.sort(key=lambda o: (o.time_ms, KIND_ORDER[o.kind]))
        return out

    def adherence(self, day: date) -> float:
        """Chance of doing a session on `day`: from about 0.95 down towards 0.35."""
        enrolled = datetime.fromtimestamp(self.enrolled_ms / 1000, UTC).date()
        days = max(0, (day - enrolled).days)
        return 0.35 + 0.6 * float(np.exp(-days / self.subject.persistence_days))

    def _day(self, day: date) -> list[Observation]:
        # One stream per (subject, day), drawn in full: the day is the same whichever chunk asks.
        rng = rng_for(self.seed, self.device.id, "day", day.isoformat())
        s = self.subject
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=self.trial.zone)
        noon_t = np.array([midnight.timestamp() + 12 * 3600.0])
        winter = 6.0 * float(season_bump(noon_t, peak_doy=20, width_days=45)[0])
        day_shift = rng.normal(0.0, 5.0)  # this day's pressure, common to all its sessions
        p = self.adherence(day)
        sessions = [
            ("morning", s.wake_h + rng.normal(0.0, 0.35), s.surge, rng.random() < p),
            ("evening", s.bed_h + rng.normal(0.0, 0.5), 0.0, rng.random() < p * 0.9),
            ("adhoc", rng.uniform(9.0, 19.0), 3.0, rng.random() < 0.04),
        ]
        out = []
        for name, hour, surge, taken in sessions:
            first = int(midnight.timestamp() + hour * 3600.0)
            gap = int(rng.integers(60, 180))
            level = s.systolic + winter + day_shift + surge + rng.normal(0.0, 4.0)
            for k in range(2 if name != "adhoc" else 1):
                reading = self._reading(rng, name, level - 3.0 * k, surge)
                if taken:
                    out.append(Observation((first + k * gap) * 1000, "up", {"values": reading}))
        return out

    def _reading(self, rng: np.random.Generator, session: str, level: float, surge: float) -> dict[str, Any]:
        s = self.subject
        movement = bool(rng.random() < 0.03)
        noise = rng.normal(0.0, 4.0 if not movement else 12.0)
        systolic = round(float(np.clip(level + noise, 70, 250)))
        ratio = s.diastolic / s.systolic
        diastolic = round(float(np.clip(systolic * ratio + rng.normal(0.0, 3.0), 40, 150)))
        pulse = round(float(np.clip(s.pulse + 0.3 * surge + rng.normal(0.0, 4.0), 40, 180)))
        irregular = bool(rng.random() < (0.3 if s.arrhythmia else 0.01))
        return {
            "systolic": systolic,
            "diastolic": diastolic,
            "pulse": pulse,
            "session": session,
            "irregular_heartbeat": irregular,
            "body_movement": movement,
        }

    def _alerts(self, obs: Observation, day: date) -> list[Observation]:
        values = obs.body["values"]
        out = []
        if values["systolic"] >= SEVERE_SYS or values["diastolic"] >= SEVERE_DIA:
            data = {"systolic": values["systolic"], "diastolic": values["diastolic"]}
            out.append(self.event(obs.time_ms, "SEVERE", data))
        if values["session"] != "morning":
            return out
        self._last_morning = day
        if self._mornings and self._mornings[-1][0] == day:
            _, sys0, dia0 = self._mornings.pop()
            self._mornings.append((day, (sys0 + values["systolic"]) / 2, (dia0 + values["diastolic"]) / 2))
            return out + self._check_high(obs.time_ms, day)
        self._mornings.append((day, float(values["systolic"]), float(values["diastolic"])))
        while self._mornings and (day - self._mornings[0][0]).days >= MEAN_DAYS:
            self._mornings.popleft()
        return out

    def _check_high(self, when_ms: int, day: date) -> list[Observation]:
        if len(self._mornings) < MIN_DAYS_FOR_MEAN:
            return []
        if self._high_flagged is not None and (day - self._high_flagged).days < MEAN_DAYS:
            return []
        sys_mean = sum(m[1] for m in self._mornings) / len(self._mornings)
        dia_mean = sum(m[2] for m in self._mornings) / len(self._mornings)
        if sys_mean < HIGH_SYS and dia_mean < HIGH_DIA:
            return []
        self._high_flagged = day
        data = {"systolic_mean": round(sys_mean, 1), "diastolic_mean": round(dia_mean, 1), "days": MEAN_DAYS}
        return [self.event(when_ms, "HOME_BP_HIGH", data)]

    def _check_gap(self, day: date, t0_ms: int, t1_ms: int, out: list[Observation]) -> None:
        """At 11:00 local each day: no morning reading for GAP_DAYS days is an ADHERENCE_GAP."""
        check = datetime.combine(day, datetime.min.time(), tzinfo=self.trial.zone) + timedelta(hours=11)
        check_ms = int(check.timestamp()) * 1000
        if not (t0_ms <= check_ms < t1_ms) or check_ms < self.enrolled_ms + GAP_DAYS * DAY * 1000:
            return
        since = self._last_morning
        missed = GAP_DAYS if since is None else (day - since).days
        if missed >= GAP_DAYS and since not in (self._gap_flagged, day):
            self._gap_flagged = since
            out.append(self.event(check_ms, "ADHERENCE_GAP", {"days": missed}))
