"""Upload the dashboards to a running Grafana through its HTTP API (for a Grafana not provisioned from files).

`push` speaks to Grafana through the narrow `Grafana` protocol; `connect` makes the production one on
grafana-client. Each dashboard is saved with `overwrite`, keyed by its uid, into one folder, so
pushing again replaces what the previous push left. Grafana refuses to overwrite a dashboard it
provisioned from files: push to a Grafana that is not provisioned from deploy/grafana.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from dashboards.errors import DashboardError
from dashboards.provisioning import FOLDER

MESSAGE = "midika dashboards push"


class Grafana(Protocol):
    """What pushing needs from Grafana."""

    def ensure_folder(self, *, uid: str, title: str) -> None:
        """Create the folder unless it exists."""

    def save_dashboard(self, payload: Mapping[str, Any]) -> None:
        """POST /api/dashboards/db with `payload`."""


GrafanaFactory = Callable[[str, str], Grafana]


def dashboard_payload(document: Mapping[str, Any], *, folder_uid: str = FOLDER) -> dict[str, Any]:
    """The body of POST /api/dashboards/db that creates or replaces `document` (matched by uid)."""
    if not document.get("uid"):
        raise DashboardError("a dashboard without a uid cannot be pushed: it would be created anew each time")
    # id null: Grafana finds the dashboard by uid; `overwrite` replaces it whatever its version.
    return {
        "dashboard": {**document, "id": None},
        "folderUid": folder_uid,
        "overwrite": True,
        "message": MESSAGE,
    }


def push(documents: Sequence[Mapping[str, Any]], grafana: Grafana, *, folder: str = FOLDER) -> list[str]:
    """Save every dashboard into `folder`; the uids pushed, in order."""
    payloads = [dashboard_payload(d, folder_uid=folder) for d in documents]  # all valid before any I/O
    grafana.ensure_folder(uid=folder, title=folder)
    for payload in payloads:
        grafana.save_dashboard(payload)
    return [p["dashboard"]["uid"] for p in payloads]


class GrafanaApiClient:
    """`Grafana` on grafana-client, authenticated with a service-account token."""

    def __init__(self, *, url: str, token: str, timeout_s: float = 10) -> None:
        try:
            from grafana_client.api import GrafanaApi
        except ImportError as exc:
            missing = "dashboards push needs grafana-client: pip install 'midika[grafana]'"
            raise DashboardError(missing) from exc

        self._api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)

    def ensure_folder(self, *, uid: str, title: str) -> None:
        """Create the folder unless it exists."""
        from grafana_client.client import GrafanaClientError

        with _translated(f"folder {uid}"):
            try:
                self._api.folder.get_folder(uid)
            except GrafanaClientError as exc:
                if exc.status_code != 404:
                    raise
                self._api.folder.create_folder(title, uid=uid)

    def save_dashboard(self, payload: Mapping[str, Any]) -> None:
        """POST /api/dashboards/db with `payload`."""
        with _translated(f"dashboard {payload['dashboard'].get('uid')}"):
            self._api.dashboard.update_dashboard(dict(payload))


def connect(url: str, token: str) -> Grafana:
    """The production `Grafana`: grafana-client against `url`."""
    return GrafanaApiClient(url=url, token=token)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """grafana-client's and the transport's errors as DashboardError, retryable where a retry can help."""
    from grafana_client.client import GrafanaClientError, GrafanaException
    from niquests.exceptions import RequestException

    try:
        yield
    except GrafanaClientError as exc:  # 4xx: a bad token or a dashboard Grafana refuses
        raise DashboardError(f"{what}: Grafana answered {exc.status_code}: {exc.message}") from exc
    except GrafanaException as exc:  # 5xx and timeouts
        raise DashboardError(f"{what}: {exc.message}", retryable=True) from exc
    except RequestException as exc:  # connection refused, DNS, TLS
        raise DashboardError(f"{what}: {exc}", retryable=True) from exc
