"""Who may call which route: the table of route → role, and the dependency that enforces it.

`ROUTE_ROLES` is the one place a route's role is stated; `create_app` refuses to build an app with a
route missing from it, attaches `authorize` to every route and documents the role in /openapi.json.
Requests carry `Authorization: Bearer <key>`; keys are issued with `midika keys create`.
Trial grants are checked where the trial is resolved (`api.deps`), so a route cannot forget them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts

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
    return path_role(route.path, prefix)


def path_role(path: str, prefix: str) -> Role | None:
    """The role a route at `path` (with or without `prefix`) needs; LookupError if not in the table."""
    key = path.removeprefix(prefix)
    if key not in ROUTE_ROLES:
        raise LookupError(f"route {path} has no entry in api.auth.ROUTE_ROLES")
    return ROUTE_ROLES[key]


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
    """Check that every API route has a role (LookupError if not); put the roles into /openapi.json.

    The roles go into the generated document rather than onto the routes: FastAPI (0.165) keeps
    included routers as such in `app.routes` and builds its own copies of their routes, so a
    change to a route after `include_router` never reaches the document.
    """
    for context in iter_route_contexts(app.routes):
        path = context.path_format
        if isinstance(context.original_route, APIRoute) and path is not None and path.startswith(prefix):
            path_role(path, prefix)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(prefix):
                    _document(operations.values(), path_role(path, prefix))
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[SECURITY_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key from `midika keys create`",
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(operations: Iterable[dict[str, Any]], role: Role | None) -> None:
    for operation in operations:
        operation["x-midika-role"] = "public" if role is None else role.value
        if role is not None:
            operation["security"] = [{SECURITY_SCHEME: []}]
            needs = f"Needs a key with role **{role.value}** or above."
            described = operation.get("description")
            operation["description"] = f"{described}\n\n{needs}" if described else needs
