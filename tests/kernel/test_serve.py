"""`midika serve-api`: the API alone, as the production stack's `api` service runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devices.registry import Registry
from tests.conftest import REPO, free_port

MIDIKA = Path(sys.executable).with_name("midika")


def test_serve_api_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MIDIKA_DATA_DIR": str(tmp_path / "data"),
        "MIDIKA_TRIALS_DIR": str(REPO / "trials"),
        "MIDIKA_STORE": "duckdb",
        "MIDIKA_API_PORT": str(port),
    }
    log_path = tmp_path / "api.log"
    with log_path.open("w+") as log:
        # cwd=tmp_path: no stray .env of the developer's checkout applies.
        process = subprocess.Popen([str(MIDIKA), "serve-api"], cwd=tmp_path, env=env, stdout=log, stderr=log)
        try:
            health = _get_health(f"http://127.0.0.1:{port}/api/v1/health", process, log_path)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
    assert health.status_code == 200, health.text
    shipped = Registry.load(trials_dir=REPO / "trials", state_file=tmp_path / "unused.json").trials()
    assert health.json()["trials"] == len(shipped)


def test_serve_api_names_a_bad_setting(tmp_path: Path) -> None:
    done = _run(tmp_path, MIDIKA_STORE="sqlite")
    assert done.returncode == 2
    assert "MIDIKA_STORE" in done.stderr


def test_serve_api_fails_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _run(tmp_path, MIDIKA_API_PORT=str(taken.getsockname()[1]))
    assert done.returncode == 2
    assert "in use?" in done.stderr


def _run(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MIDIKA_DATA_DIR": str(tmp_path / "data"),
        "MIDIKA_TRIALS_DIR": str(REPO / "trials"),
        **settings,
    }
    return subprocess.run(
        [str(MIDIKA), "serve-api"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _get_health(url: str, process: subprocess.Popen[bytes], log_path: Path) -> httpx.Response:
    deadline = time.monotonic() + 30.0
    while True:
        assert process.poll() is None, f"serve-api exited early:\n{log_path.read_text()}"
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"serve-api did not start:\n{log_path.read_text()}"
            time.sleep(0.1)
