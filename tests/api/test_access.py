"""Every route and method × role × trial gets 401, 403 or 200 as ROUTE_ROLES and the grants say.

The trials are every shipped trial file plus the two test trials (beta holds personal data), so a
trial file added to trials/ is walked too. Routes and their parameters come from the app itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient

from api.app import API_PREFIX, create_app
from api.auth import ROUTE_ROLES, document_roles
from devices.registry import Registry
from midika.keys import WILDCARD, ApiKey, KeyRing, Role, ensure_local_admin_key
from midika.models.trial import Trial
from midika.settings import Settings
from midika.store.duckdb import DuckDBStore
from midika.timeutil import utcnow
from tests.api.conftest import ALPHA, BASE_URL, BETA, StaticTrials, bearer
from tests.api.test_errors import VALID, api_routes

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Caller:
    """A way of calling the API: a key (or none) and what it is."""

    label: str
    headers: dict[str, str]
    key: ApiKey | None


@pytest.fixture
def every_trial(settings: Settings) -> list[Trial]:
    """The shipped trials and the test trials."""
    return [*Registry.from_settings(settings).trials(), ALPHA, BETA]


@pytest.fixture
async def access_app(settings: Settings, every_trial: list[Trial]) -> AsyncIterator[tuple[FastAPI, KeyRing]]:
    """The API over an empty store serving `every_trial`, and its key ring."""
    settings.data_dir.mkdir(parents=True)
    store = DuckDBStore(path=settings.duckdb_file)
    ring = KeyRing(path=settings.api_keys_file)
    yield create_app(store=store, trials=StaticTrials(every_trial), settings=settings, keys=ring), ring
    store.close()


def _callers(ring: KeyRing, trial: Trial, other: Trial) -> list[Caller]:
    def issued(label: str, role: Role, trials: list[str]) -> Caller:
        key = ring.create(role=role, trials=trials, name=label)
        return Caller(label, bearer(key.secret), key.record)

    revoked = ring.create(role=Role.ADMIN, name="revoked")
    ring.revoke(revoked.record.id)
    return [
        Caller("no key", {}, None),
        Caller("not a key", bearer("mk_00000000_" + "A" * 43), None),
        Caller("basic auth", {"Authorization": "Basic YWRtaW46YWRtaW4="}, None),
        Caller("revoked admin", bearer(revoked.secret), None),
        issued("admin", Role.ADMIN, []),
        issued("evaluator of the trial", Role.EVALUATOR, [trial.id]),
        issued("evaluator of everything", Role.EVALUATOR, [WILDCARD]),
        issued("evaluator of another trial", Role.EVALUATOR, [other.id]),
        issued("viewer of the trial", Role.VIEWER, [trial.id]),
        issued("viewer of everything", Role.VIEWER, [WILDCARD]),
        issued("viewer of another trial", Role.VIEWER, [other.id]),
    ]


def _request(app: FastAPI, path: str, trial: Trial, method: str = "GET") -> tuple[str, dict[str, str]]:
    """A request to `path` that is valid for any trial: only required parameters and the trial."""
    operation = app.openapi()["paths"][path][method.lower()]
    query: dict[str, str] = {}
    url = path
    for param in operation.get("parameters", []):
        name = param["name"]
        if name == "trial":
            value: str | None = trial.id
        elif param.get("required"):
            value = VALID[name]
        else:
            continue
        assert value is not None
        if param["in"] == "path":
            url = url.replace("{" + name + "}", value)
        else:
            query[name] = value
    return url, query


def _expected(route: str, caller: Caller, trial: Trial) -> int:
    needed = ROUTE_ROLES[route.removeprefix(API_PREFIX)]
    if needed is None:
        return 200
    if caller.key is None:
        return 401
    if not caller.key.role.allows(needed):
        return 403
    names_a_trial = "{trial}" in route or route.endswith(
        ("/readings", "/events", "/aggregate", "/latest", "/export")
    )
    if names_a_trial and not caller.key.sees(trial):
        return 403
    return 200


def test_every_route_has_a_role_and_every_role_a_route(app: FastAPI) -> None:
    routes = {path.removeprefix(API_PREFIX) for path, _ in api_routes(app)}
    assert routes == set(ROUTE_ROLES)
    public = {path for path, role in ROUTE_ROLES.items() if role is None}
    assert public == {"/health"}


def test_the_openapi_document_states_every_routes_role(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for path, method in api_routes(app):
        operation = paths[path][method.lower()]
        role = ROUTE_ROLES[path.removeprefix(API_PREFIX)]
        assert operation["x-midika-role"] == ("public" if role is None else role.value), path
        assert ("security" in operation) == (role is not None), path
        if role is not None:
            assert f"role **{role.value}**" in operation["description"], path


def test_an_app_with_a_route_missing_from_the_table_is_refused() -> None:
    router = APIRouter()
    router.add_api_route("/unlisted", lambda: None)
    app = FastAPI()
    app.include_router(router, prefix=API_PREFIX)
    with pytest.raises(LookupError, match="/api/v1/unlisted"):
        document_roles(app, API_PREFIX)


async def test_every_route_role_and_trial(
    access_app: tuple[FastAPI, KeyRing], every_trial: list[Trial]
) -> None:
    app, ring = access_app
    routes = api_routes(app)
    seen: dict[int, int] = {}
    async with AsyncClient(transport=ASGITransport(app=app), base_url=BASE_URL) as client:
        for n, trial in enumerate(every_trial):
            other = every_trial[(n + 1) % len(every_trial)]
            for caller in _callers(ring, trial, other):
                for route, method in routes:
                    url, query = _request(app, route, trial, method)
                    response = await client.request(method, url, params=query, headers=caller.headers)
                    want = _expected(route, caller, trial)
                    assert response.status_code == want, (trial.id, caller.label, url, response.text)
                    seen[want] = seen.get(want, 0) + 1
                    if want == 401:
                        assert response.headers["www-authenticate"] == "Bearer"
                    if want != 200:
                        assert response.json()["error"]["status"] == want
                    elif route.endswith("/trials"):
                        listed = {t["id"] for t in response.json()["items"]}
                        assert caller.key is not None
                        assert listed == {t.id for t in every_trial if caller.key.sees(t)}
    assert set(seen) == {200, 401, 403}


def test_a_wildcard_grant_never_covers_personal_data() -> None:
    assert BETA.personal_data and not ALPHA.personal_data
    ring_key = ApiKey(id="x", name="", role=Role.EVALUATOR, trials=(WILDCARD,), hash="", created_at=utcnow())
    assert ring_key.sees(ALPHA)
    assert not ring_key.sees(BETA)
    named = ApiKey(id="y", name="", role=Role.VIEWER, trials=(WILDCARD, "beta"), hash="", created_at=utcnow())
    assert named.sees(BETA)


async def test_forbidden_personal_trial_says_why(client: AsyncClient, keys: KeyRing) -> None:
    key = keys.create(role=Role.EVALUATOR, trials=[WILDCARD]).secret
    response = await client.get("/api/v1/trials/beta", headers=bearer(key))
    assert response.status_code == 403
    assert "personal data" in response.json()["error"]["message"]


async def test_unknown_trial_lists_only_visible_trials(client: AsyncClient, keys: KeyRing) -> None:
    key = keys.create(role=Role.VIEWER, trials=["alpha"]).secret
    response = await client.get("/api/v1/trials/nope", headers=bearer(key))
    assert response.status_code == 404
    assert response.json()["error"]["details"][0]["allowed"] == ["alpha"]


async def test_revoking_a_key_takes_effect_at_once(client: AsyncClient, keys: KeyRing) -> None:
    issued = keys.create(role=Role.VIEWER, trials=["alpha"])
    assert (await client.get("/api/v1/trials", headers=bearer(issued.secret))).status_code == 200
    # Another KeyRing on the same file: as `midika keys revoke` does from another process.
    KeyRing(path=keys.path).revoke(issued.record.id)
    assert (await client.get("/api/v1/trials", headers=bearer(issued.secret))).status_code == 401


def test_only_hashes_are_stored(tmp_path: Path) -> None:
    ring = KeyRing(path=tmp_path / "api_keys.json")
    issued = ring.create(role=Role.EVALUATOR, trials=["alpha"], name="lab")
    text = (tmp_path / "api_keys.json").read_text()
    secret_part = issued.secret.split("_", 2)[2]
    assert secret_part not in text
    assert issued.record.hash in text
    assert (tmp_path / "api_keys.json").stat().st_mode & 0o777 == 0o600
    assert ring.authenticate(issued.secret) == issued.record
    assert ring.authenticate(issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")) is None


def test_non_admin_keys_need_a_trial(tmp_path: Path) -> None:
    from midika.errors import ConfigError

    with pytest.raises(ConfigError, match="--trial"):
        KeyRing(path=tmp_path / "k.json").create(role=Role.VIEWER)


def test_local_admin_key_is_kept_in_a_private_file_and_reused(tmp_path: Path) -> None:
    ring = KeyRing(path=tmp_path / "api_keys.json")
    key_file = tmp_path / "admin.key"
    first, created = ensure_local_admin_key(ring, key_file)
    assert created and key_file.stat().st_mode & 0o777 == 0o600
    again, created_again = ensure_local_admin_key(ring, key_file)
    assert (again, created_again) == (first, False)
    record = ring.authenticate(first)
    assert record is not None
    ring.revoke(record.id)
    replaced, created = ensure_local_admin_key(ring, key_file)
    assert created and replaced != first
    assert key_file.read_text().strip() == replaced
