"""Pure message generation: what a trial's devices send, as MQTT messages, without a broker.

`messages(trial, seed, start, end)` is deterministic: the same arguments give the same bytes. Time
advances in fixed chunks counted from `start`, so a run to a later `end` begins with exactly the
messages of a run to an earlier one, and a subset of devices sends what it sends in the full run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from midika.errors import ConfigError
from midika.models.trial import Trial
from simulators.devices import KIND_ORDER, DeviceModel, Observation, model_for
from simulators.environment import Environment
from simulators.faults import DeviceFaults, Fault, Record

TOPIC_ROOT = "midika/v1"
QOS = 1
CHUNK = timedelta(hours=1)
OFFLINE_WILL = b'{"online":false}'  # the last will: the broker stamps no time, so neither do we


@dataclass(frozen=True, slots=True)
class SimMessage:
    """One MQTT message a simulated device publishes at simulated time `time`."""

    device: str
    kind: str  # up, evt or status: the last topic level; fault and ctl are not published (see faults)
    topic: str
    payload: bytes
    qos: int
    retain: bool
    time: datetime
    readings: int = 0  # values in an /up message


def topic(trial: str, device: str, kind: str) -> str:
    """midika/v1/{trial}/{device}/{kind}."""
    return f"{TOPIC_ROOT}/{trial}/{device}/{kind}"


def rfc3339_ms(ms: int) -> str:
    """RFC 3339 UTC text of an epoch-milliseconds time; milliseconds only when there are some."""
    y, mo, d, h, mi, s = time.gmtime(ms // 1000)[:6]  # a third of strftime's cost, on every message
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


# One encoder for all messages: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(body: dict[str, Any] | list[Any]) -> bytes:
    """Compact JSON; NaN and infinities are a bug here, so they raise."""
    return _ENCODER.encode(body).encode("utf-8")


def offline_status(trial: str, device: str, at: datetime) -> SimMessage:
    """The retained status a device publishes when it shuts down cleanly."""
    ms = _ms(at)
    payload = encode({"ts": rfc3339_ms(ms), "online": False})
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return SimMessage(device, "status", topic(trial, device, "status"), payload, QOS, True, when)


class Simulation:
    """A trial's devices from `start` on, advanced one chunk at a time."""

    def __init__(
        self,
        trial: Trial,
        *,
        seed: int,
        start: datetime,
        devices: Sequence[str] | None = None,
        faults: Sequence[Fault] = (),
    ) -> None:
        if start.tzinfo is None:
            raise ConfigError(f"simulation start {start.isoformat()} needs a time zone (e.g. UTC)")
        known = [d.id for d in trial.devices]
        wanted = list(known) if devices is None else list(devices)
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ConfigError(
                f"trial {trial.id!r} has no device {', '.join(unknown)} (has {', '.join(known)})"
            )
        self.trial = trial
        # Whole seconds keep every timestamp short; round up so nothing is sent before `start`.
        self.start_ms = math.ceil(start.timestamp()) * 1000
        self.env = Environment(trial, seed)
        self.models: list[DeviceModel] = []
        for device in trial.devices:  # trial order, not request order: the output must not depend on it
            if device.id in wanted:
                cls = model_for(device.profile)
                self.models.append(
                    cls(trial=trial, device=device, env=self.env, seed=seed, start_ms=self.start_ms)
                )
        self._declared = [frozenset(e.type for e in m.profile.events) for m in self.models]
        self._faults = [
            DeviceFaults(
                list(faults),
                device=m.device.id,
                profile=m.profile,
                seed=seed,
                start_ms=self.start_ms,
                zone=trial.zone,
            )
            for m in self.models
        ]
        self._seq = dict.fromkeys(wanted, 0)
        self._chunk_ms = int(CHUNK.total_seconds() * 1000)

    @property
    def start(self) -> datetime:
        """The simulated time of the first possible message."""
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    def chunks(self) -> Iterator[tuple[datetime, list[SimMessage]]]:
        """(end of the chunk, its messages in send order) for each successive chunk; never ends."""
        t0 = self.start_ms
        while True:
            t1 = t0 + self._chunk_ms
            batch: list[tuple[int, int, int, int, Observation]] = []
            for rank, model in enumerate(self.models):
                declared = self._declared[rank]
                for order, obs in enumerate(model.observe(t0, t1)):
                    # The profile decides what a device sends: a model's event the profile lacks stays home.
                    if obs.kind != "evt" or obs.body["type"] in declared:
                        batch.append((obs.time_ms, rank, KIND_ORDER[obs.kind], order, obs))
            batch.sort(key=lambda item: item[:4])
            records: list[list[Record]] = [[] for _ in self.models]
            for _, rank, _, _, obs in batch:  # seq counts what the device made, lost or not
                records[rank].append(self._record(self.models[rank].device.id, obs))
            merged: list[tuple[int, int, int, Record]] = []
            for rank, faults in enumerate(self._faults):
                chunk = faults.apply(records[rank], t0, t1) if faults else records[rank]
                merged.extend((r.time_ms, rank, order, r) for order, r in enumerate(chunk))
            merged.sort(key=lambda item: item[:3])
            sent = [self._message(self.models[rank].device.id, r) for _, rank, _, r in merged]
            yield datetime.fromtimestamp(t1 / 1000, UTC), sent
            t0 = t1

    def _record(self, device: str, obs: Observation) -> Record:
        body: dict[str, Any] = {}
        if obs.kind != "status":
            body["seq"] = self._seq[device]
            self._seq[device] += 1
        body.update(obs.body)
        return Record(obs.time_ms, obs.kind, obs.device_ts_ms, body)

    def _message(self, device: str, record: Record) -> SimMessage:
        when = datetime.fromtimestamp(record.time_ms / 1000, UTC)
        kind = record.kind
        if kind in ("fault", "ctl"):  # for the ground-truth log and the runner, never published
            return SimMessage(device, kind, "", encode(record.body), 0, False, when)
        if record.batch is not None:
            items = [_wire(r) for r in record.batch]
            payload = encode(items)
            count = sum(len(i.get("values", ())) for i in items) if kind == "up" else 0
        else:
            body = _wire(record)
            payload = encode(body)
            values = body.get("values")
            count = len(values) if kind == "up" and isinstance(values, dict) else 0
        retain = kind == "status"
        return SimMessage(device, kind, topic(self.trial.id, device, kind), payload, QOS, retain, when, count)

    def messages(self, end: datetime | None = None) -> Iterator[SimMessage]:
        """The messages sent before `end` (None: forever), in send order."""
        for chunk_end, chunk in self.chunks():
            for message in chunk:
                if end is not None and message.time >= end:
                    return
                yield message
            if end is not None and chunk_end >= end:
                return


def messages(
    trial: Trial,
    seed: int,
    start: datetime,
    end: datetime | None = None,
    *,
    devices: Sequence[str] | None = None,
    faults: Sequence[Fault] = (),
) -> Iterator[SimMessage]:
    """Every message the trial's devices send from `start` until `end` (exclusive; None: forever).

    With `faults`, the stream also holds `fault` and `ctl` records (topic ""), which are not
    published: the ground-truth log keeps them, the runner acts on `ctl`.
    """
    return Simulation(trial, seed=seed, start=start, devices=devices, faults=faults).messages(end)


def _wire(record: Record) -> dict[str, Any]:
    body: dict[str, Any] = {} if record.ts_ms is None else {"ts": rfc3339_ms(record.ts_ms)}
    body.update(record.body)
    return body


def _ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)
