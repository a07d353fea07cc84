"""`midika dashboards ...`: write Grafana's provisioning files, or upload the dashboards to a Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards import provisioning
from dashboards.push import connect, push
from devices.registry import Registry
from midika.models.trial import Trial
from midika.settings import Settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Grafana dashboards built from the trial files."
)


def _trials() -> list[Trial]:
    # Settings are built per command, never at import, so tests and callers can set the environment.
    return Registry.from_settings(Settings.load()).trials()


@app.command("build")
def build_command(
    out: Annotated[
        Path, typer.Option(help="folder for dashboards/ and provisioning/ (mounted into Grafana)")
    ] = Path("deploy/grafana"),
) -> None:
    """Write every dashboard's JSON and Grafana's data source and dashboard provisioning files."""
    files = provisioning.render(_trials())
    for path in provisioning.write(files, out):
        typer.echo(str(path))


UrlOption = Annotated[
    str, typer.Option(help="Grafana's base URL, e.g. http://localhost:3000", show_default=False)
]
TokenOption = Annotated[
    str,
    typer.Option(envvar="GRAFANA_TOKEN", help="a Grafana service-account token (Editor)", show_default=False),
]
FolderOption = Annotated[str, typer.Option(help="uid and title of the folder to save into")]


@app.command("push")
def push_command(url: UrlOption, token: TokenOption, folder: FolderOption = provisioning.FOLDER) -> None:
    """Upload every dashboard to a running Grafana, replacing the ones with the same uid."""
    for uid in push(provisioning.dashboards(_trials()), connect(url, token), folder=folder):
        typer.echo(f"pushed {uid}")
