"""The root exception of the dashboards package."""

from __future__ import annotations

from midika.errors import MidikaError


class DashboardError(MidikaError):
    """Dashboards could not be written or uploaded; `retryable` says whether trying again may help."""
