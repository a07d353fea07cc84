"""Build the HTTP API: `create_app(store=..., trials=..., settings=...)`.

There is no module-level app: the entry point builds settings, store and registry once and passes
them in, and tests build as many apps as they like, each over its own store.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from api.auth import document_roles
from api.deps import Services, TrialSource, check_request
from api.errors import install_error_handlers
from api.routes import admin, devices, events, export, health, kpis, metrics, readings, trials
from ingest.metrics import metrics_registry
from midika import __version__
from midika.keys import KeyRing
from midika.settings import Settings
from midika.store.base import Store

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Readings, events and device state of regional IoT field trials, for evaluators.

Times are RFC 3339 (`2026-07-01T00:00:00Z`); windows are `[start, end)`. Lists that can be long
are paged: follow `next` until it is null. Every route but /health needs an API key
(`midika keys create`), sent as `Authorization: Bearer <key>`. Every error has the same body,
`{"error": {"status", "code", "message", "details"}}`, and the message says what to fix.
"""

# Every router the API serves, in one place; the order is the order of the docs.
ROUTERS = (
    health.router,
    trials.router,
    devices.router,
    kpis.router,
    readings.router,
    events.router,
    export.router,
    admin.router,
    metrics.router,
)


def create_app(
    *,
    store: Store,
    trials: TrialSource,
    settings: Settings,
    keys: KeyRing | None = None,
    metrics: CollectorRegistry | None = None,
) -> FastAPI:
    """An API app serving `trials` from `store`; the caller owns (and closes) the store.

    `keys` defaults to the key file of `settings.data_dir`; `metrics` (what /metrics serves) to
    midika's build info alone: `midika up` passes one with its ingest's metrics.
    """
    app = FastAPI(
        title="midika",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    ring = keys or KeyRing(path=settings.api_keys_file)
    app.state.services = Services(store=store, trials=trials, settings=settings, keys=ring)
    app.state.keys = ring
    app.state.metrics = metrics if metrics is not None else metrics_registry()
    app.state.api_prefix = API_PREFIX
    install_error_handlers(app)
    # The key is checked first, so a request without a valid key learns nothing from parameter errors.
    checks = [Depends(check_request)]
    for router in ROUTERS:
        # Each router straight into the app: FastAPI matches a request router by router, and an
        # enclosing /api/v1 router was one more level for every request (~30 µs).
        app.include_router(router, prefix=API_PREFIX, dependencies=checks)
    document_roles(app, API_PREFIX)  # raises if a route has no role in api.auth.ROUTE_ROLES
    return app
