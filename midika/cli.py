"""The `midika` command: one Typer app that mounts each package's own commands."""

from __future__ import annotations

import sys

import typer

from midika.errors import MidikaError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="midika: IoT field-trial data platform.")


def _mount() -> None:
    # Each package owns its commands; importing here keeps `midika --help` the one place they meet.
    from dashboards.cli import app as dashboards_app
    from devices.cli import app as devices_app
    from midika.export_cli import export
    from midika.keys_cli import app as keys_app
    from midika.quarantine_cli import app as quarantine_app
    from midika.serve import serve_api
    from midika.up import up
    from simulators.cli import simulate

    app.add_typer(devices_app, name="devices", help="Trials, devices and their credentials.")
    app.add_typer(dashboards_app, name="dashboards", help="Grafana dashboards built from the trial files.")
    app.add_typer(keys_app, name="keys", help="API keys: create, list, revoke.")
    app.add_typer(quarantine_app, name="quarantine", help="Quarantined messages: list, re-ingest.")
    app.command("export", help="Download a trial's readings from the API (CSV, NDJSON, Parquet).")(export)
    app.command("up", help="Run broker, ingest, API (and simulators) in one process.")(up)
    app.command("serve-api", help="Run only the HTTP API (production: beside `python -m ingest`).")(serve_api)
    app.command("simulate", help="Run simulated devices against a broker.")(simulate)


def main() -> None:
    """Entry point of the console script; turns midika's own errors into a one-line message."""
    _mount()
    try:
        app(standalone_mode=False)
    except MidikaError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
