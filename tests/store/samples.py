"""Test data for the store contract, and plain-Python answers to the queries to check stores against.

Everything a contract test expects is computed here from the records it wrote, never typed in.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

from midika.models.records import Event, Quality, QuarantineReason, QuarantineRecord, Reading
from midika.store.base import (
    MONTH,
    AggregateQuery,
    Bucket,
    EventQuery,
    ReadingQuery,
    ReadingStats,
    StatsQuery,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T0 = datetime(2025, 7, 1, 3, 0, tzinfo=UTC)
JST = timezone(timedelta(hours=9))
TRIAL = "enoshima"
OTHER_TRIAL = "kamakura"
DEVICES = ("buoy-1", "buoy-2", "pier-cam")
NUMERIC = ("salinity", "water_temp", "wave_height")
TEXT = "sea_state"
FLAGS = (Quality.OK,) * 6 + (
    Quality.OUT_OF_RANGE,
    Quality.NO_DEVICE_TIME,
    Quality.CLOCK_SUSPECT,
    Quality.OUT_OF_RANGE | Quality.CLOCK_SUSPECT,
)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`, to the microsecond."""
    return T0 + timedelta(seconds=seconds)


def reading(
    device: str = "buoy-1",
    measurement: str = "water_temp",
    *,
    ts: datetime,
    value: float | None = 20.5,
    text: str | None = None,
    trial: str = TRIAL,
    quality: Quality = Quality.OK,
    seq: int | None = None,
    ingest_delay_s: float = 0.25,
) -> Reading:
    """A reading received `ingest_delay_s` after it was measured."""
    return Reading(
        trial=trial,
        device=device,
        measurement=measurement,
        ts=ts,
        value=value,
        ingest_ts=ts + timedelta(seconds=ingest_delay_s),
        text=text,
        seq=seq,
        quality=quality,
    )


def sample_readings(*, trial: str = TRIAL, seed: int = 7) -> list[Reading]:
    """Two hours of three devices: numeric readings every minute with µs jitter, and text readings.

    Every tenth minute all devices report at the same instant (ties for the ordering), and buoy-2 is
    silent from minute 30 to 60 (empty buckets).
    """
    rng = np.random.default_rng(seed)
    out: list[Reading] = []
    for device in DEVICES:
        for measurement in NUMERIC:
            for minute in range(120):
                if device == "buoy-2" and 30 <= minute < 60:
                    continue
                jitter_us = 0 if minute % 10 == 0 else int(rng.integers(0, 2_000_000))
                out.append(
                    reading(
                        device,
                        measurement,
                        ts=T0 + timedelta(minutes=minute, microseconds=jitter_us),
                        value=float(rng.normal(20.0, 6.0)),
                        trial=trial,
                        quality=FLAGS[int(rng.integers(0, len(FLAGS)))],
                        seq=minute,
                        ingest_delay_s=float(rng.uniform(0.05, 3.0)),
                    )
                )
    for minute in range(0, 120, 5):
        state = ("calm", "moderate", "rough", "荒れ")[int(rng.integers(0, 4))]
        out.append(reading("pier-cam", TEXT, ts=at(minute * 60 + 0.5), value=None, text=state, trial=trial))
    return out


def shuffled_batches(readings: Sequence[Reading], *, size: int, seed: int = 3) -> list[list[Reading]]:
    """`readings` in a random order, cut into batches of `size`."""
    order = np.random.default_rng(seed).permutation(len(readings))
    shuffled = [readings[int(i)] for i in order]
    return [shuffled[i : i + size] for i in range(0, len(shuffled), size)]


def reading_order(r: Reading) -> tuple[datetime, str, str]:
    """The order every store returns readings in."""
    return (r.ts, r.device, r.measurement)


def matches(r: Reading, q: ReadingQuery) -> bool:
    """Whether `r` is one of the readings `q` asks for (its documented semantics, in Python)."""
    if q.quality is None:
        quality_ok = True
    elif q.quality == Quality.OK:
        quality_ok = r.quality == Quality.OK
    else:
        quality_ok = r.quality & q.quality == q.quality
    return (
        r.trial == q.trial
        and (q.devices is None or r.device in q.devices)
        and (q.measurements is None or r.measurement in q.measurements)
        and (q.start is None or r.ts >= q.start)
        and (q.end is None or r.ts < q.end)
        and quality_ok
    )


def expected_readings(readings: Iterable[Reading], q: ReadingQuery) -> list[Reading]:
    """The readings `q` should return, in order."""
    return sorted((r for r in readings if matches(r, q)), key=reading_order)


def _local_offset(q: AggregateQuery) -> timedelta:
    offset = q.start.astimezone(ZoneInfo(q.timezone)).utcoffset()
    assert offset is not None
    return offset


def bucket_start(ts: datetime, q: AggregateQuery) -> datetime:
    """The start of the bucket of `q` that holds `ts`: whole buckets since local 1970-01-01 00:00."""
    if q.bucket == MONTH:
        local = ts.astimezone(ZoneInfo(q.timezone))
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    assert isinstance(q.bucket, timedelta)
    offset = _local_offset(q)
    return EPOCH + (ts + offset - EPOCH) // q.bucket * q.bucket - offset


def grid(q: AggregateQuery) -> list[datetime]:
    """Every bucket start from the one holding `start` to the one holding the last instant before `end`."""
    first, last = bucket_start(q.start, q), bucket_start(q.end - timedelta(microseconds=1), q)
    starts = [first]
    while starts[-1] < last:
        if q.bucket == MONTH:
            local = starts[-1].astimezone(ZoneInfo(q.timezone))
            month = local.replace(year=local.year + local.month // 12, month=local.month % 12 + 1)
            starts.append(month.astimezone(UTC))
        else:
            assert isinstance(q.bucket, timedelta)
            starts.append(starts[-1] + q.bucket)
    return starts


def nearest_rank(values: list[float], p: float) -> float:
    """Percentile `p` by nearest rank, as InfluxDB's PERCENTILE (rank at least 1)."""
    ordered = sorted(values)
    return ordered[max(1, math.floor(len(ordered) * p / 100.0 + 0.5)) - 1]


def expected_buckets(readings: Iterable[Reading], q: AggregateQuery) -> list[Bucket]:
    """The aggregates `q` should return, computed in plain Python from the raw readings."""
    groups: dict[tuple[str, str | None], dict[datetime, list[Reading]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in readings:
        if (
            r.trial == q.trial
            and r.value is not None
            and q.start <= r.ts < q.end
            and (q.devices is None or r.device in q.devices)
            and (q.measurements is None or r.measurement in q.measurements)
        ):
            device = r.device if q.per_device else None
            groups[(r.measurement, device)][bucket_start(r.ts, q)].append(r)
    names = [f for f in q.functions if f != "count"] + [f"p{p:g}" for p in q.percentiles]
    out = []
    for (measurement, device), by_start in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        for start in grid(q):
            members = by_start.get(start, [])
            values = [r.value for r in members if r.value is not None]
            stats: dict[str, float | None] = dict.fromkeys(names)
            if values:
                # Ties in time go to the greatest value, as InfluxDB's FIRST and LAST.
                first = min(members, key=lambda r: (r.ts, -(r.value or 0.0)))
                last = max(members, key=lambda r: (r.ts, r.value or 0.0))
                every = {
                    "mean": statistics.fmean(values),
                    "min": min(values),
                    "max": max(values),
                    "sum": math.fsum(values),
                    "first": first.value,
                    "last": last.value,
                    **{f"p{p:g}": nearest_rank(values, p) for p in q.percentiles},
                }
                stats = {name: every[name] for name in names}
            out.append(
                Bucket(start=start, measurement=measurement, device=device, count=len(values), values=stats)
            )
    return out


def expected_stats(readings: Iterable[Reading], q: StatsQuery) -> list[ReadingStats]:
    """What `reading_stats` should return for `q`, in plain Python."""
    groups: dict[tuple[str | None, str | None], list[Reading]] = defaultdict(list)
    for r in readings:
        if r.trial == q.trial and q.start <= r.ts < q.end and (q.devices is None or r.device in q.devices):
            key = (r.device if "device" in q.by else None, r.measurement if "measurement" in q.by else None)
            groups[key].append(r)
    out = []
    for (device, measurement), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")
    ):
        delays = [us(r.ingest_ts) - us(r.ts) for r in members]
        out.append(
            ReadingStats(
                device=device,
                measurement=measurement,
                count=len(members),
                flagged=sum(1 for r in members if r.quality != Quality.OK),
                delay_p50_us=int(nearest_rank([float(d) for d in delays], 50)),
                delay_p95_us=int(nearest_rank([float(d) for d in delays], 95)),
            )
        )
    return out


def us(ts: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (ts - EPOCH) // timedelta(microseconds=1)


def expected_latest(readings: Iterable[Reading], *, trial: str) -> list[Reading]:
    """The reading with the greatest event time per (device, measurement), ordered by both."""
    best: dict[tuple[str, str], Reading] = {}
    for r in readings:
        if r.trial != trial:
            continue
        current = best.get((r.device, r.measurement))
        if current is None or r.ts > current.ts:
            best[(r.device, r.measurement)] = r
    return [best[k] for k in sorted(best)]


def event(
    device: str = "buoy-1",
    type_: str = "RIP_CURRENT",
    *,
    ts: datetime,
    data: dict[str, object] | None = None,
    trial: str = TRIAL,
    seq: int | None = None,
) -> Event:
    """An event received a second after it happened."""
    return Event(
        trial=trial,
        device=device,
        type=type_,
        ts=ts,
        ingest_ts=ts + timedelta(seconds=1),
        data={} if data is None else data,
        seq=seq,
    )


def sample_events(*, trial: str = TRIAL, seed: int = 11) -> list[Event]:
    """Rip-current and vessel events of three devices over two hours.

    Every other step all three devices report at the same instant (ties for the ordering).
    """
    rng = np.random.default_rng(seed)
    out: list[Event] = []
    for i in range(60):
        device = DEVICES[i % 3]
        type_ = ("RIP_CURRENT", "VESSEL")[int(rng.integers(0, 2))]
        jitter_us = 0 if (i // 3) % 2 == 0 else int(rng.integers(0, 10**6))
        ts = T0 + timedelta(minutes=2 * (i // 3), microseconds=jitter_us)
        data: dict[str, object] = {
            "speed_mps": float(rng.uniform(0, 2)),
            "confidence": int(rng.integers(0, 101)),
            "confirmed": bool(rng.integers(0, 2)),
            "note": f"観測 {i}",
        }
        out.append(event(device, type_, ts=ts, data=data, trial=trial, seq=i))
    return out


def event_matches(e: Event, q: EventQuery) -> bool:
    """Whether `e` is one of the events `q` asks for."""
    return (
        e.trial == q.trial
        and (q.devices is None or e.device in q.devices)
        and (q.types is None or e.type in q.types)
        and (q.start is None or e.ts >= q.start)
        and (q.end is None or e.ts < q.end)
    )


def quarantined(
    reason: QuarantineReason,
    *,
    received: datetime,
    payload: bytes = b"{}",
    trial: str | None = TRIAL,
    device: str | None = "buoy-1",
    payload_size: int | None = None,
) -> QuarantineRecord:
    """A rejected message; `payload_size` defaults to the payload's length."""
    return QuarantineRecord(
        topic=f"midika/v1/{trial or 'nobody'}/{device or 'nobody'}/readings",
        payload=payload,
        reason=reason,
        detail=f"{reason.value}: checked at {received.isoformat()}",
        received_ts=received,
        trial=trial,
        device=device,
        payload_size=len(payload) if payload_size is None else payload_size,
    )
