"""api.rendering writes what the documented models would: same keys, order, times and nulls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from api.rendering import aggregate_body
from api.schemas import AggregateResult, BucketPublic
from midika.store.base import Bucket
from midika.timeutil import to_rfc3339
from tests.api.conftest import HOURS, T0

START = datetime(2026, 7, 1, 15, 0, 0, 250, tzinfo=UTC)  # microseconds, as a cursor-free grid may have
BUCKETS = [
    Bucket(start=START, measurement="m", device="d-1", count=3, values={"mean": 1.5, "p99.9": 1e-07}),
    Bucket(start=START, measurement="m", device=None, count=0, values={"mean": None, "p99.9": None}),
    Bucket(start=START, measurement="温度", device="d-2", count=1, values={"mean": 1e16, "p99.9": -0.0}),
]


def _model(items: list[Bucket]) -> AggregateResult:
    return AggregateResult(
        bucket="1h",
        bucket_seconds=3600,
        timezone="Asia/Tokyo",
        functions=["mean", "p99.9"],
        items=[
            BucketPublic(
                start=b.start,
                end=b.start + timedelta(hours=1),
                device=b.device,
                measurement=b.measurement,
                count=b.count,
                values=dict(b.values),
            )
            for b in items
        ],
    )


def _body(items: list[Bucket]) -> bytes:
    return aggregate_body(
        bucket="1h",
        bucket_seconds=3600,
        timezone="Asia/Tokyo",
        functions=["mean", "p99.9"],
        items=items,
        ends={START: START + timedelta(hours=1)},
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
    body = json.loads(_body(odd))
    assert [i["values"] for i in body["items"]] == [
        {"mean": None, "p99.9": 1.0},
        {"mean": None, "p99.9": 2.0},
    ]
    assert body == json.loads(_model(odd).model_dump_json())


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
