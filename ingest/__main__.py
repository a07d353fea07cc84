"""`python -m ingest`: the ingest alone, against the external broker of MIDIKA_BROKER_URL.

For production (Mosquitto and the rest of the stack in their own processes); `midika up` runs the
same worker next to an embedded broker instead. Stops cleanly on SIGTERM or SIGINT: it stops
receiving, writes everything received, then closes the store.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from prometheus_client import start_http_server

from devices.registry import Registry
from ingest.metrics import metrics_registry
from ingest.worker import IngestWorker
from midika.broker_address import BrokerAddress
from midika.errors import ConfigError, MidikaError
from midika.settings import Settings
from midika.store.factory import open_store

log = logging.getLogger("ingest")
STATS_EVERY_S = 60.0


def broker_address(settings: Settings) -> BrokerAddress:
    """The broker to consume from, logged in as the ingest unless the URL names a user."""
    if settings.broker_url is None:
        raise ConfigError(
            "MIDIKA_BROKER_URL: not set; `python -m ingest` needs an external broker "
            "(`midika up` runs one embedded)"
        )
    address = BrokerAddress.parse(settings.broker_url, key="MIDIKA_BROKER_URL")
    if address.username is not None:
        return address
    password = settings.ingest_password.get_secret_value() if settings.ingest_password else None
    return address.with_credentials(settings.ingest_username, password)


def run(settings: Settings, stop: threading.Event) -> None:
    """Consume until `stop` is set."""
    broker = broker_address(settings)  # before opening anything: a config error needs no cleanup
    registry = Registry.load(
        trials_dir=settings.trials_dir,
        state_file=settings.registry_file,
        iterations=settings.credential_iterations,
    )
    store = open_store(settings)
    try:
        worker = IngestWorker(store=store, trials=registry, broker=broker, settings=settings)
        worker.start(timeout=30.0)
        log.info("ingesting from %s into the %s store", broker, settings.store)
        server = None
        if settings.metrics_port is not None:
            metrics = metrics_registry(lambda: worker.stats)
            server, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics)
            log.info("metrics at http://%s:%d/metrics", settings.metrics_host, server.server_port)
        try:
            while not stop.wait(STATS_EVERY_S):
                log.info("%s", worker.stats)
        finally:
            worker.stop()
            if server is not None:
                server.shutdown()
            log.info("stopped: %s", worker.stats)
    finally:
        store.close()


def main() -> int:
    """Entry point; returns the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        run(Settings.load(), stop)
    except MidikaError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
