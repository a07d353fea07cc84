"""GET /health: is the service up and does its store answer."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from api.deps import StoreDep, TrialsDep
from api.errors import STORE_UNAVAILABLE, ApiError, error_responses
from api.schemas import Health
from midika import __version__
from midika.errors import StoreError

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"], responses=error_responses(503, auth=False))

# A trial id no registry can contain (ids start with [a-z0-9]), for probing a store with no trials.
_PROBE_TRIAL = "_health"


@router.get("/health", summary="Service and store health")
def health(store: StoreDep, trials: TrialsDep) -> Health:
    """Report ok when the store answers a query; 503 when it does not."""
    known = trials.trials()
    try:
        # The cheapest query every store has: the device-state table is one row per device.
        store.device_states(trial=known[0].id if known else _PROBE_TRIAL)
    except StoreError as exc:
        log.error("health check: the store does not answer: %s", exc, exc_info=exc)
        raise ApiError(503, "store_unavailable", STORE_UNAVAILABLE) from exc
    return Health(version=__version__, trials=len(known))
