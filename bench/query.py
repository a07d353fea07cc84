"""Query and export speed of the API on a year of a 100-device trial in DuckDB, next to DuckDB itself.

Builds `--readings` readings (default 25 million: 100 devices × 2 measurements, evenly spaced over
2025, in time order as the ingest writes them) straight into a DuckDB store file with SQL, then:

- `device_7d_1h`: a 7-day, 1-hour aggregate of one device through the API (the ASGI app called
  in-process as a server calls it, the whole FastAPI stack with authentication), next to the same
  aggregate as one SQL query on the same DuckDB connection — the API's overhead is the ratio; the
  two take turns, run by run. The same request through httpx's ASGI client is reported beside it
  (`api_through_httpx_client`): the client's own work is in that figure;
- `trial_30d_1d`: a 30-day daily aggregate of every device, likewise;
- `health`: GET /health, next to the scan of device states it used to probe the store with;
- `export_csv`: a 30-day CSV export of the whole trial through the API, in a fresh process so its
  peak RSS is the export's, next to DuckDB's own `COPY ... TO` CSV of the same rows. The peak is
  the process's own VmHWM: `ru_maxrss` of a child started by `subprocess` (vfork, then exec) starts
  at the parent's peak on Linux, which after the build is a gigabyte the export never touched.

The store runs with `--memory-limit` (MIDIKA_DUCKDB_MEMORY_LIMIT in production), default 256MB.

Prints one JSON document, with the machine's load average before and after (the machine is shared:
the tails show it). Run: `.venv/bin/python -m bench.query [--readings N] [--runs N]`.
Targets (issue 6): device_7d_1h p95 < 50 ms; API/direct < 1.5 at p50 and p95; CSV > 500,000 rows/s;
RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
from httpx import ASGITransport, AsyncClient

from api.app import create_app
from midika.keys import KeyRing, Role
from midika.models.trial import Trial
from midika.settings import Settings
from midika.store.duckdb import DuckDBStore

TRIAL = "bench"
DEVICES = 100
MEASUREMENTS = (("water_temp", "Cel"), ("wave_height", "m"))
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
DEVICE = "dev-042"
Q1 = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 8, tzinfo=UTC))  # 7 days
Q2 = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC))  # 30 days


def bench_trial(period_s: float) -> Trial:
    """The trial the benchmark's readings belong to (Asia/Tokyo, like the shipped ones)."""
    return Trial.model_validate(
        {
            "id": TRIAL,
            "name": "Benchmark bay",
            "municipality": {"name": "御宿町", "code": "124435"},
            "domain": "disaster_prevention",
            "sites": [
                {"id": f"site-{s}", "name": f"Site {s}", "lat": 35.18, "lon": 140.35} for s in range(4)
            ],
            "profiles": [
                {
                    "id": "buoy",
                    "measurements": [
                        {"name": name, "unit": unit, "range": [0, 40], "period_s": period_s}
                        for name, unit in MEASUREMENTS
                    ],
                }
            ],
            "devices": [
                {"id": f"dev-{d:03d}", "profile": "buoy", "site": f"site-{d % 4}"} for d in range(DEVICES)
            ],
        }
    )


class _Trials:
    def __init__(self, trial: Trial) -> None:
        self._trial = trial

    def trials(self) -> list[Trial]:
        return [self._trial]

    def trial(self, trial_id: str) -> Trial | None:
        return self._trial if trial_id == self._trial.id else None


def period_of(readings: int) -> float:
    """Seconds between two readings of one series, to spread `readings` over the year."""
    per_series = readings // (DEVICES * len(MEASUREMENTS))
    return YEAR.total_seconds() / per_series


def build(path: Path, readings: int) -> float:
    """Write the year of readings into a new store at `path`; return the seconds it took."""
    DuckDBStore(path=path).close()  # the schema, exactly as the store makes it
    per_series = readings // (DEVICES * len(MEASUREMENTS))
    period_us = int(period_of(readings) * 1_000_000)
    began = time.perf_counter()
    con = duckdb.connect(str(path))
    names = ", ".join(f"('{name}')" for name, _ in MEASUREMENTS)
    # A month at a time, each sorted by time: the file ends up in time order, as the ingest writes it.
    months = 12
    step = -(-per_series // months)
    for month in range(months):
        lo, hi = month * step, min((month + 1) * step, per_series)
        con.execute(
            f"""
            INSERT INTO readings
            SELECT '{TRIAL}', 'dev-' || lpad(d::VARCHAR, 3, '0'), m,
                   TIMESTAMP '2025-01-01' + to_microseconds(i * {period_us} + d * 1000) AS ts,
                   20 + 5 * sin(i / 300.0 + d) + (hash(i, d, m) % 1000) / 1000.0,
                   NULL, ts + INTERVAL 2 SECOND + to_microseconds((hash(i, d) % 3000000)::BIGINT), i,
                   CASE WHEN hash(i, m, d) % 97 = 0 THEN 1 ELSE 0 END
            FROM range({lo}, {hi}) t(i), range({DEVICES}) dd(d), (VALUES {names}) mm(m)
            ORDER BY ts, 2, 3
            """
        )
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - began


def _direct_sql(*, start: datetime, end: datetime, width_s: int, device: str | None) -> tuple[str, list[Any]]:
    """The aggregate the API runs, as plain SQL: JST-aligned buckets, count, mean, min, max."""
    width = width_s * 1_000_000
    phase = (-9 * 3600 * 1_000_000) % width
    params: list[Any] = [TRIAL, start.replace(tzinfo=None), end.replace(tzinfo=None)]
    device_filter = ""
    if device is not None:
        device_filter = "AND device = ?"
        params.append(device)
    sql = f"""
        SELECT measurement, device,
               epoch_us(ts) - (((epoch_us(ts) - {phase}) % {width}) + {width}) % {width} AS b,
               count(value), avg(value), min(value), max(value)
        FROM readings WHERE trial = ? AND ts >= ? AND ts < ? {device_filter} AND value IS NOT NULL
        GROUP BY ALL ORDER BY ALL
    """
    return sql, params


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


async def _timed(calls: dict[str, Callable[[], Awaitable[None]]], runs: int) -> dict[str, list[float]]:
    """`runs` timings of each call, the calls taking turns.

    Taking turns, each sees the same state of the machine and of DuckDB's cache: timed one after
    the other, the first (the API) ran just after the build, the second on a warmer store.
    """
    for call in calls.values():
        await call()  # warm-up: caches, first-query planning
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            began = time.perf_counter()
            await call()
            samples[name].append(time.perf_counter() - began)
    return samples


def peak_rss_mb() -> float:
    """This process's own peak resident memory (Linux: VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status: the export's peak RSS needs Linux")


async def measure_queries(
    path: Path, readings: int, runs: int, data_dir: Path, memory_limit: str
) -> dict[str, Any]:
    """p50/p95 of the two aggregates through the API and directly on DuckDB."""
    store = DuckDBStore(path=path, memory_limit=memory_limit)
    settings = Settings.load(data_dir=data_dir)
    keys = KeyRing(path=settings.api_keys_file)
    key = keys.create(role=Role.VIEWER, trials=[TRIAL], name="bench").secret
    app = create_app(
        store=store, trials=_Trials(bench_trial(period_of(readings))), settings=settings, keys=keys
    )
    con = store._con  # the store's own connection: the direct queries share its caches
    results: dict[str, Any] = {}
    cases = {
        "device_7d_1h": (Q1, 3600, DEVICE),
        "trial_30d_1d": (Q2, 86400, None),
    }
    transport = ASGITransport(app=app)
    async with AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for name, ((start, end), width, device) in cases.items():
            results[name] = await _measure_case(
                app, key, client, con, start=start, end=end, width=width, device=device, runs=runs
            )
        results["health"] = await _measure_health(app, store, runs=runs)
    store.close()
    return results


async def _measure_health(app: Any, store: DuckDBStore, *, runs: int) -> dict[str, Any]:
    """GET /health through the app, next to the device-state scan it used to probe the store with."""

    async def health() -> None:
        status = await _asgi_get(app, "/api/v1/health", "", key="", body=lambda _: None)
        assert status == 200, status

    async def device_states() -> None:
        store.device_states(trial=TRIAL)

    samples = await _timed({"api": health, "device_states": device_states}, runs)
    return {
        "api": _percentiles(samples["api"]),
        "device_states_direct": _percentiles(samples["device_states"]),
    }


async def _measure_case(
    app: Any,
    key: str,
    client: AsyncClient,
    con: duckdb.DuckDBPyConnection,
    *,
    start: datetime,
    end: datetime,
    width: int,
    device: str | None,
    runs: int,
) -> dict[str, Any]:
    params = {
        "trial": TRIAL,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        "bucket": "1h" if width == 3600 else "1d",
    }
    if device:
        params["device"] = device
    path = "/api/v1/readings/aggregate"
    chunks: list[bytes] = []

    # Encoded once, as a server receives it: encoding the query string is the client's work.
    query = urlencode(params)

    async def api() -> None:
        # The app called as a server calls it: httpx's own work (URL parsing, cookies, the response
        # object) is a client's cost, ~0.5 ms a request here, not the API's.
        chunks.clear()
        status = await _asgi_get(app, path, query, key=key, body=chunks.append)
        assert status == 200, b"".join(chunks)

    async def api_httpx() -> None:
        # The body is parsed once, after the timed runs: the client's JSON parsing is not the API's.
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text

    sql, sql_params = _direct_sql(start=start, end=end, width_s=width, device=device)

    async def direct() -> None:
        cur = con.cursor()
        try:
            cur.execute(sql, sql_params).fetchall()
        finally:
            cur.close()

    samples = await _timed({"api": api, "api_httpx": api_httpx, "direct": direct}, runs)
    api_stats, direct_stats = _percentiles(samples["api"]), _percentiles(samples["direct"])
    httpx_stats = _percentiles(samples["api_httpx"])
    return {
        "buckets": len(json.loads(b"".join(chunks))["items"]),
        "api": api_stats,
        "direct_duckdb": direct_stats,
        "overhead_p50": round(api_stats["p50_ms"] / direct_stats["p50_ms"], 2),
        "overhead_p95": round(api_stats["p95_ms"] / direct_stats["p95_ms"], 2),
        "api_through_httpx_client": httpx_stats,
        "overhead_p50_through_httpx_client": round(httpx_stats["p50_ms"] / direct_stats["p50_ms"], 2),
    }


async def export_once(path: Path, readings: int, data_dir: Path, memory_limit: str) -> dict[str, Any]:
    """A 30-day CSV export of the whole trial through the API; run in a fresh process."""
    store = DuckDBStore(path=path, memory_limit=memory_limit)
    settings = Settings.load(data_dir=data_dir)
    keys = KeyRing(path=settings.api_keys_file)
    key = keys.create(role=Role.EVALUATOR, trials=[TRIAL], name="bench export").secret
    app = create_app(
        store=store, trials=_Trials(bench_trial(period_of(readings))), settings=settings, keys=keys
    )
    start, end = Q2
    params = {"trial": TRIAL, "start": "2025-06-01T00:00:00Z", "end": "2025-07-01T00:00:00Z", "format": "csv"}
    rss_before = peak_rss_mb()
    size = lines = 0

    def count(chunk: bytes) -> None:
        nonlocal size, lines
        size += len(chunk)
        lines += chunk.count(b"\n")

    began = time.perf_counter()
    status = await _asgi_get(app, "/api/v1/export", urlencode(params), key=key, body=count)
    assert status == 200, status
    seconds = time.perf_counter() - began
    rss_peak = peak_rss_mb()  # before DuckDB's own COPY below, which is not the export's
    cur = store._con.cursor()
    rows = cur.execute(
        "SELECT count(*) FROM readings WHERE trial = ? AND ts >= ? AND ts < ?",
        [TRIAL, start.replace(tzinfo=None), end.replace(tzinfo=None)],
    ).fetchone()
    began = time.perf_counter()
    cur.execute(
        f"COPY (SELECT * FROM readings WHERE trial = '{TRIAL}' AND ts >= TIMESTAMP '2025-06-01'"
        " AND ts < TIMESTAMP '2025-07-01' ORDER BY ts, device, measurement) TO '/dev/null' (FORMAT csv)"
    )
    copy_seconds = time.perf_counter() - began
    cur.close()
    store.close()
    readings_out = int(rows[0]) if rows else 0
    return {
        "readings": readings_out,
        "csv_rows": lines - 1,
        "bytes": size,
        "seconds": round(seconds, 3),
        "readings_per_s": round(readings_out / seconds),
        # The CSV is wide (a row per time and device, a column per measurement): fewer rows than readings.
        "csv_rows_per_s": round((lines - 1) / seconds),
        "peak_rss_mb": rss_peak,
        "rss_before_export_mb": rss_before,
        "baseline_duckdb_copy_readings_per_s": round(readings_out / copy_seconds),
    }


async def _asgi_get(app: Any, path: str, query: str, *, key: str, body: Callable[[bytes], None]) -> int:
    """GET `path` from the ASGI `app`, handing each body chunk to `body` as it is sent; the status.

    httpx's ASGITransport collects the whole body before it returns (90 MB here), which would count
    the client's memory as the export's; this keeps nothing.
    """
    done = asyncio.Event()
    status = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the response listens for a disconnect while it streams
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    return status


def main() -> None:
    """Build, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=25_000_000, help="readings in the year (default 25M)")
    # A p95 of 30 runs is their second-slowest: one stall of the shared machine moves it by a third.
    # 300 runs put 15 behind the p95, and take ~45 s.
    parser.add_argument("--runs", type=int, default=300, help="timed runs per query (default 300)")
    parser.add_argument("--dir", type=Path, default=None, help="where to build (default a temporary folder)")
    parser.add_argument("--memory-limit", default="256MB", help="DuckDB memory_limit of the store")
    parser.add_argument("--export-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_only is not None:
        path: Path = args.export_only
        print(
            json.dumps(
                asyncio.run(export_once(path, args.readings, path.parent / "export-data", args.memory_limit))
            )
        )
        return
    load_before = os.getloadavg()[0]  # other work on the machine shows in the tails: printed with them
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.duckdb"
        build_s = build(path, args.readings)
        queries = asyncio.run(
            measure_queries(path, args.readings, args.runs, Path(tmp) / "data", args.memory_limit)
        )
        exported = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.query",
                "--readings",
                str(args.readings),
                "--memory-limit",
                args.memory_limit,
                "--export-only",
                str(path),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        export = json.loads(exported.stdout)
        report = {
            "readings": args.readings,
            "devices": DEVICES,
            "build_s": round(build_s, 1),
            "db_mb": round(path.stat().st_size / 2**20),
            "runs": args.runs,
            "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "duckdb_memory_limit": args.memory_limit,
            "queries": queries,
            "export_csv_30d": export,
            "targets": {
                "device_7d_1h_p95_under_50ms": queries["device_7d_1h"]["api"]["p95_ms"] < 50,
                "api_overhead_under_1.5x": all(
                    q[f"overhead_{at}"] < 1.5
                    for name, q in queries.items()
                    if name != "health"
                    for at in ("p50", "p95")
                ),
                "csv_over_500k_readings_per_s": export["readings_per_s"] > 500_000,
                "csv_over_500k_rows_per_s": export["csv_rows_per_s"] > 500_000,
                "export_peak_rss_under_300mb": export["peak_rss_mb"] < 300,
            },
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
