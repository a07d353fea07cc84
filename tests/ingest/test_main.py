"""`python -m ingest` against Mosquitto: consumes into the configured store, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from midika.store.base import ReadingQuery
from midika.store.duckdb import DuckDBStore
from tests.conftest import REPO, free_port
from tests.ingest.helpers import BUOY
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers


def test_python_m_ingest_consumes_until_sigterm(tmp_path: Path) -> None:
    metrics_port = free_port()
    with Mosquitto(tmp=tmp_path / "mosquitto") as broker:
        env = {
            **os.environ,
            "MIDIKA_BROKER_URL": broker.url,
            "MIDIKA_DATA_DIR": str(tmp_path / "data"),
            "MIDIKA_TRIALS_DIR": str(REPO / "trials"),
            "MIDIKA_STORE": "duckdb",
            "MIDIKA_INGEST_FLUSH_INTERVAL_S": "0.05",
            "MIDIKA_METRICS_PORT": str(metrics_port),
        }
        log = (tmp_path / "ingest.log").open("w+")
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        try:
            _wait_for(lambda: "ingesting from" in (tmp_path / "ingest.log").read_text(), process)
            device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="onjuku-buoy-01")
            device.connect(broker.host, broker.port)
            device.loop_start()
            payload = json.dumps({"ts": 1784505600, "values": {"hs": 1.25}})
            device.publish(BUOY + "/up", payload, qos=1).wait_for_publish(timeout=5)
            device.disconnect()
            device.loop_stop()
            # The ingest acks once the message is queued for writing; SIGTERM must then still write it.
            _wait_for(lambda: "Received PUBACK from midika-ingest" in broker.logs(), process)
            _wait_for(lambda: _metric(metrics_port, "midika_ingest_readings_stored_total") == 1, process)
            assert _metric(metrics_port, "midika_ingest_messages_received_total") == 1
            assert _metric(metrics_port, "midika_ingest_pending") == 0
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0, (tmp_path / "ingest.log").read_text()
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    store = DuckDBStore(path=tmp_path / "data" / "midika.duckdb")
    try:
        (reading,) = store.query_readings(ReadingQuery(trial="onjuku-rip")).items
    finally:
        store.close()
    assert (reading.device, reading.measurement, reading.value) == ("onjuku-buoy-01", "hs", 1.25)
    assert "stopped:" in (tmp_path / "ingest.log").read_text()


def _metric(port: int, name: str) -> float:
    """One unlabelled sample of the ingest's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return next(
        s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name
    )


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "python -m ingest exited early"
        assert time.monotonic() < deadline, "python -m ingest did not start"
        time.sleep(0.05)
