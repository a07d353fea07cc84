"""Every error of every route has the one envelope, and a message that says what to fix.

Routes are discovered from `app.routes` and their parameters from the OpenAPI document, so a new
route or parameter is walked too; a parameter missing from VALID and BAD below fails the test
until someone says what a good and a bad value of it are.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from midika.errors import StoreUnavailable
from midika.models.records import DeviceState, Event, QuarantineRecord, Reading, StatusReport
from midika.settings import Settings
from midika.store.base import (
    AggregateQuery,
    Bucket,
    EventCount,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    ReadingStats,
    StatsQuery,
    TablePage,
    WriteResult,
)
from tests.api.conftest import BASE_URL, StaticTrials, admin_headers

pytestmark = pytest.mark.anyio

# A value every route accepts for each parameter (None: leave it out of the valid request).
VALID: dict[str, str | None] = {
    "trial": "alpha",
    "device": "buoy-1",
    "site": "offshore",
    "measurement": "water_temp",
    "type": "RIP_DETECTED",
    "start": "2026-07-01T00:00:00Z",
    "end": "2026-07-01T06:00:00Z",
    "bucket": "1h",
    "per_device": "true",
    "fn": "p95",
    "percentile": "99.9",
    "quality": "ok",
    "limit": "10",
    "format": "csv",
    "cursor": None,  # there is no valid cursor without a previous page
    "reason": "unknown_device",
    "id": "999999",  # no such quarantine id: re-ingesting it reports not_found
}

# A bad value for each parameter, and the status it must get.
BAD: dict[str, tuple[str, int]] = {
    "trial": ("no-such-trial", 404),
    "device": ("no-such-device", 400),
    "site": ("no-such-site", 400),
    "measurement": ("no_such_measurement", 400),
    "type": ("NO_SUCH_TYPE", 400),
    "start": ("last tuesday", 400),
    "end": ("2026-07-01 06:00", 400),
    "bucket": ("5 minutes", 400),
    "per_device": ("maybe", 400),
    "fn": ("median", 400),
    "percentile": ("0", 400),
    "quality": ("dubious", 400),
    "limit": ("0", 400),
    "format": ("xlsx", 400),
    "cursor": ("not-a-cursor", 400),
    "reason": ("no_such_reason", 400),
    "id": ("x", 400),
}


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(path, method) of every API route of `app`, through included routers."""
    found: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path_format:
            found.extend((context.path_format, method) for method in sorted(context.methods or ()))
    return found


def _operations(app: FastAPI) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(path, method, OpenAPI parameters) for every API route of `app`."""
    paths = app.openapi()["paths"]
    return [
        (path, method, paths[path][method.lower()].get("parameters", [])) for path, method in api_routes(app)
    ]


def _request(
    path: str, parameters: list[dict[str, Any]], overrides: dict[str, str | None]
) -> tuple[str, dict[str, str]]:
    """The URL and query of a request to `path`, valid except for `overrides` (None: left out)."""
    query: dict[str, str] = {}
    for param in parameters:
        name = param["name"]
        value = overrides.get(name, VALID[name]) if name in overrides else VALID[name]
        if param["in"] == "path":
            assert value is not None
            path = path.replace("{" + name + "}", value)
        elif value is not None:
            query[name] = value
    return path, query


def assert_envelope(response: httpx.Response, status: int | Sequence[int]) -> dict[str, Any]:
    """The response is an error with `status` and exactly the documented envelope."""
    statuses = [status] if isinstance(status, int) else list(status)
    assert response.status_code in statuses, (response.request.url, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == response.status_code
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error["details"], list)
    return error


def test_every_parameter_has_a_valid_and_a_bad_value(app: FastAPI) -> None:
    names = {p["name"] for _, _, params in _operations(app) for p in params}
    assert names <= set(VALID), f"add {sorted(names - set(VALID))} to VALID"
    assert names <= set(BAD), f"add {sorted(names - set(BAD))} to BAD"


async def test_every_route_answers_bad_parameters_with_the_envelope(
    app: FastAPI, client: AsyncClient
) -> None:
    operations = _operations(app)
    assert len(operations) >= 8
    for route_path, method, parameters in operations:
        path, query = _request(route_path, parameters, {})
        response = await client.request(method, path, params=query)
        assert response.status_code == 200, (path, query, response.text)

        for param in parameters:
            name = param["name"]
            bad, status = BAD[name]
            path, query = _request(route_path, parameters, {name: bad})
            error = assert_envelope(await client.request(method, path, params=query), status)
            assert f"'{name}'" in error["message"] or bad in error["message"], (path, name, error)

            if param.get("required") and param["in"] == "query":
                path, query = _request(route_path, parameters, {name: None})
                error = assert_envelope(await client.request(method, path, params=query), 400)
                assert f"query parameter '{name}': is required" in error["message"]


async def test_every_route_refuses_unknown_parameters(app: FastAPI, client: AsyncClient) -> None:
    # A misspelt filter must not silently widen the answer.
    for route_path, method, parameters in _operations(app):
        path, query = _request(route_path, parameters, {})
        response = await client.request(method, path, params={**query, "devices": "buoy-1"})
        error = assert_envelope(response, 400)
        assert "'devices'" in error["message"]
        assert error["details"][0]["allowed"] == sorted(p["name"] for p in parameters if p["in"] == "query")


async def test_every_route_refuses_other_methods_with_the_envelope(app: FastAPI, client: AsyncClient) -> None:
    for route_path, _method, parameters in _operations(app):
        path, query = _request(route_path, parameters, {})
        error = assert_envelope(await client.request("DELETE", path, params=query), 405)
        assert "DELETE" in error["message"]


async def test_unknown_path_has_the_envelope(client: AsyncClient) -> None:
    error = assert_envelope(await client.get("/api/v2/readings"), 404)
    assert "/api/v1" in error["message"]


async def test_several_problems_are_all_reported(client: AsyncClient) -> None:
    params = {"trial": "alpha", "start": "soon", "limit": "lots"}
    error = assert_envelope(await client.get("/api/v1/readings", params=params), 400)
    assert {(d["location"], d["parameter"]) for d in error["details"]} == {
        ("query", "start"),
        ("query", "limit"),
    }
    assert "query parameter 'limit': expected an integer" in error["message"]


class BrokenStore:
    """A store whose every read fails with `error`: how the API behaves when the store does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def write_readings(self, readings: Sequence[Reading]) -> WriteResult:
        raise self.error

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        raise self.error

    def write_status(self, reports: Sequence[StatusReport]) -> None:
        raise self.error

    def write_quarantine(self, records: Sequence[QuarantineRecord]) -> None:
        raise self.error

    def query_readings(self, query: ReadingQuery) -> Page[Reading]:
        raise self.error

    def reading_table(self, query: ReadingQuery) -> TablePage:
        raise self.error

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        raise self.error

    def latest(
        self, *, trial: str, devices: Sequence[str] | None = None, measurements: Sequence[str] | None = None
    ) -> list[Reading]:
        raise self.error

    def query_events(self, query: EventQuery) -> Page[Event]:
        raise self.error

    def device_states(self, *, trial: str) -> list[DeviceState]:
        raise self.error

    def query_quarantine(self, query: QuarantineQuery) -> list[QuarantineRecord]:
        raise self.error

    def delete_quarantine(self, ids: Sequence[int]) -> int:
        raise self.error

    def reading_stats(self, query: StatsQuery) -> list[ReadingStats]:
        raise self.error

    def event_counts(self, query: StatsQuery) -> list[EventCount]:
        raise self.error

    def close(self) -> None:
        pass


def _client(app: FastAPI, settings: Settings) -> AsyncClient:
    # raise_app_exceptions=False: see the response the client gets, not the exception the server logs.
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    return AsyncClient(transport=transport, base_url=BASE_URL, headers=admin_headers(settings))


def _store_backed_requests(app: FastAPI) -> list[tuple[str, str, dict[str, str]]]:
    requests = []
    for route_path, method, parameters in _operations(app):
        if route_path.endswith(("/trials", "/trials/{trial}", "/metrics")):
            continue  # served from the trial registry (or the process's counters) alone
        path, query = _request(route_path, parameters, {})
        requests.append((method, path, query))
    return requests


async def test_unexpected_failure_is_500_without_internals(
    trials: StaticTrials, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        store=BrokenStore(RuntimeError("secret: /var/lib/db.duckdb")), trials=trials, settings=settings
    )
    requests = _store_backed_requests(app)
    assert len(requests) >= 6
    async with _client(app, settings) as client:
        for method, path, query in requests:
            with caplog.at_level(logging.ERROR):
                caplog.clear()
                response = await client.request(method, path, params=query)
            error = assert_envelope(response, 500)
            assert error["code"] == "internal_error"
            assert "secret" not in response.text
            assert any(r.exc_info and "secret" in str(r.exc_info[1]) for r in caplog.records), path


async def test_unavailable_store_is_503_with_retry_after(trials: StaticTrials, settings: Settings) -> None:
    app = create_app(
        store=BrokenStore(StoreUnavailable("duckdb file is locked")), trials=trials, settings=settings
    )
    async with _client(app, settings) as client:
        for method, path, query in _store_backed_requests(app):
            response = await client.request(method, path, params=query)
            error = assert_envelope(response, 503)
            assert error["code"] == "store_unavailable"
            assert "locked" not in response.text  # the cause is for the log, not the client
            assert response.headers["retry-after"].isdigit()
        # The health check reports it the same way, with the same status.
        response = await client.get("/api/v1/health")
        assert assert_envelope(response, 503)["code"] == "store_unavailable"
        assert response.headers["retry-after"].isdigit()


async def test_broken_store_does_not_break_the_trial_routes(trials: StaticTrials, settings: Settings) -> None:
    app = create_app(store=BrokenStore(StoreUnavailable("down")), trials=trials, settings=settings)
    async with _client(app, settings) as client:
        assert (await client.get("/api/v1/trials")).status_code == 200
        assert (await client.get("/api/v1/trials/alpha")).status_code == 200
