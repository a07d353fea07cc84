"""`midika devices ...`: list trials and devices, issue and revoke credentials, check trial files, export.

`export-mosquitto` writes the registry out as mosquitto's password and ACL files.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from devices.contract import Kind, Topic
from devices.mosquitto import ACL_FILE, PASSWORD_FILE, export, ingest_login
from devices.registry import Registry
from midika.errors import ConfigError
from midika.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Trials, devices and their credentials.")

TrialArg = Annotated[str, typer.Argument(help="trial id, e.g. onjuku-rip", show_default=False)]
DeviceArg = Annotated[str, typer.Argument(help="device id, e.g. onjuku-cam-01", show_default=False)]

_TOPIC_USE = {
    Kind.UP: "publish readings",
    Kind.EVT: "publish events",
    Kind.STATUS: "publish health, retained; set it as the last will too",
    Kind.DOWN: "subscribe for configuration",
}


def _registry() -> Registry:
    # Settings are built per command, never at import, so tests and callers can set the environment.
    return Registry.from_settings(Settings.load())


@app.command("trials")
def trials_command() -> None:
    """Show every trial: municipality, domain, how many sites and devices."""
    rows = [
        [
            t.id,
            t.name,
            f"{t.municipality.name} ({t.municipality.code})",
            t.domain,
            str(len(t.sites)),
            str(len(t.devices)),
            "yes" if t.personal_data else "no",
        ]
        for t in _registry().trials()
    ]
    _echo_table(["trial", "name", "municipality", "domain", "sites", "devices", "personal data"], rows)


@app.command("list")
def list_command(
    trial: Annotated[str | None, typer.Argument(help="only this trial's devices", show_default=False)] = None,
) -> None:
    """Show devices with their profile, site and when their credentials were issued."""
    registry = _registry()
    rows = []
    for t in registry.trials() if trial is None else [registry.require_trial(trial)]:
        for device in t.devices:
            credential = registry.credential(device.id)
            issued = "-" if credential is None else credential.issued_at.isoformat(timespec="seconds")
            rows.append([t.id, device.id, device.profile, device.site, issued])
    _echo_table(["trial", "device", "profile", "site", "credentials issued"], rows)


@app.command("credentials")
def credentials_command(
    trial: TrialArg,
    device: DeviceArg,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace existing credentials; the old secret stops working")
    ] = False,
) -> None:
    """Issue a device's MQTT secret and print it once, with the username and topics to use."""
    registry = _registry()
    registry.require_device(trial, device)
    existing = registry.credential(device)
    if existing is not None and not replace:
        issued = existing.issued_at.isoformat(timespec="seconds")
        typer.secho(
            f"{device} already has credentials (issued {issued}); pass --replace to issue new ones "
            "(the device's current secret then stops working)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    secret = registry.issue_secret(trial, device)
    typer.echo(f"MQTT credentials for device {device} of trial {trial}")
    typer.echo(f"  username  {device}")
    typer.echo(f"  password  {secret}")
    topics = {str(Topic(trial=trial, device=device, kind=kind)): use for kind, use in _TOPIC_USE.items()}
    width = max(map(len, topics))
    for topic, use in topics.items():
        typer.echo(f"  topic     {topic:<{width}}  {use}")
    typer.secho(
        "This password is shown only once: midika keeps only its hash. Store it in the device now; "
        "if it is lost, issue new credentials with --replace.",
        err=True,
        fg=typer.colors.YELLOW,
    )


@app.command("revoke")
def revoke_command(trial: TrialArg, device: DeviceArg) -> None:
    """Remove a device's credentials so it can no longer log in."""
    if _registry().revoke(trial, device):
        typer.echo(f"revoked the credentials of {device} (trial {trial}); it can no longer log in")
    else:
        typer.echo(f"{device} (trial {trial}) had no credentials; nothing to revoke")


@app.command("validate")
def validate_command() -> None:
    """Load every trial file and report every problem; exits 1 if there is any."""
    settings = Settings.load()
    try:
        registry = Registry.from_settings(settings)
    except ConfigError as exc:
        problems = str(exc).splitlines()
        for problem in problems:
            typer.secho(problem, err=True, fg=typer.colors.RED)
        typer.secho(f"{len(problems)} problem(s) in {settings.trials_dir}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
    devices = sum(len(t.devices) for t in registry.trials())
    typer.echo(f"ok: {len(registry.trials())} trials, {devices} devices in {settings.trials_dir}")


@app.command("export-mosquitto")
def export_mosquitto_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="folder for `passwd` and `acl`, e.g. what mosquitto mounts as /mosquitto/config"
        ),
    ],
    ingest_password_file: Annotated[
        Path | None,
        typer.Option(
            "--ingest-password-file",
            help="file holding the ingest account's password; default: MIDIKA_INGEST_PASSWORD",
            show_default=False,
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            metavar="UID:GID",
            help="give both files to this user, e.g. 1883:1883 (mosquitto in the eclipse-mosquitto image)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write mosquitto's password file and ACL: every device with credentials, and the ingest account."""
    settings = Settings.load()
    login = ingest_login(settings, password_file=ingest_password_file)
    files = export(
        Registry.from_settings(settings),
        out=out,
        ingest=login,
        iterations=settings.credential_iterations,
        owner=_owner(owner),
    )
    typer.echo(
        f"wrote {out / PASSWORD_FILE} and {out / ACL_FILE}: "
        f"{login.username} and {len(files.devices)} device(s) with credentials"
    )
    if files.without_credentials:
        typer.secho(
            f"{len(files.without_credentials)} devices have no credentials and cannot log in: "
            + ", ".join(files.without_credentials),
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo("send a running mosquitto SIGHUP to load them; it disconnects logins no longer valid")


def _owner(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    uid, sep, gid = text.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise typer.BadParameter(f"{text!r} is not UID:GID, e.g. 1883:1883", param_hint="--owner")
    return int(uid), int(gid)


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(_width(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        cells = [cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())


def _width(text: str) -> int:
    # Municipality names are Japanese: wide characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
