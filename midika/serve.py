"""`midika serve-api`: the HTTP API alone, over the store MIDIKA_STORE names.

For production, where the broker and the ingest (`python -m ingest`) run in their own processes;
`midika up` runs the same app next to them in one process instead. Stops on SIGTERM or Ctrl-C and
then closes the store.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from devices.registry import Registry
from midika.errors import MidikaError
from midika.settings import Settings
from midika.store.factory import open_store


def serve_api(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (MIDIKA_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (MIDIKA_API_PORT).")] = None,
) -> None:
    """Serve the HTTP API until SIGTERM or Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    settings = Settings.load(**overrides)
    # Trials first: a bad trial file should stop us before anything connects.
    registry = Registry.from_settings(settings)
    store = open_store(settings)
    try:
        app = create_app(store=store, trials=registry, settings=settings)
        config = uvicorn.Config(app, host=settings.api_host, port=settings.api_port, access_log=False)
        _serve_until_signal(uvicorn.Server(config))
    finally:
        store.close()


def _serve_until_signal(server: uvicorn.Server) -> None:
    # uvicorn on the main thread re-raises SIGTERM after its shutdown, which kills the process before
    # the store closes; on another thread it leaves signals to us (as in midika.platform).
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    thread = threading.Thread(target=server.run, name="midika-api")
    thread.start()
    while thread.is_alive() and not stop.wait(0.5):
        pass
    server.should_exit = True
    thread.join()
    if not stop.is_set():
        raise MidikaError(f"the API stopped on its own (port {server.config.port} in use?); see the log")
