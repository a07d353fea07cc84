"""/openapi.json documents every route and every response, errors included, and matches what is sent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from jsonschema import Draft202012Validator

from midika import __version__
from tests.api.test_errors import VALID, api_routes

pytestmark = pytest.mark.anyio

ERROR_REF = "#/components/schemas/ErrorResponse"
DOWNLOADS = {"/api/v1/export"}  # answer with a file, not JSON
# Served as Prometheus text, not JSON.
TEXT = {"/api/v1/metrics"}


async def _document(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; carrying `components` lets their $refs resolve.
    return Draft202012Validator({**schema, "components": doc["components"]})


async def test_document_is_openapi_3_with_title_and_version(client: AsyncClient) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "midika"
    assert doc["info"]["version"] == __version__
    assert "error" in doc["info"]["description"]
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert name not in ("HTTPValidationError", "ValidationError"), "the API never sends FastAPI's 422"


async def test_every_ref_resolves(client: AsyncClient) -> None:
    doc = await _document(client)
    refs = _refs(doc["paths"]) + _refs(doc["components"])
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


async def test_every_route_is_documented_with_the_error_envelope(app: FastAPI, client: AsyncClient) -> None:
    doc = await _document(client)
    routes = api_routes(app)
    assert len(routes) >= 8
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert set(routes) == documented
    for path, method in routes:
        operation = doc["paths"][path][method.lower()]
        responses = operation["responses"]
        assert "422" not in responses, path
        assert responses["default"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        if operation.get("parameters"):
            assert responses["400"]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF, path
        assert operation.get("summary"), path
        if path in TEXT:
            assert any(t.startswith("text/plain") for t in responses["200"]["content"]), path
            continue
        if path in DOWNLOADS:
            assert {"text/csv", "application/x-ndjson", "application/vnd.apache.parquet"} <= set(
                responses["200"]["content"]
            )
            continue
        assert "$ref" in responses["200"]["content"]["application/json"]["schema"], path


async def test_responses_match_their_documented_schemas(app: FastAPI, client: AsyncClient) -> None:
    doc = await _document(client)
    for path, method in api_routes(app):
        operation = doc["paths"][path][method.lower()]
        query = {}
        url = path
        for param in operation.get("parameters", []):
            value = VALID[param["name"]]
            if value is None:
                continue
            if param["in"] == "path":
                url = url.replace("{" + param["name"] + "}", value)
            else:
                query[param["name"]] = value
        ok = await client.request(method, url, params=query)
        assert ok.status_code == 200, url
        if path in DOWNLOADS or path in TEXT:
            continue
        documented = operation["responses"]["200"]["content"]["application/json"]["schema"]
        _validator(doc, documented).validate(ok.json())
        bad = await client.request(method, "/api/v1/trials/no-such-trial")
        _validator(doc, {"$ref": ERROR_REF}).validate(bad.json())


async def test_documented_parameters_say_what_they_take(client: AsyncClient) -> None:
    doc = await _document(client)
    params = {p["name"]: p for op in doc["paths"].values() for p in op.get("get", {}).get("parameters", [])}
    assert params["limit"]["schema"]["maximum"] == 10000
    start = params["start"]["schema"]
    assert "date-time" in str(start)
    assert "pattern" in str(params["bucket"]["schema"])
    assert params["quality"]["schema"]["anyOf"][0]["items"]["$ref"] == "#/components/schemas/QualityFlag"
    assert set(doc["components"]["schemas"]["QualityFlag"]["enum"]) == {
        "ok",
        "out_of_range",
        "no_device_time",
        "clock_suspect",
    }


async def test_docs_page_is_served(client: AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text
