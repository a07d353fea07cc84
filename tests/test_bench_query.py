"""bench/query.py still runs end to end: a small year, a few runs, one JSON document.

Not a timed test: it asserts what the benchmark measured (the buckets it got back, the rows it
exported), never how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_bench_query_runs_and_reports_every_figure() -> None:
    readings = 40_000  # 200 per series over the year: every hourly bucket of the week is empty or small
    done = subprocess.run(
        [sys.executable, "-m", "bench.query", "--readings", str(readings), "--runs", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["readings"] == readings and report["runs"] == 3
    week = report["queries"]["device_7d_1h"]
    assert week["buckets"] == 7 * 24 * 2  # two measurements, every hour of the week, empty ones too
    month = report["queries"]["trial_30d_1d"]
    # June 1 09:00 JST to July 1 09:00 JST touches 31 days in Tokyo; 100 devices × 2 series each.
    assert month["buckets"] == 31 * 100 * 2
    for case in (week, month):
        assert case["api"]["p95_ms"] >= case["api"]["p50_ms"] > 0
        assert case["direct_duckdb"]["p50_ms"] > 0
    export = report["export_csv_30d"]
    # The CSV is wide: one row per (time, device), a column per measurement, and both are sent together.
    assert export["readings"] > 0 and export["csv_rows"] == export["readings"] // 2
    assert 0 < export["csv_rows_per_s"] < export["readings_per_s"]
    assert set(report["targets"]) == {
        "device_7d_1h_p95_under_50ms",
        "api_overhead_under_1.5x",
        "csv_over_500k_readings_per_s",
        "csv_over_500k_rows_per_s",
        "export_peak_rss_under_300mb",
    }
