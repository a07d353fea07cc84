"""`midika export`: download a trial's readings from the API into a file, with a progress bar.

It goes through the HTTP API (not the store) so it works beside a running `midika up`, whose
DuckDB file no second process may open, and against a remote deployment alike.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from midika.errors import ConfigError
from midika.settings import Settings
from midika.timeutil import parse_timestamp


def _key(settings: Settings, key: str | None) -> str:
    if key:
        return key
    if os.environ.get("MIDIKA_KEY"):
        return os.environ["MIDIKA_KEY"]
    try:
        return settings.admin_key_file.read_text(encoding="utf-8").strip()
    except OSError:
        raise ConfigError(
            "no API key: pass --key, set MIDIKA_KEY, or run `midika up` once to create "
            f"{settings.admin_key_file}"
        ) from None


def export(
    trial: Annotated[str, typer.Option("--trial", help="trial id", show_default=False)],
    start: Annotated[str, typer.Option("--start", help="inclusive start, RFC 3339", show_default=False)],
    end: Annotated[str, typer.Option("--end", help="exclusive end, RFC 3339", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="csv, ndjson or parquet")] = "csv",
    device: Annotated[list[str] | None, typer.Option("--device", help="device id (repeatable)")] = None,
    site: Annotated[list[str] | None, typer.Option("--site", help="site id (repeatable)")] = None,
    measurement: Annotated[
        list[str] | None, typer.Option("--measurement", help="measurement (repeatable)")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="API base URL; default from MIDIKA_API_*")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="API key; default MIDIKA_KEY or <data_dir>/admin.key")
    ] = None,
) -> None:
    """Stream a trial's readings from the API into a file (CSV, NDJSON or Parquet)."""
    settings = Settings.load()
    base = url or f"http://{settings.api_host}:{settings.api_port}"
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("trial", trial),
        ("start", start),
        ("end", end),
        ("format", fmt),
    ]
    params += [("device", d) for d in device or []] + [("site", s) for s in site or []]
    params += [("measurement", m) for m in measurement or []]
    try:
        window = (parse_timestamp(start), parse_timestamp(end))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    headers = {"Authorization": f"Bearer {_key(settings, key)}"}
    tmp = output.with_name(output.name + ".part")
    try:
        with httpx.stream(
            "GET", f"{base}/api/v1/export", params=params, headers=headers, timeout=60
        ) as response:
            if response.status_code != 200:
                response.read()
                message = response.json().get("error", {}).get("message", response.text)
                raise ConfigError(f"the API answered {response.status_code}: {message}")
            _download(response, tmp, window=window, timed=fmt != "parquet")
    except httpx.TransportError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot reach the API at {base}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)
    typer.echo(f"wrote {output} ({output.stat().st_size} bytes)")


def _download(
    response: httpx.Response, path: Path, *, window: tuple[datetime, datetime], timed: bool
) -> None:
    """Write the body to `path`; the bar follows the event time of the last line (CSV, NDJSON)."""
    start, end = window
    span = (end - start).total_seconds() or 1.0
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
    with Progress(*columns) as progress, path.open("wb") as out:
        task = progress.add_task("exporting", total=100.0 if timed else None)
        for chunk in response.iter_bytes():
            out.write(chunk)
            if timed:
                ts = _last_time(chunk)
                if ts is not None:
                    progress.update(task, completed=100.0 * (ts - start).total_seconds() / span)
            else:
                progress.update(task, advance=len(chunk))
        if timed:
            progress.update(task, completed=100.0)


def _last_time(chunk: bytes) -> datetime | None:
    """The event time of the last whole line of a CSV or NDJSON chunk, if it has one."""
    lines = chunk.rstrip(b"\n").rsplit(b"\n", 1)
    line = lines[-1].decode("utf-8", errors="replace")
    raw = line.split(",", 1)[0] if not line.startswith("{") else line.partition('"ts":"')[2].split('"', 1)[0]
    try:
        return parse_timestamp(raw)
    except ValueError:
        return None
