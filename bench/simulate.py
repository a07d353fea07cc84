"""Simulator load against a real Mosquitto: sustained device connections, and backfill speed.

In one run, against one Mosquitto (anonymous, persistence off):

- `sustained`: N simulated devices (default 1,000), each its own MQTT connection publishing a
  reading every 10 s in real time through `SimulationRunner` exactly as `midika simulate` and
  `midika up --simulate` run it (its own `LinkPool`, devices connected 32 at a time); CPU of this
  process (user + system, from `resource.getrusage`) over a measuring window after all devices
  connected, as cores.
- `sustained_baseline`: the same N connections, on the same transport (a `LinkPool`), at the same
  rate, publishing one pre-encoded payload each: the simulator's own cost is the difference.

A `LinkPool` is one epoll thread for all paho clients: paho's own loop uses select(), which cannot
watch descriptors above 1024, so a thread per client stopped at ~340 devices.
- `backfill`: one trial (default onjuku-rip) as fast as the broker acknowledges, messages/s, next to
  `backfill_generate_only` (messages built, nothing sent) and `backfill_baseline` (one paho client
  publishing pre-encoded messages of the same sizes at QoS 1).

Mosquitto's per-process open-file limit bounds its connections (one fd each); the harness raises
our soft limit to the hard one, and Mosquitto inherits it. Prints one JSON document.
Run: `.venv/bin/python -m bench.simulate [--devices N] [--window S] [--backfill-hours H]`.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.trial_files import read_trial_files
from midika.broker_address import BrokerAddress
from midika.models.trial import Trial
from simulators.link import LinkSpec
from simulators.messages import SimMessage, messages
from simulators.pool import LinkPool
from simulators.runner import RunSummary, SimulationRunner

REPO = Path(__file__).resolve().parent.parent
PERIOD_S = 10.0


def fleet(devices: int) -> Trial:
    """A trial of `devices` identical sensors reading every 10 s (status every 10 min)."""
    return Trial.model_validate(
        {
            "id": "bench-fleet",
            "name": "Simulator load benchmark",
            "municipality": {"name": "かほく市", "code": "172090"},
            "domain": "benchmark",
            "sites": [{"id": "field", "name": "Field", "lat": 36.77, "lon": 136.74}],
            "profiles": [
                {
                    "id": "bench-sensor",
                    "measurements": [
                        {"name": "air_temperature", "unit": "Cel", "range": [-10, 50], "period_s": PERIOD_S}
                    ],
                }
            ],
            "devices": [
                {"id": f"bench-{i:05d}", "profile": "bench-sensor", "site": "field"} for i in range(devices)
            ],
        }
    )


def cpu_seconds() -> float:
    """User + system CPU of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(window_s: float, published: Callable[[], int]) -> dict[str, Any]:
    """CPU cores and messages/s over `window_s` of wall time."""
    cpu0, wall0, sent0 = cpu_seconds(), time.monotonic(), published()
    time.sleep(window_s)
    cpu, wall, sent = cpu_seconds() - cpu0, time.monotonic() - wall0, published() - sent0
    return {
        "window_s": round(wall, 1),
        "cpu_cores": round(cpu / wall, 3),
        "messages_per_s": round(sent / wall, 1),
        "cpu_ms_per_message": round(1000 * cpu / sent, 3) if sent else None,
    }


def sustained(port: int, devices: int, window_s: float) -> dict[str, Any]:
    """N simulated devices in real time: connect time, then CPU and rate over the window."""
    trial = fleet(devices)
    latest: list[RunSummary] = []
    runner = SimulationRunner(
        trial=trial,
        broker=BrokerAddress(host="127.0.0.1", port=port),
        secrets={d.id: "" for d in trial.devices},
        seed=1,
        start=datetime.now(UTC),
        speed=1.0,
        progress=latest.append,
    )
    stop = threading.Event()
    result: list[RunSummary] = []
    began = time.monotonic()
    thread = threading.Thread(target=lambda: result.append(runner.run(duration=None, stop=stop)), daemon=True)
    thread.start()
    # The runner reports progress first when every device has connected.
    while not latest and thread.is_alive():
        time.sleep(0.1)
    connected_s = time.monotonic() - began
    time.sleep(PERIOD_S)  # one full period, so every device is in its steady rhythm
    figures = measure(window_s, lambda: latest[-1].published if latest else 0)
    stop.set()
    thread.join(120)
    if not result:
        raise RuntimeError("the simulated devices did not run; see the error above")
    summary = result[0]
    return {
        "devices": devices,
        "period_s": PERIOD_S,
        "connect_s": round(connected_s, 1),
        **figures,
        "expected_messages_per_s": round(devices / PERIOD_S, 1),
        "unacknowledged_at_end": summary.unacknowledged,
        "under_half_a_core": figures["cpu_cores"] < 0.5,
    }


def sustained_baseline(port: int, devices: int, window_s: float) -> dict[str, Any]:
    """The same connections, transport and rate, publishing one pre-encoded payload: no simulator."""
    pool = LinkPool()
    payload = b'{"ts":"2026-08-01T00:00:00Z","seq":1,"values":{"air_temperature":21.5}}'
    links = []
    for i in range(devices):
        device = f"base-{i:05d}"
        spec = LinkSpec(
            broker=BrokerAddress(host="127.0.0.1", port=port),
            client_id=device,
            username=device,
            password=None,
            will_topic=f"midika/v1/bench/{device}/status",
            will_payload=b'{"online":false}',
        )
        link = pool.connect(spec)
        message = SimMessage(
            device, "up", f"midika/v1/bench/{device}/up", payload, 1, False, datetime.now(UTC)
        )
        links.append((link, message))
    sent = 0
    stop = threading.Event()

    def pace() -> None:
        nonlocal sent
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = t0 + k * PERIOD_S / devices
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            link, message = links[k % devices]
            link.publish(message)
            sent += 1
            k += 1

    thread = threading.Thread(target=pace, daemon=True)
    thread.start()
    time.sleep(PERIOD_S)
    figures = measure(window_s, lambda: sent)
    stop.set()
    thread.join(10)
    missing = sum(link.close(timeout=10.0) for link, _ in links)
    pool.close()
    return {"devices": devices, **figures, "unacknowledged_at_end": missing}


def backfill(port: int, trial: Trial, hours: float) -> dict[str, Any]:
    """A trial's `hours` as fast as Mosquitto acknowledges."""
    start = datetime(2026, 8, 1, tzinfo=UTC)
    runner = SimulationRunner(
        trial=trial,
        broker=BrokerAddress(host="127.0.0.1", port=port),
        secrets={d.id: "" for d in trial.devices},
        seed=1,
        start=start,
        speed=math.inf,
    )
    cpu0 = cpu_seconds()
    summary = runner.run(duration=timedelta(hours=hours))
    cpu = cpu_seconds() - cpu0
    return {
        "trial": trial.id,
        "simulated_hours": hours,
        "messages": summary.published,
        "readings": summary.readings,
        "seconds": round(summary.wall_seconds, 2),
        "messages_per_s": round(summary.published / summary.wall_seconds),
        "readings_per_s": round(summary.readings / summary.wall_seconds),
        "cpu_cores": round(cpu / summary.wall_seconds, 2),
        "unacknowledged": summary.unacknowledged,
    }


def generate_only(trial: Trial, hours: float) -> tuple[dict[str, Any], list[SimMessage]]:
    """Building the same messages without sending them."""
    start = datetime(2026, 8, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    built = list(messages(trial, 1, start, start + timedelta(hours=hours)))
    seconds = time.perf_counter() - t0
    return {
        "messages": len(built),
        "seconds": round(seconds, 2),
        "messages_per_s": round(len(built) / seconds),
    }, built


def backfill_baseline(port: int, built: list[SimMessage]) -> dict[str, Any]:
    """One paho client publishing the pre-built messages at QoS 1, as fast as acknowledged."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="base-backfill", protocol=MQTTProtocolVersion.MQTTv311
    )
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0 = time.monotonic()
    infos = [client.publish(m.topic, m.payload, qos=1) for m in built]
    for info in infos:
        info.wait_for_publish(120)
    seconds = time.monotonic() - t0
    client.disconnect()
    client.loop_stop()
    return {
        "messages": len(built),
        "seconds": round(seconds, 2),
        "messages_per_s": round(len(built) / seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000, help="concurrent simulated devices")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of steady state to measure")
    parser.add_argument("--backfill-trial", default="onjuku-rip")
    parser.add_argument("--backfill-hours", type=float, default=24.0)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 4 * args.devices + 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # Mosquitto inherits it: one fd per client
    trials = {source.trial.id: source.trial for source in read_trial_files(REPO / "trials")}
    results: dict[str, Any] = {"open_file_limit": wanted}
    from tests.servers import Mosquitto

    with tempfile.TemporaryDirectory(prefix="midika-bench-sim-") as tmp, Mosquitto(tmp=Path(tmp)) as server:
        results["sustained"] = sustained(server.port, args.devices, args.window)
        results["sustained_baseline"] = sustained_baseline(server.port, args.devices, args.window)
        trial = trials[args.backfill_trial]
        results["backfill"] = backfill(server.port, trial, args.backfill_hours)
        results["backfill_generate_only"], built = generate_only(trial, args.backfill_hours)
        results["backfill_baseline"] = backfill_baseline(server.port, built)
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
