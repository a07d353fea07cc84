"""Readings per second written through InfluxStore, next to raw line-protocol POSTs of the same data.

Starts its own influxd (1.x, via the test harness) and the test-only v2 write shim, then writes the
same readings, in the same batches, each run into a fresh database:

  store             InfluxStore.write_readings through the shim: encoding, the duplicate check
                    (one InfluxQL query per batch), the influxdb-client write, device_seen points
  store_duplicates  the same batches again into the store's database: all duplicates, so this is
                    the cost of the duplicate check alone
  raw_v2_shim       the store's own line protocol, encoded before timing, POSTed to /api/v2/write
                    through the same shim: the baseline for the store
  raw_v1_direct     the same bodies POSTed straight to influxd's /write: what the shim costs

Run from the repository root: `.venv/bin/python -m bench.influx_write`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from midika.models.records import Quality, Reading
from midika.store.influx import InfluxStore
from midika.store.influx_schema import reading_line, seen_lines
from tests.influx_server import InfluxServer
from tests.influx_v2_shim import V2WriteShim

T0 = datetime(2025, 7, 1, tzinfo=UTC)


def make_readings(count: int, *, devices: int, measurements: int) -> list[Reading]:
    """`count` readings from `devices` × `measurements` series, one per series per second."""
    series = [(f"dev-{d:03d}", f"m{m}") for d in range(devices) for m in range(measurements)]
    ingest = T0 + timedelta(days=1)
    return [
        Reading(
            trial="bench",
            device=series[i % len(series)][0],
            measurement=series[i % len(series)][1],
            ts=T0 + timedelta(seconds=i // len(series), microseconds=i % 1000),
            value=20.0 + (i % 97) / 10,
            ingest_ts=ingest,
            seq=i // len(series),
            quality=Quality.OK if i % 50 else Quality.OUT_OF_RANGE,
        )
        for i in range(count)
    ]


class Bench:
    """One influxd and its shim; each run writes into a database of its own and drops it after."""

    def __init__(self, server: InfluxServer, shim: V2WriteShim, http: httpx.Client) -> None:
        self.server, self.shim, self.http = server, shim, http
        self._runs = 0

    def _fresh_database(self) -> str:
        self._runs += 1
        name = f"bench{self._runs}"
        self.server.create_database(name)
        return name

    def _stored_and_drop(self, database: str) -> int:
        body = self.server.query('SELECT count("quality") FROM "readings"', database=database)
        self.server.drop_database(database)
        return int(body["results"][0]["series"][0]["values"][0][1])

    def store(self, batches: list[list[Reading]]) -> tuple[float, float, int]:
        """Seconds to write the batches through InfluxStore, seconds to write them again, points stored."""
        database = self._fresh_database()
        store = InfluxStore(url=self.shim.url, database=database, retention_policy="autogen")
        began = time.perf_counter()
        written = sum(store.write_readings(b).written for b in batches)
        first = time.perf_counter() - began
        duplicates = sum(store.write_readings(b).duplicates for b in batches)
        again = time.perf_counter() - began - first
        store.close()
        total = sum(map(len, batches))
        if written != total or duplicates != total:
            raise RuntimeError(f"store reported {written} written, then {duplicates} duplicates of {total}")
        return first, again, self._stored_and_drop(database)

    def raw(self, bodies: list[bytes], *, v2_via_shim: bool) -> tuple[float, int]:
        """Seconds to POST the line-protocol bodies (v2 through the shim, or v1 direct), points stored."""
        database = self._fresh_database()
        if v2_via_shim:
            url, params = (
                f"{self.shim.url}/api/v2/write",
                {"bucket": f"{database}/autogen", "precision": "us"},
            )
        else:
            url, params = f"{self.server.url}/write", {"db": database, "precision": "u"}
        began = time.perf_counter()
        for body in bodies:
            self.http.post(url, params=params, content=body).raise_for_status()
        return time.perf_counter() - began, self._stored_and_drop(database)


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000, help="readings per write (the ingest default)")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--measurements", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--influxd", default=shutil.which("influxd") or "/usr/bin/influxd")
    args = parser.parse_args()

    readings = make_readings(args.readings, devices=args.devices, measurements=args.measurements)
    batches = [readings[i : i + args.batch] for i in range(0, len(readings), args.batch)]
    began = time.perf_counter()
    bodies = [
        "\n".join([*map(reading_line, b), *seen_lines((r.trial, r.device, r.ingest_ts) for r in b)]).encode()
        for b in batches
    ]
    encode_s = time.perf_counter() - began

    seconds: dict[str, list[float]] = {}
    stored: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="midika-bench-") as tmp:
        server = InfluxServer(program=args.influxd, root=Path(tmp) / "influxd")
        with server, V2WriteShim(upstream_url=server.url) as shim, httpx.Client(timeout=60) as http:
            bench = Bench(server, shim, http)
            for _ in range(args.repeat):
                first, again, stored["store"] = bench.store(batches)
                seconds.setdefault("store", []).append(first)
                seconds.setdefault("store_duplicates", []).append(again)
                stored["store_duplicates"] = stored["store"]
                for variant, v2 in (("raw_v2_shim", True), ("raw_v1_direct", False)):
                    took, stored[variant] = bench.raw(bodies, v2_via_shim=v2)
                    seconds.setdefault(variant, []).append(took)

    report: dict[str, Any] = {
        "influxd": args.influxd,
        "readings": len(readings),
        "batch": args.batch,
        "series": args.devices * args.measurements,
        "repeat": args.repeat,
        "encode_line_protocol_readings_per_s": round(len(readings) / encode_s),
    }
    rates = {}
    for variant, runs in seconds.items():
        median = statistics.median(runs)
        rates[variant] = len(readings) / median
        report[variant] = {
            "readings_per_s": round(rates[variant]),
            "median_s": round(median, 3),
            "runs_s": [round(s, 3) for s in runs],
            "points_stored": stored[variant],
        }
    report["store_vs_raw_v2_shim"] = round(rates["store"] / rates["raw_v2_shim"], 3)
    report["raw_v2_shim_vs_raw_v1_direct"] = round(rates["raw_v2_shim"] / rates["raw_v1_direct"], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
