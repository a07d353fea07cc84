"""Property-based: whatever /openapi.json allows (and a bit beyond), the API never answers 5xx.

Schemathesis generates requests from the app's own OpenAPI document; Hypothesis drives them
against the seeded app in-process, through Starlette's test client (schemathesis' own requests
transport does not work with the urllib3 installed here). Bounded so it runs in seconds: a few
dozen requests per operation, derandomized so a failure is reproducible.
"""

from __future__ import annotations

import warnings
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import bearer

EXAMPLES = 40


def test_no_operation_answers_5xx(app: FastAPI, admin_key: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 10
    with warnings.catch_warnings():
        # Starlette deprecates its httpx-based test client in favour of a package not installed here.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    client = TestClient(app, headers=bearer(admin_key))
    seen: set[int] = set()
    for operation in operations:

        @given(case=operation.as_strategy(), known=st.sampled_from(["alpha", "beta", None]))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any, known: str | None) -> None:
            # Random trial ids are all 404s: mostly name a real trial, to reach the queries behind.
            if known is not None and "trial" in (case.path_parameters or {}):
                case.path_parameters["trial"] = known
            if known is not None and case.query is not None and "trial" in case.query:
                case.query["trial"] = known
            response = client.request(case.method, case.formatted_path, params=case.query)
            seen.add(response.status_code)
            where = (case.method, case.formatted_path, case.query, response.text[:300])
            assert response.status_code < 500, where
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, where

        check()
    assert 200 in seen and 400 in seen, seen
