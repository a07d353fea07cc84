"""`midika quarantine list|reingest`: what the ingest kept instead of storing, and a second chance for it.

Both work on the store directly (MIDIKA_STORE and its settings), with the trials as the registry
has them now. DuckDB lets one process open its file: while `midika up` holds it, these commands stop
with an error naming the admin API routes that do the same through the running process.
InfluxDB has no such limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from devices.registry import Registry
from ingest.reingest import reingest
from midika.errors import ConfigError, MidikaError, StoreUnavailable
from midika.models.records import QuarantineReason
from midika.settings import Settings
from midika.store.base import QuarantineQuery, Store
from midika.store.factory import open_store

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Quarantined messages.")

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

IN_USE = (
    "the DuckDB file {path} is open in another process (`midika up`?); DuckDB allows one. "
    "Use the admin API of that process instead: GET /api/v1/admin/quarantine and "
    "POST /api/v1/admin/quarantine/reingest?id=N, with 'Authorization: Bearer <admin key>' "
    "(`midika up` keeps one in {key})"
)


def parse_since(raw: str, *, now: datetime) -> datetime:
    """`7d`, `12h`, `30m`, `90s` before `now`, or an RFC 3339 time with a zone."""
    match = _DURATION.match(raw.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(
            f"--since {raw!r}: give a duration such as 12h or 7d, or a time like 2026-07-01T00:00Z"
        )
    return when.astimezone(UTC)


@contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    try:
        store = open_store(settings)
    except StoreUnavailable as exc:
        if settings.store == "duckdb" and "lock" in str(exc).lower():
            raise MidikaError(IN_USE.format(path=settings.duckdb_file, key=settings.admin_key_file)) from exc
        raise
    try:
        yield store
    finally:
        store.close()


@app.command("list")
def list_command(
    trial: Annotated[str | None, typer.Option("--trial", help="trial id the topic names")] = None,
    reason: Annotated[
        list[QuarantineReason] | None, typer.Option("--reason", help="why it was rejected (repeatable)")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="12h, 7d or an RFC 3339 time")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="at most this many")] = 50,
) -> None:
    """Show quarantined messages, newest first: id, time, reason, trial, device, size, detail."""
    settings = Settings.load()
    start = None if since is None else parse_since(since, now=datetime.now(UTC))
    with _store(settings) as store:
        records = store.query_quarantine(
            QuarantineQuery(trial=trial, reasons=reason, start=start, limit=limit)
        )
    rows = [
        [
            str(q.id),
            q.received_ts.strftime("%Y-%m-%d %H:%M:%S"),
            q.reason.value,
            q.trial or "-",
            q.device or "-",
            f"{q.payload_size}" + ("*" if q.payload_size > len(q.payload) else ""),
            q.detail,
        ]
        for q in records
    ]
    header = ["id", "received (UTC)", "reason", "trial", "device", "bytes", "detail"]
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if any(q.payload_size > len(q.payload) for q in records):
        typer.echo("* payload capped at MIDIKA_QUARANTINE_PAYLOAD_CAP: it cannot be re-ingested", err=True)


@app.command("reingest")
def reingest_command(
    ids: Annotated[
        list[int], typer.Option("--id", min=1, help="quarantine id, as `list` shows (repeatable)")
    ],
) -> None:
    """Run quarantined messages through the ingest again; valid ones are stored and leave quarantine."""
    settings = Settings.load()
    registry = Registry.load(
        trials_dir=settings.trials_dir,
        state_file=settings.registry_file,
        iterations=settings.credential_iterations,
    )
    with _store(settings) as store:
        results = reingest(ids, store=store, trials=registry, settings=settings)
    for r in results:
        extra = (
            f" ({r.readings} readings, {r.duplicates} already stored)" if r.readings or r.duplicates else ""
        )
        replaced = f", now id {r.new_id}" if r.new_id is not None else ""
        reason = f" [{r.reason}]" if r.reason is not None and r.outcome != "stored" else ""
        typer.echo(f"{r.id}: {r.outcome}{reason}{extra}{replaced}: {r.detail}")
