"""Issue fresh secrets for the simulated devices of the demo profile (deploy/compose/simulate.sh).

Writes {device id: secret} as JSON to the file named first, for `midika simulate --credentials`, and
prints the ids of the trials it covers: those named after the file, or every trial. Like
`midika up --simulate`, it replaces the devices' current secrets: never run the demo profile on a
stack that real devices of those trials log in to.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devices.registry import Registry
from midika.errors import MidikaError
from midika.settings import Settings


def main(out: Path, trial_ids: list[str]) -> None:
    """Issue the secrets, write them to `out`, print the trial ids."""
    registry = Registry.from_settings(Settings.load())
    trials = [registry.require_trial(t) for t in trial_ids] or registry.trials()
    secrets = {d.id: registry.issue_secret(t.id, d.id) for t in trials for d in t.devices}
    out.write_text(json.dumps(secrets), encoding="utf-8")
    print(" ".join(t.id for t in trials))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), sys.argv[2:])
    except MidikaError as exc:
        sys.exit(f"demo: {exc}")
