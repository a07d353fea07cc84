"""Who may call which route: the table of route → role, and the dependency that enforces it.

`ROUTE_ROLES` is the one place a route's role is stated; `create_app` refuses to build an app with a
route missing from it, attaches `authorize` to every route and documents the role in /openapi.json.
Requests carry `Authorization: Bearer <key>`; keys are issued with `midika keys create`.
Trial grants are checked where the trial is resolved (`api.deps`), so a route cannot forget them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from api.errors import ApiError
from midika.keys import ApiKey, KeyRing, Role

PUBLIC = None  # no key needed

# Every route (path under /api/v1) and the least role that may call it.
ROUTE_ROLES: dict[str, Role | None] = {
    "/health": PUBLIC,
    "/trials": Role.VIEWER,  # lists only the trials the key may see
    "/trials/{trial}": Role.VIEWER,
    "/trials/{trial}/devices": Role.VIEWER,
    "/trials/{trial}/kpis": Role.VIEWER,
    "/readings/aggregate": Role.VIEWER,
    "/readings/latest": Role.VIEWER,
    "/readings": Role.EVALUATOR,
    "/events": Role.EVALUATOR,
    "/export": Role.EVALUATOR,
    "/admin/quarantine": Role.ADMIN,  # raw payloads of any trial, registered or not
    "/admin/quarantine/reingest": Role.ADMIN,
    "/metrics": Role.VIEWER,  # Prometheus sends a viewer key: see api/routes/metrics.py
}

SECURITY_SCHEME = "apiKey"
_BEARER = "bearer "


def route_role(route: APIRoute, prefix: str) -> Role | None:
    """The role `route` needs; LookupError if the table does not name it."""
    path = route.path.removeprefix(prefix)
    if path not in ROUTE_ROLES:
        raise LookupError(f"route {route.path} has no entry in api.auth.ROUTE_ROLES")
    return ROUTE_ROLES[path]


def _key_ring(request: Request) -> KeyRing:
    ring = request.app.state.keys
    assert isinstance(ring, KeyRing)
    return ring


async def authorize(request: Request) -> None:
    """401 without a valid key, 403 when the key's role is below the route's; keeps the key."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    needed = route_role(route, request.app.state.api_prefix)
    if needed is None:
        return
    header = request.headers.get("authorization", "")
    if not header:
        raise _unauthorized("this route needs an API key: send 'Authorization: Bearer <key>'")
    if not header.lower().startswith(_BEARER):
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    key = _key_ring(request).authenticate(header[len(_BEARER) :].strip())
    if key is None:
        raise _unauthorized("the API key is not valid or has been revoked")
    if not key.role.allows(needed):
        raise ApiError(
            403,
            "forbidden",
            f"{route.path} needs the {needed} role; this key ({key.id}) is a {key.role} key",
        )
    request.state.api_key = key


def current_key(request: Request) -> ApiKey | None:
    """The key the request was authorized with; None on public routes."""
    key = getattr(request.state, "api_key", None)
    return key if isinstance(key, ApiKey) else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def document_roles(app: FastAPI, prefix: str) -> None:
    """Put each route's role into its OpenAPI operation, and the bearer scheme into components."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith(prefix):
            role = route_role(route, prefix)
            extra: dict[str, Any] = {"x-midika-role": "public" if role is None else role.value}
            if role is not None:
                extra["security"] = [{SECURITY_SCHEME: []}]
                route.description = f"{route.description}\n\nNeeds a key with role **{role}** or above."
            route.openapi_extra = extra

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[SECURITY_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key from `midika keys create`",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
