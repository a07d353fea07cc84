"""GET /trials/{trial}/kpis: how well a trial's devices delivered, for its evaluation.

Completeness compares readings received with those the trial file leads one to expect (each
measurement's `period_s` over the window); uptime counts time slots with data; latency is the
delivery delay ingest_ts - ts; flagged readings are those with any quality flag. The figures come
from three store calls, the same on every store (`reading_stats`, `event_counts`, `aggregate`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from api.deps import PathTrial, StoreDep
from api.errors import bad_parameter, error_responses
from api.params import DeviceParam, Rfc3339, SiteParam, check_window, devices_of
from api.schemas import DeviceKpis, Kpis, MeasurementKpis, TrialKpis
from midika.models.trial import Device, Trial, ValueType
from midika.store import buckets
from midika.store.base import AggregateQuery, EventCount, ReadingStats, StatsQuery, Store

router = APIRouter(prefix="/trials", tags=["kpis"], responses=error_responses(400, 404, 503))

MAX_WINDOW = timedelta(days=400)
MIN_SLOT = timedelta(hours=1)
_US = 1_000_000


@router.get("/{trial}/kpis", summary="Trial KPIs: completeness, uptime, latency, flags, events")
def trial_kpis(
    trial: PathTrial,
    store: StoreDep,
    start: Annotated[Rfc3339, Query(description="inclusive start, RFC 3339")],
    end: Annotated[Rfc3339, Query(description="exclusive end, RFC 3339; at most 400 days after start")],
    device: DeviceParam = None,
    site: SiteParam = None,
) -> TrialKpis:
    """Per device and for the trial: data completeness, uptime, delivery latency, flagged share, events."""
    check_window(start, end)
    if end - start > MAX_WINDOW:
        raise bad_parameter("end", f"the window is over {MAX_WINDOW.days} days; ask for a shorter start..end")
    selected = devices_of(trial, device, site)
    devices = [d for d in trial.devices if selected is None or d.id in selected]
    ids = [d.id for d in devices]
    query = StatsQuery(trial=trial.id, start=start, end=end, devices=ids)
    per_measurement = store.reading_stats(query)
    per_device = {s.device: s for s in store.reading_stats(dataclasses.replace(query, by=("device",)))}
    pooled = store.reading_stats(dataclasses.replace(query, by=()))
    events = store.event_counts(query)
    up = _uptime(store, trial, devices, start=start, end=end)

    received = {(s.device, s.measurement): s.count for s in per_measurement}
    flagged = {(s.device, s.measurement): s.flagged for s in per_measurement}
    window_s = (end - start).total_seconds()
    device_kpis = []
    for d in devices:
        measurements = [
            _measurement(m.name, m.period_s, received.get((d.id, m.name), 0), window_s)
            for m in trial.profile(d.profile).measurements
        ]
        stats = per_device.get(d.id)
        device_kpis.append(
            DeviceKpis(
                device=d.id,
                site=d.site,
                profile=d.profile,
                measurements=measurements,
                **_kpis(
                    measurements,
                    stats,
                    flagged=sum(n for (dev, _), n in flagged.items() if dev == d.id),
                    uptime=up[d.id],
                    events=[e for e in events if e.device == d.id],
                ).model_dump(),
            )
        )
    slots = [up_slots for up_slots in up.values() if up_slots is not None]
    totals = _kpis(
        [m for d in device_kpis for m in d.measurements],
        pooled[0] if pooled else None,
        flagged=sum(flagged.values()),
        uptime=sum(slots) / len(slots) if slots else None,
        events=events,
    )
    return TrialKpis(
        trial=trial.id, start=start, end=end, timezone=trial.timezone, totals=totals, devices=device_kpis
    )


def _measurement(name: str, period_s: float, received: int, window_s: float) -> MeasurementKpis:
    expected = math.floor(window_s / period_s)
    return MeasurementKpis(
        measurement=name,
        period_s=period_s,
        received=received,
        expected=expected,
        completeness=min(received, expected) / expected if expected else None,
    )


def _kpis(
    measurements: Sequence[MeasurementKpis],
    stats: ReadingStats | None,
    *,
    flagged: int,
    uptime: float | None,
    events: Sequence[EventCount],
) -> Kpis:
    expected = sum(m.expected for m in measurements)
    received = sum(m.received for m in measurements)
    by_type: Counter[str] = Counter()
    for e in events:
        by_type[e.type] += e.count
    return Kpis(
        received=received,
        expected=expected,
        completeness=sum(min(m.received, m.expected) for m in measurements) / expected if expected else None,
        uptime=uptime,
        latency_p50_s=_seconds(stats.delay_p50_us if stats else None),
        latency_p95_s=_seconds(stats.delay_p95_us if stats else None),
        flagged_share=flagged / received if received else None,
        events=dict(sorted(by_type.items())),
    )


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / _US


def _uptime(
    store: Store, trial: Trial, devices: Sequence[Device], *, start: datetime, end: datetime
) -> dict[str, float | None]:
    """Per device, the share of its slots holding a numeric reading; None for a device with no numbers."""
    by_slot: dict[timedelta, list[str]] = defaultdict(list)
    for d in devices:
        numeric = [m for m in trial.profile(d.profile).measurements if m.type is not ValueType.STR]
        if numeric:
            period = timedelta(seconds=min(m.period_s for m in numeric))
            by_slot[max(MIN_SLOT, period)].append(d.id)
    up: dict[str, float | None] = {d.id: None for d in devices}
    for slot, ids in by_slot.items():
        query = AggregateQuery(
            trial=trial.id,
            start=start,
            end=end,
            bucket=slot,
            devices=ids,
            functions=(),
            timezone=trial.timezone,
        )
        # As a grid (µs starts, counts per series × slot): no datetime per slot, so a window
        # whose first slot starts before year 1 (in Tokyo) works too, and no Bucket per slot.
        grid = buckets.aggregate_grid(store, query)
        total = len(grid.starts_us)
        if not total:
            continue  # an empty window has no slots: uptime stays None
        filled = grid.count.reshape(len(grid.series), total) > 0
        rows: dict[str | None, list[int]] = defaultdict(list)
        for row, (_, device) in enumerate(grid.series):
            rows[device].append(row)
        for device_id in ids:
            slots = int(np.count_nonzero(filled[rows[device_id]].any(axis=0)))  # no rows: 0
            up[device_id] = slots / total
    return up
