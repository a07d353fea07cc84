"""api.rendering writes what the documented models would: same keys, order, times and nulls."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from httpx import AsyncClient

from api.rendering import aggregate_body
from api.schemas import AggregateResult, BucketPublic
from midika.store.base import Bucket
from midika.store.buckets import BucketGrid
from midika.timeutil import to_rfc3339, to_us
from tests.api.conftest import HOURS, T0

START = datetime(2026, 7, 1, 15, 0, 0, 250, tzinfo=UTC)  # microseconds, as a cursor-free grid may have
BUCKETS = [
    Bucket(start=START, measurement="m", device="d-1", count=3, values={"mean": 1.5, "p99.9": 1e-07}),
    Bucket(start=START, measurement="m", device=None, count=0, values={"mean": None, "p99.9": None}),
    Bucket(start=START, measurement="温度", device="d-2", count=1, values={"mean": 1e16, "p99.9": -0.0}),
]


def _grid(items: list[Bucket], names: tuple[str, ...] = ("mean", "p99.9")) -> BucketGrid:
    """One bucket start, one series per item."""
    return BucketGrid(
        starts_us=np.array([to_us(START)], dtype=np.int64),
        series=[(b.measurement, b.device) for b in items],
        count=np.array([b.count for b in items], dtype=np.int64),
        values={name: np.array([b.values[name] for b in items], dtype=np.float64) for name in names},
    )


def _model(items: list[Bucket], names: tuple[str, ...] = ("mean", "p99.9")) -> AggregateResult:
    return AggregateResult(
        bucket="1h",
        bucket_seconds=3600,
        timezone="Asia/Tokyo",
        functions=list(names),
        items=[
            BucketPublic(
                start=b.start,
                end=b.start + timedelta(hours=1),
                device=b.device,
                measurement=b.measurement,
                count=b.count,
                values={name: b.values[name] for name in names},
            )
            for b in items
        ],
    )


def _body(items: list[Bucket], names: tuple[str, ...] = ("mean", "p99.9")) -> bytes:
    return aggregate_body(
        bucket="1h",
        bucket_seconds=3600,
        timezone="Asia/Tokyo",
        functions=list(names),
        grid=_grid(items, names),
        ends_us=np.array([to_us(START + timedelta(hours=1))], dtype=np.int64),
    )


def test_body_is_the_models_serialisation() -> None:
    body = json.loads(_body(BUCKETS))
    expected = json.loads(_model(BUCKETS).model_dump_json())
    assert body == expected
    assert list(body) == list(expected)
    assert list(body["items"][0]) == list(expected["items"][0])
    assert AggregateResult.model_validate(body) == _model(BUCKETS)


def test_nan_and_infinity_are_null() -> None:
    odd = [
        Bucket(start=START, measurement="m", device="d", count=2, values={"mean": float("nan"), "p99.9": 1.0})
    ]
    odd.append(
        Bucket(start=START, measurement="m", device="e", count=1, values={"mean": float("inf"), "p99.9": 2.0})
    )
    odd.append(
        Bucket(
            start=START, measurement="m", device="f", count=1, values={"mean": -float("inf"), "p99.9": 3.0}
        )
    )
    body = json.loads(_body(odd))
    assert [i["values"] for i in body["items"]] == [
        {"mean": None, "p99.9": 1.0},
        {"mean": None, "p99.9": 2.0},
        {"mean": None, "p99.9": 3.0},
    ]
    assert body == json.loads(_model(odd).model_dump_json())


def test_floats_read_back_exactly_and_stay_floats() -> None:
    rng = random.Random(6)
    samples = [2.0, -0.0, 1e16, 1e22, 123456789.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
    samples += [rng.uniform(-1e6, 1e6) for _ in range(200)] + [
        rng.random() * 10 ** rng.randint(-30, 30) for _ in range(200)
    ]
    items = [
        Bucket(start=START, measurement="m", device=f"d-{i}", count=1, values={"mean": v, "p99.9": None})
        for i, v in enumerate(samples)
    ]
    body = json.loads(_body(items))
    got = [i["values"]["mean"] for i in body["items"]]
    assert [type(v) for v in got] == [float] * len(samples)
    assert [str(v) for v in got] == [str(v) for v in samples]  # str tells -0.0 from 0.0


def test_names_are_escaped_and_count_only_has_empty_values() -> None:
    items = [Bucket(start=START, measurement='a "b"\\c', device="ö\n", count=4, values={})]
    body = json.loads(_body(items, names=()))
    assert body == json.loads(_model(items, names=()).model_dump_json())
    assert body["items"][0]["values"] == {}


def test_an_empty_grid_has_no_items() -> None:
    body = json.loads(_body([]))
    assert body == json.loads(_model([]).model_dump_json())
    assert body["items"] == []


@pytest.mark.anyio
async def test_served_aggregate_validates_as_documented(client: AsyncClient) -> None:
    params = {
        "trial": "alpha",
        "start": to_rfc3339(T0),
        "end": to_rfc3339(T0 + timedelta(hours=HOURS)),
        "bucket": "1h",
        "fn": ["mean", "p95"],
    }
    response = await client.get("/api/v1/readings/aggregate", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["items"], "the seeded trial has buckets"
    assert AggregateResult.model_validate(body).model_dump(mode="json") == body
