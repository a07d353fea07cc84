"""Faults real devices have, injected between the device models and the wire.

A `Fault` says what goes wrong, on which devices and measurements, and when (seconds after the
simulation starts). `DeviceFaults` applies a scenario's faults to one device's records chunk by
chunk, keeping whatever state a fault needs (a stuck value, a store-and-forward buffer), and adds
a `fault` record for every fault it injects, with its time, for the ground-truth log. Link faults
(an outage, a dying battery, a reconnect storm) also add `ctl` records: the runner then drops the
device's connection uncleanly, so the broker publishes its last will, and reconnects it before
its next message. Everything is deterministic for (seed, device): each fault draws from its own
stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

from midika.models.trial import DeviceProfile, ValueType
from simulators.signals import DAY, rng_for


class FaultKind(StrEnum):
    """What goes wrong."""

    DRIFT = "drift"  # size per day, linear; recalibrated (back to 0) every `every_s`
    STEP = "step"  # size added from `at` on: a calibration or cleaning that moved the zero
    FOULING = "fouling"  # relative loss up to `size`, exponential with tau_s; cleaned every `every_s`
    STUCK = "stuck"  # the first value of the window repeated
    SPIKES = "spikes"  # a reading jumps by ±size × range with probability `rate`
    UNIT_MIXUP = "unit_mixup"  # value × scale + offset (°C sent as °F: scale 1.8, offset 32)
    DROPOUTS = "dropouts"  # short gaps, `rate` per hour, mean tau_s long: messages lost in transit
    OUTAGE = "outage"  # offline for the window; with store_forward, what it measured comes late
    BATTERY_DEATH = "battery_death"  # battery falls over the day before `at`, then the device is dead
    CLOCK_SKEW = "clock_skew"  # timestamps off by `size` s, plus `rate` s per day
    RTC_RESET = "rtc_reset"  # reboot at `at`: clock restarts at the epoch `size` (1970 or 2000)
    DUPLICATES = "duplicates"  # a message is sent again (a QoS retry) with probability `rate`
    RECONNECT_STORM = "reconnect_storm"  # `rate` unclean reconnects per minute over the window
    NIGHTLY_OUTAGE = "nightly_outage"  # off every day between from_hour and to_hour (local)


VALUE_FAULTS = {
    FaultKind.DRIFT,
    FaultKind.STEP,
    FaultKind.FOULING,
    FaultKind.STUCK,
    FaultKind.SPIKES,
    FaultKind.UNIT_MIXUP,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault of a scenario; `devices` or `measurements` None means all of them."""

    kind: FaultKind
    at_s: float = 0.0
    for_s: float | None = None  # None: until the end
    devices: tuple[str, ...] | None = None
    measurements: tuple[str, ...] | None = None
    size: float = 0.0
    rate: float = 0.0
    tau_s: float = 0.0
    every_s: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    store_forward: bool = True
    batch: int = 50
    from_hour: float = 0.0
    to_hour: float = 0.0

    def applies_to(self, device: str) -> bool:
        """Whether the fault hits `device`."""
        return self.devices is None or device in self.devices

    def window(self, start_ms: int) -> tuple[int, int]:
        """[from, to) in epoch ms."""
        begin = start_ms + round(self.at_s * 1000)
        end = math.inf if self.for_s is None else begin + round(self.for_s * 1000)
        return begin, int(min(end, 2**62))


@dataclass(slots=True)
class Record:
    """A message before encoding: send time, kind (status, up, evt, ctl, fault), ts and body.

    `body` is the payload without ts; `batch` holds the records of a store-and-forward message.
    """

    time_ms: int
    kind: str
    ts_ms: int | None
    body: dict[str, Any]
    batch: list[Record] | None = None


@dataclass(slots=True)
class _State:
    stuck: dict[str, Any] = field(default_factory=dict)
    buffer: list[Record] = field(default_factory=list)
    offline: bool = False
    announced: bool = False


class DeviceFaults:
    """The faults of one device, applied chunk by chunk in time order."""

    def __init__(
        self, faults: list[Fault], *, device: str, profile: DeviceProfile, seed: int, start_ms: int, zone: Any
    ) -> None:
        self.device = device
        # Faults act in the order a device would suffer them: the sensor reads wrong, the clock
        # stamps it, the link loses or holds it, and only what is sent can be resent (a retry
        # repeats the bytes of the first try, faults included).
        mine = [f for f in faults if f.applies_to(device)]
        self.faults = sorted(mine, key=lambda f: _STAGE.get(f.kind, 2))
        self.numeric = {m.name: m for m in profile.measurements if m.type in (ValueType.FLOAT, ValueType.INT)}
        self.seed = seed
        self.start_ms = start_ms
        self.zone = zone
        self._states = [_State() for _ in self.faults]
        self._windows = [f.window(start_ms) for f in self.faults]
        self._dropouts = [self._gaps(f, i) for i, f in enumerate(self.faults)]

    def __bool__(self) -> bool:
        return bool(self.faults)

    def rng(self, index: int, *names: object) -> np.random.Generator:
        """The stream of fault `index` for one purpose."""
        return rng_for(self.seed, self.device, "fault", index, self.faults[index].kind.value, *names)

    def apply(self, records: list[Record], t0_ms: int, t1_ms: int) -> list[Record]:
        """The chunk's records as the faulty device sends them, plus fault and ctl records."""
        out: list[Record] = []
        for i, f in enumerate(self.faults):
            begin, _ = self._windows[i]
            state = self._states[i]
            if not state.announced and begin < t1_ms and f.kind not in _OCCURRENCE_LOGGED:
                state.announced = True
                out.append(self._fault_record(i, max(begin, self.start_ms), {}))
        for record in records:
            out.extend(self._one(record))
        for i, f in enumerate(self.faults):
            out.extend(self._link(i, f, t0_ms, t1_ms))
        out.sort(key=lambda r: (r.time_ms, _ORDER.get(r.kind, 9)))
        return out

    # -- per record ---------------------------------------------------------------------------------

    def _one(self, record: Record) -> list[Record]:
        pending = [record]
        for i, f in enumerate(self.faults):
            begin, end = self._windows[i]
            nxt: list[Record] = []
            for r in pending:
                inside = begin <= r.time_ms < end
                nxt.extend(self._fault(i, f, r, inside=inside))
            pending = nxt
        return pending

    def _fault(self, i: int, f: Fault, r: Record, *, inside: bool) -> list[Record]:
        if r.kind in ("fault", "ctl"):
            return [r]
        if f.kind in VALUE_FAULTS:
            if inside and r.kind == "up":
                return [self._values(i, f, r), *self._spike_log(i, f, r)]
            return [r]
        return self._delivery(i, f, r, inside=inside)

    def _values(self, i: int, f: Fault, r: Record) -> Record:
        begin, _ = self._windows[i]
        values = dict(r.body["values"])
        days = (r.time_ms - begin) / 1000.0 / DAY
        since_clean = (r.time_ms - begin) / 1000.0
        if f.every_s:
            since_clean = math.fmod(since_clean, f.every_s)
            days = since_clean / DAY
        state = self._states[i]
        for name, value in values.items():
            m = self.numeric.get(name)
            if m is None or (f.measurements is not None and name not in f.measurements):
                continue
            if f.kind is FaultKind.DRIFT:
                new = value + f.size * days
            elif f.kind is FaultKind.STEP:
                new = value + f.size
            elif f.kind is FaultKind.FOULING:
                new = value * (1.0 - f.size * (1.0 - math.exp(-since_clean / max(f.tau_s, 1.0))))
            elif f.kind is FaultKind.STUCK:
                new = state.stuck.setdefault(name, value)
            elif f.kind is FaultKind.UNIT_MIXUP:
                new = value * f.scale + f.offset
            else:  # spikes
                rng = self.rng(i, "spike", r.ts_ms, name)
                if rng.random() >= f.rate:
                    continue
                span = (m.range[1] - m.range[0]) if m.range else abs(value) + 1.0
                new = value + (1 if rng.random() < 0.5 else -1) * f.size * span
            values[name] = round(new) if m.type is ValueType.INT else round(float(new), 4)
        return Record(r.time_ms, r.kind, r.ts_ms, {**r.body, "values": values})

    def _spike_log(self, i: int, f: Fault, r: Record) -> list[Record]:
        if f.kind is not FaultKind.SPIKES:
            return []
        hit = []
        for name in r.body["values"]:
            wanted = name in self.numeric and (f.measurements is None or name in f.measurements)
            if wanted and self.rng(i, "spike", r.ts_ms, name).random() < f.rate:
                hit.append(name)
        return [self._fault_record(i, r.time_ms, {"measurements": hit, "ts": _iso(r.ts_ms)})] if hit else []

    def _delivery(self, i: int, f: Fault, r: Record, *, inside: bool) -> list[Record]:
        if f.kind in (FaultKind.CLOCK_SKEW, FaultKind.RTC_RESET):
            return [self._clock(i, f, r) if inside and r.ts_ms is not None else r]
        if f.kind is FaultKind.DUPLICATES:
            return self._duplicate(i, f, r) if inside and r.kind in ("up", "evt") else [r]
        return [] if self._silenced(i, f, r, inside=inside) else [self._battery(i, f, r)]

    def _clock(self, i: int, f: Fault, r: Record) -> Record:
        begin, _ = self._windows[i]
        assert r.ts_ms is not None
        if f.kind is FaultKind.CLOCK_SKEW:
            skew = f.size + f.rate * (r.time_ms - begin) / 1000.0 / DAY
            return Record(r.time_ms, r.kind, r.ts_ms + round(skew * 1000), r.body, r.batch)
        body = r.body
        if r.kind == "status" and "uptime" in body:
            body = {**body, "uptime": (r.time_ms - begin) // 1000}
        return Record(r.time_ms, r.kind, _epoch_ms(f) + (r.time_ms - begin), body, r.batch)

    def _duplicate(self, i: int, f: Fault, r: Record) -> list[Record]:
        rng = self.rng(i, "dup", r.time_ms, r.kind)
        if rng.random() >= f.rate:
            return [r]
        again = Record(r.time_ms + int(rng.integers(1000, 10_000)), r.kind, r.ts_ms, r.body, r.batch)
        if self._off_link(again.time_ms):
            return [r]  # the retry would fall after the link went down: a dead device resends nothing
        return [r, again, self._fault_record(i, again.time_ms, {"of": _iso(r.ts_ms), "kind": r.kind})]

    def _off_link(self, time_ms: int) -> bool:
        """Whether some fault has the device off or its link down at `time_ms`."""
        return any(self._off(i, f, time_ms) for i, f in enumerate(self.faults))

    def _off(self, i: int, f: Fault, time_ms: int) -> bool:
        """Whether fault `i` has the device off or its link down (an outage, its death, the night)."""
        begin, end = self._windows[i]
        if not begin <= time_ms < end:
            return False
        if f.kind is FaultKind.NIGHTLY_OUTAGE:
            return self._night(f, time_ms)
        return f.kind in (FaultKind.OUTAGE, FaultKind.BATTERY_DEATH)

    def _silenced(self, i: int, f: Fault, r: Record, *, inside: bool) -> bool:
        """Whether the record is never received: lost in a dropout, or the device is off."""
        if f.kind is FaultKind.DROPOUTS:
            return self._in_gap(i, r.time_ms)  # the device counted it (seq), nobody received it
        if f.kind is FaultKind.NIGHTLY_OUTAGE:
            return self._off(i, f, r.time_ms)
        if f.kind in (FaultKind.OUTAGE, FaultKind.BATTERY_DEATH) and inside:
            buffer = self._states[i].buffer
            # A retry of a record already held is not held twice (one batch must not repeat a reading).
            held = f.kind is FaultKind.OUTAGE and any(
                b.ts_ms == r.ts_ms and b.body == r.body for b in buffer[-3:]
            )
            if f.kind is FaultKind.OUTAGE and f.store_forward and r.kind in ("up", "evt") and not held:
                buffer.append(r)
            return True
        return False

    def _battery(self, i: int, f: Fault, r: Record) -> Record:
        begin, _ = self._windows[i]
        if f.kind is not FaultKind.BATTERY_DEATH or r.kind != "status" or r.time_ms < begin - _decline_ms(f):
            return r
        return self._sagging(f, r, begin)

    def _sagging(self, f: Fault, r: Record, death_ms: int) -> Record:
        battery = r.body.get("battery")
        if not isinstance(battery, int | float):
            return r
        left = max(0.0, (death_ms - r.time_ms) / _decline_ms(f))
        floor = 0.0 if battery <= 1.0 else battery * 0.8  # a state of charge runs out; volts sag by 20 %
        sagged = round(floor + (battery - floor) * left, 3)
        return Record(r.time_ms, r.kind, r.ts_ms, {**r.body, "battery": sagged})

    # -- link faults ----------------------------------------------------------------------------------

    def _link(self, i: int, f: Fault, t0: int, t1: int) -> list[Record]:
        begin, end = self._windows[i]
        out: list[Record] = []
        if f.kind in (FaultKind.OUTAGE, FaultKind.RTC_RESET, FaultKind.BATTERY_DEATH) and t0 <= begin < t1:
            out.append(Record(begin, "ctl", None, {"action": "drop"}))
        if f.kind is FaultKind.RTC_RESET and t0 <= begin + REBOOT_MS < t1:
            out.append(_online(begin + REBOOT_MS, _epoch_ms(f) + REBOOT_MS))
        if f.kind is FaultKind.OUTAGE and t0 <= end < t1:
            out.append(_online(end, end))
            out.extend(self._forward(i, f, end))
        if f.kind is FaultKind.RECONNECT_STORM:
            lo, hi = max(begin, t0), min(end, t1)
            if lo < hi:
                rng = self.rng(i, "storm", lo)
                n = int(rng.poisson(f.rate * (hi - lo) / 60_000.0))
                for when in np.sort(rng.integers(lo, hi, n)).tolist():
                    out.append(Record(int(when), "ctl", None, {"action": "drop"}))
                    out.append(self._fault_record(i, int(when), {"action": "reconnect"}))
                    out.append(_online(int(when) + 1000, int(when) + 1000))
        if f.kind is FaultKind.DROPOUTS:
            for gap_start, gap_end in self._dropouts[i]:
                if t0 <= gap_start < t1:
                    out.append(self._fault_record(i, gap_start, {"end": _iso(gap_end)}))
        if f.kind is FaultKind.NIGHTLY_OUTAGE:
            out.extend(self._nights(i, f, t0, t1))
        return out

    def _forward(self, i: int, f: Fault, end: int) -> list[Record]:
        """After an outage: the buffer as JSON-array batches, oldest batch not always first."""
        state = self._states[i]
        rng = self.rng(i, "forward", end)
        out: list[Record] = []
        for kind in ("up", "evt"):
            held = [r for r in state.buffer if r.kind == kind]
            batches = [held[k : k + max(1, f.batch)] for k in range(0, len(held), max(1, f.batch))]
            order = rng.permutation(len(batches)) if len(batches) > 1 else np.arange(len(batches))
            for n, b in enumerate(order.tolist()):
                when = end + 2000 + n * int(rng.integers(200, 1500)) + (0 if kind == "up" else 500)
                out.append(Record(when, kind, None, {}, batch=batches[b]))
        if state.buffer:
            first = _iso(state.buffer[0].ts_ms)
            detail = {"records": len(state.buffer), "batches": len(out), "late_from": first}
            out.append(self._fault_record(i, end, {"forwarded": detail}))
        state.buffer = []
        return out

    def _gaps(self, f: Fault, i: int) -> list[tuple[int, int]]:
        if f.kind is not FaultKind.DROPOUTS or f.for_s is None:
            return []  # open-ended dropouts are drawn per chunk below
        begin, end = f.window(self.start_ms)
        return self._draw_gaps(i, f, begin, end)

    def _draw_gaps(self, i: int, f: Fault, begin: int, end: int) -> list[tuple[int, int]]:
        rng = self.rng(i, "gaps", begin)
        n = int(rng.poisson(f.rate * (end - begin) / 3_600_000.0))
        starts = np.sort(rng.integers(begin, end, n)) if n else np.zeros(0, dtype=np.int64)
        lengths = rng.exponential(max(f.tau_s, 1.0) * 1000.0, n)
        return [(int(s), int(s + d)) for s, d in zip(starts.tolist(), lengths.tolist(), strict=True)]

    def _in_gap(self, i: int, when: int) -> bool:
        f = self.faults[i]
        if f.for_s is None:  # unbounded: gaps drawn per day, so any run length sees the same ones
            day = when // 86_400_000 * 86_400_000
            gaps = self._draw_gaps(i, f, max(day, self._windows[i][0]), day + 86_400_000)
            self._dropouts[i] = sorted(set(self._dropouts[i]) | set(gaps))
        return any(s <= when < e for s, e in self._dropouts[i])

    def _night(self, f: Fault, when_ms: int) -> bool:
        local = datetime.fromtimestamp(when_ms / 1000, UTC).astimezone(self.zone)
        hour = local.hour + local.minute / 60.0
        if f.from_hour <= f.to_hour:
            return f.from_hour <= hour < f.to_hour
        return hour >= f.from_hour or hour < f.to_hour

    def _nights(self, i: int, f: Fault, t0: int, t1: int) -> list[Record]:
        out = []
        state = self._states[i]
        for minute in range(t0 - t0 % 60_000, t1, 60_000):
            dark = self._night(f, minute) and minute >= self._windows[i][0]
            if dark and not state.offline and minute >= t0:
                out.append(Record(minute, "ctl", None, {"action": "drop"}))
                out.append(self._fault_record(i, minute, {"action": "power_off"}))
            if not dark and state.offline:
                out.append(_online(minute, minute))
            state.offline = dark
        return out

    def _fault_record(self, i: int, when_ms: int, detail: dict[str, Any]) -> Record:
        f = self.faults[i]
        begin, end = self._windows[i]
        body: dict[str, Any] = {"fault": f.kind.value, "start": _iso(begin)}
        if f.for_s is not None:
            body["end"] = _iso(end)
        if f.measurements is not None:
            body["measurements"] = list(f.measurements)
        for key in ("size", "rate", "tau_s", "every_s", "scale", "offset"):
            value = getattr(f, key)
            if value not in (0.0, None) and not (key == "scale" and value == 1.0):
                body[key] = value
        body.update(detail)
        return Record(when_ms, "fault", None, body)


REBOOT_MS = 20_000  # a reboot takes this long before the device is back online


def _epoch_ms(f: Fault) -> int:
    """Where a reset RTC starts counting: 1970 (size 0 or 1970) or 1 January of year `size`."""
    return 0 if f.size < 1971 else int(datetime(int(f.size), 1, 1, tzinfo=UTC).timestamp() * 1000)


def _online(when_ms: int, ts_ms: int | None) -> Record:
    """The status a device publishes when it is back (its last will said it was offline)."""
    return Record(when_ms, "status", ts_ms, {"online": True})


_STAGE = {
    **dict.fromkeys(VALUE_FAULTS, 0),
    FaultKind.CLOCK_SKEW: 1,
    FaultKind.RTC_RESET: 1,
    FaultKind.DUPLICATES: 3,
}
_OCCURRENCE_LOGGED = {FaultKind.SPIKES, FaultKind.DUPLICATES, FaultKind.DROPOUTS, FaultKind.RECONNECT_STORM}
_ORDER = {"fault": 0, "ctl": 1, "status": 2, "up": 3, "evt": 4}


def _decline_ms(f: Fault) -> int:
    # The battery sags over the day before it dies (or the fault's window, if that is shorter).
    return int(min(DAY, f.for_s or DAY) * 1000)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    from simulators.messages import rfc3339_ms

    return rfc3339_ms(ms)
