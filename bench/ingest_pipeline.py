"""Throughput of the ingest's hot path, `ingest.pipeline.process`, on one core; prints JSON.

Each case is a 100-reading message of a shipped trial's device. The baseline, measured in the same
run on the same payload, is the least any ingest must do: `json.loads` and building the `Reading`s,
with no checks at all. `vs_baseline` is the pipeline's share of that speed, which stays comparable
across machines and loads where readings/s does not. Times are process CPU time, best of `--rounds`.

    .venv/bin/python bench/ingest_pipeline.py [--rounds 5] [--messages 2000]

(Not bench/ingest.py: run as a script, that name would hide the `ingest` package.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ingest.pipeline import Accepted, process
from midika.models.records import Quality, Reading
from midika.models.trial import Trial
from midika.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RECEIVED = datetime(2026, 7, 20, 12, tzinfo=UTC)
T0 = 1_784_505_600  # 2026-07-20T00:00:00Z
BUOY = ["hs", "tp", "wave_dir", "current_speed", "current_dir", "water_temp", "tide"]


class Trials:
    """The shipped trials, looked up by id."""

    def __init__(self) -> None:
        files = sorted((REPO / "trials").glob("*.yaml"))
        self._trials = {t.id: t for t in (Trial.model_validate(yaml.safe_load(f.read_text())) for f in files)}

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None."""
        return self._trials.get(trial_id)


def cases() -> dict[str, tuple[str, bytes]]:
    """Name → (topic, payload) of 100 readings each."""
    cam = "midika/v1/onjuku-rip/onjuku-cam-01/up"
    buoy = "midika/v1/onjuku-rip/onjuku-buoy-01/up"
    counts = {"persons_in_water": 12, "persons_in_rip_zone": 1, "glare_score": 0.25, "rip_index": 2}
    return {
        "objects_25x4_epoch_ms": (
            cam,
            _json([{"ts": (T0 + 10 * i) * 1000, "seq": i, "values": counts} for i in range(25)]),
        ),
        "objects_100x1_rfc3339": (
            buoy,
            _json(
                [
                    {"ts": f"2026-07-20T{i // 60:02d}:{i % 60:02d}:00Z", "seq": i, "values": {"hs": 1.25}}
                    for i in range(100)
                ]
            ),
        ),
        "senml_100": (
            buoy,
            _json(
                [{"bn": "onjuku-buoy-01/", "bt": T0, "bu": "m"} if i == 0 else {} for i in range(100)],
                lambda i, r: {**r, "n": BUOY[i % 7], "v": 1.0 + i % 3, "t": 1800 * (i // 7), "u": _unit(i)},
            ),
        ),
    }


def _unit(i: int) -> str:
    return {
        "tp": "s",
        "wave_dir": "deg",
        "current_dir": "deg",
        "current_speed": "m/s",
        "water_temp": "Cel",
    }.get(BUOY[i % 7], "m")


def _json(
    records: list[dict[str, Any]], fill: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None
) -> bytes:
    if fill is not None:
        records = [fill(i, r) for i, r in enumerate(records)]
    return json.dumps(records).encode()


def baseline(payload: bytes) -> int:
    """json.loads and one Reading per value, no checks: the floor of any Python ingest."""
    doc = json.loads(payload)
    out = []
    for record in doc:
        ts = RECEIVED
        if "values" in record:
            for name, value in record["values"].items():
                out.append(Reading("t", "d", name, ts, value, RECEIVED, None, None, Quality.OK))
        else:
            out.append(Reading("t", "d", record["n"], ts, record["v"], RECEIVED, None, None, Quality.OK))
    return len(out)


def rate(call: Callable[[], int], *, messages: int, rounds: int) -> float:
    """Best readings per CPU second over `rounds` runs of `messages` calls."""
    best = 0.0
    for _ in range(rounds):
        started = time.process_time()
        readings = sum(call() for _ in range(messages))
        best = max(best, readings / (time.process_time() - started))
    return best


def main(argv: list[str] | None = None) -> int:
    """Run every case and print one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args(argv)
    trials, settings = Trials(), Settings.load(future_tolerance_s=300)
    results = {}
    for name, (topic, payload) in cases().items():
        outcome = process(topic, payload, received=RECEIVED, trials=trials, settings=settings)
        assert isinstance(outcome, Accepted) and len(outcome.readings) == 100, outcome

        def pipeline(topic: str = topic, payload: bytes = payload) -> int:
            result = process(topic, payload, received=RECEIVED, trials=trials, settings=settings)
            return len(result.readings)  # type: ignore[union-attr]

        ours = rate(pipeline, messages=args.messages, rounds=args.rounds)

        def floor_call(payload: bytes = payload) -> int:
            return baseline(payload)

        floor = rate(floor_call, messages=args.messages, rounds=args.rounds)
        results[name] = {
            "bytes": len(payload),
            "readings_per_s": round(ours),
            "baseline_readings_per_s": round(floor),
            "vs_baseline": round(ours / floor, 2),
        }
    json.dump(
        {"benchmark": "ingest.pipeline.process", "readings_per_message": 100, "cases": results},
        sys.stdout,
        indent=2,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
