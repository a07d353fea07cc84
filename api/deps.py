"""What routes depend on, as `Annotated` aliases: the store, the trials, the trial a request names.

`create_app` puts one `Services` on `app.state`; everything here reads it from the request, so
nothing is global and two apps in one process (tests do this) never share a store.

The dependencies are `async def` though none awaits: FastAPI runs a plain `def` dependency in a
worker thread, a hop of ~0.1-0.3 ms each, and these only read memory (trial sources hold their
trials in memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Protocol

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.auth import authorize, current_key
from api.errors import ApiError
from api.schemas import ErrorDetail
from midika.identity_cache import IdentityCache
from midika.keys import KeyRing
from midika.models.trial import Trial
from midika.settings import Settings
from midika.store.base import Store


class TrialSource(Protocol):
    """Where the API learns which trials exist (the device registry, in production)."""

    def trials(self) -> list[Trial]:
        """Every trial, in a stable order."""
        ...

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What one app serves from; built once by `create_app`."""

    store: Store
    trials: TrialSource
    settings: Settings
    keys: KeyRing


def _services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


async def get_store(request: Request) -> Store:
    """The store the app reads from."""
    return _services(request).store


_PERSONAL = " (it holds personal data, so a '*' grant does not cover it)"


class VisibleTrials:
    """The trials of the app that the request's key may see."""

    def __init__(self, source: TrialSource, request: Request) -> None:
        self._source = source
        self._key = current_key(request)

    def _visible(self, trial: Trial) -> bool:
        return self._key is None or self._key.sees(trial)

    def trials(self) -> list[Trial]:
        """Every trial the key may see, in the source's order."""
        return [t for t in self._source.trials() if self._visible(t)]

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id` if the key may see it; None if there is no such trial.

        A trial that exists but is not granted is a 403, not a None: the caller named it.
        """
        trial = self._source.trial(trial_id)
        if trial is not None and not self._visible(trial):
            raise ApiError(
                403,
                "forbidden",
                f"this key is not granted trial {trial_id!r}; ask an admin for a key naming it"
                + (_PERSONAL if trial.personal_data else ""),
            )
        return trial


async def get_trials(request: Request) -> TrialSource:
    """The trials the app serves, as far as the request's key may see them."""
    return VisibleTrials(_services(request).trials, request)


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return _services(request).settings


StoreDep = Annotated[Store, Depends(get_store)]
TrialsDep = Annotated[TrialSource, Depends(get_trials)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def resolve_trial(trials: TrialSource, trial_id: str, location: str) -> Trial:
    """The trial called `trial_id`; 404 listing the known ones if there is none."""
    trial = trials.trial(trial_id)
    if trial is None:
        known = [t.id for t in trials.trials()]
        listing = ", ".join(known) or "none are configured"
        raise ApiError(
            404,
            "not_found",
            f"no trial {trial_id!r}; known trials: {listing}",
            details=[
                ErrorDetail(location=location, parameter="trial", message="unknown trial", allowed=known)
            ],
        )
    return trial


# These take the request rather than TrialsDep: each dependency level costs FastAPI ~15-30 µs.
async def trial_from_path(
    request: Request, trial: Annotated[str, Path(description="trial id, as listed by /api/v1/trials")]
) -> Trial:
    """The trial named in the path; 404 listing the known ones if there is none."""
    return resolve_trial(VisibleTrials(_services(request).trials, request), trial, "path")


async def trial_from_query(
    request: Request, trial: Annotated[str, Query(description="trial id, as listed by /api/v1/trials")]
) -> Trial:
    """The trial named by the `trial` query parameter; 404 listing the known ones if there is none."""
    return resolve_trial(VisibleTrials(_services(request).trials, request), trial, "query")


PathTrial = Annotated[Trial, Depends(trial_from_path)]
QueryTrial = Annotated[Trial, Depends(trial_from_query)]


async def check_request(request: Request) -> None:
    """What every route checks first: the key (`api.auth.authorize`), then the parameters' names."""
    # One dependency rather than two: each costs FastAPI ~15-30 µs a request.
    await authorize(request)
    await reject_unknown_parameters(request)


async def reject_unknown_parameters(request: Request) -> None:
    """400 for a query parameter the route does not take."""
    # A misspelt filter (`devices=` for `device=`) would otherwise silently return everything.
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise ApiError(
            400,
            "bad_parameter",
            f"query parameter '{unknown[0]}' is not known here; {request.url.path} takes: {takes}",
            details=[
                ErrorDetail(
                    location="query", parameter=name, message="unknown parameter", allowed=sorted(known)
                )
                for name in unknown
            ],
        )


def _walk_query_names(route: APIRoute) -> frozenset[str]:
    names: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(field.alias for field in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)


# Routes live as long as their routers (module-level): each is walked once.
_query_names: Final = IdentityCache(_walk_query_names, max_entries=1024)
