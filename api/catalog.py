"""What requests look up in a trial (its devices, sites, measurements), worked out once per trial.

Every aggregate checks its device and measurement names against the trial and lists the series it
covers; walking the trial's devices and profiles for that on each request cost ~0.1 ms, a fiftieth
of a one-device aggregate. Trials are frozen models, and a registry that changes a trial holds a
new object, so the lookups are kept per trial object: a changed trial gets its own on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from midika.identity_cache import IdentityCache
from midika.models.trial import Trial, ValueType

MAX_TRIALS = 256  # catalogs kept; the oldest goes first (a registry reload leaves its old ones)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialCatalog:
    """The names of one trial that requests are checked against."""

    device_ids: tuple[str, ...]  # in the trial's order
    site_ids: tuple[str, ...]
    measurement_names: tuple[str, ...]  # of every profile, sorted
    event_types: tuple[str, ...]  # of every profile, sorted
    site_of: Mapping[str, str]  # device -> its site
    numeric_of: Mapping[str, tuple[str, ...]]  # device -> its profile's measurements that are not text


def _build(trial: Trial) -> TrialCatalog:
    profiles = {p.id: p for p in trial.profiles}
    return TrialCatalog(
        device_ids=tuple(d.id for d in trial.devices),
        site_ids=tuple(s.id for s in trial.sites),
        measurement_names=tuple(sorted({m.name for p in trial.profiles for m in p.measurements})),
        event_types=tuple(sorted({e.type for p in trial.profiles for e in p.events})),
        site_of={d.id: d.site for d in trial.devices},
        numeric_of={
            d.id: tuple(m.name for m in profiles[d.profile].measurements if m.type is not ValueType.STR)
            for d in trial.devices
        },
    )


catalog: Final = IdentityCache(_build, max_entries=MAX_TRIALS)  # the catalog of a trial, built on first use
