"""`midika up`: the whole platform in one process, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from midika.platform import Platform, SimulationPlan
from midika.settings import Settings


def up(
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Run simulated devices of every trial: each trial's live demo scenario "
            "(simulators/scenarios/<trial>-demo.yaml) where it has one.",
        ),
    ] = False,
    broker_url: Annotated[
        str | None,
        typer.Option("--broker-url", help="Use this broker (e.g. Mosquitto) instead of the embedded one."),
    ] = None,
    api_port: Annotated[int | None, typer.Option("--api-port", help="HTTP API port.")] = None,
    broker_port: Annotated[int | None, typer.Option("--broker-port", help="Embedded broker port.")] = None,
    trial: Annotated[
        list[str] | None, typer.Option("--trial", help="Simulate only this trial (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Simulator seed: the same seed sends the same data.")] = 1,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 1.0,
) -> None:
    """Run broker, ingest, API and optionally simulators until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {}
    if broker_url is not None:
        overrides["broker_url"] = broker_url
    if api_port is not None:
        overrides["api_port"] = api_port
    if broker_port is not None:
        overrides["broker_port"] = broker_port
    settings = Settings.load(**overrides)
    plan = (
        SimulationPlan(trials=tuple(trial) if trial else None, seed=seed, speed=speed, demos=True)
        if simulate
        else None
    )

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    platform = Platform.start(settings, simulation=plan)
    broker = "embedded" if platform.broker is not None else "external"
    address = platform.broker_address
    store = f"{settings.store} ({settings.duckdb_file})" if settings.store == "duckdb" else settings.store
    typer.echo(
        "\n".join(
            [
                "midika is up.",
                f"  API       {platform.api_url}/api/v1/trials   (docs: {platform.api_url}/docs)",
                f"  API key   admin, in {settings.admin_key_file}"
                + (" (created now)" if platform.admin_key_created else ""),
                f"  broker    mqtt://{address.host}:{address.port} ({broker})",
                f"  store     {store}",
                f"  trials    {', '.join(t.id for t in platform.registry.trials())}",
                f"  simulate  {'yes, seed ' + str(seed) + f', speed {speed}x' if plan else 'no'}",
                "Press Ctrl-C to stop.",
            ]
        )
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        typer.echo("stopping: draining the ingest ...")
        platform.stop()
        typer.echo("stopped.")
