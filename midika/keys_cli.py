"""`midika keys ...`: issue, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from midika.keys import WILDCARD, KeyRing, Role
from midika.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="API keys for the HTTP API.")


def _ring() -> KeyRing:
    # Settings are built per command, never at import, so tests and callers can set the environment.
    return KeyRing(path=Settings.load().api_keys_file)


@app.command("create")
def create_command(
    role: Annotated[Role, typer.Option("--role", help="admin, evaluator or viewer", show_default=False)],
    trial: Annotated[
        list[str] | None,
        typer.Option(
            "--trial",
            help=f"trial the key may read (repeatable); '{WILDCARD}' for every trial without personal data",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="who or what the key is for")] = "",
) -> None:
    """Issue a key and print it once; only its hash is kept."""
    issued = _ring().create(role=role, trials=trial or [], name=name)
    record = issued.record
    typer.echo(issued.secret)
    grants = ", ".join(record.trials) or "every trial"
    typer.echo(
        f"key {record.id} ({record.role}; trials: {grants}) — shown once, store it now; "
        "send it as 'Authorization: Bearer <key>'",
        err=True,
    )


@app.command("list")
def list_command() -> None:
    """Show every key: id, role, trials, name, when created and revoked (never the key itself)."""
    rows = [
        [
            k.id,
            k.role.value,
            ",".join(k.trials) or ("*" if k.role is Role.ADMIN else "-"),
            k.name,
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "active",
        ]
        for k in _ring().list()
    ]
    header = ["id", "role", "trials", "name", "created", "revoked"]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(help="key id, as `midika keys list` shows")],
) -> None:
    """Revoke a key; a running API refuses it from the next request on."""
    record = _ring().revoke(key_id)
    typer.echo(f"revoked key {record.id} ({record.role}, {record.name or 'no name'})")
