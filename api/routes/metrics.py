"""GET /metrics: Prometheus text exposition of the process's metrics (the ingest's, when it runs here).

It needs a viewer key like every other read (ROUTE_ROLES): Prometheus sends one with
`authorization: {credentials_file: ...}` in its scrape config. The numbers carry no trial data,
but the API has one rule, a key for everything but /health, and a scrape target is no exception.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.errors import error_responses

router = APIRouter(tags=["metrics"], responses=error_responses())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Counters and gauges of this process in the Prometheus text format, for a scraper."""
    registry = request.app.state.metrics
    assert isinstance(registry, CollectorRegistry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
