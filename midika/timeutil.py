"""Time helpers: one place that decides how device timestamps are read and how "now" is obtained."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Epoch numbers above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_MS_THRESHOLD = 1e11


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch of an aware `ts`, exactly (no float rounding)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC datetime `us` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=us)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def parse_timestamp(raw: object) -> datetime:
    """Read a device timestamp: RFC 3339 text, or epoch seconds or milliseconds as a number.

    Raises ValueError with a message fit for a quarantine record.
    """
    if isinstance(raw, bool):
        raise ValueError("timestamp must be RFC 3339 text or epoch seconds/milliseconds, not a boolean")
    if isinstance(raw, int | float):
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"epoch timestamp {raw!r} is not a finite non-negative number")
        seconds = value / 1000.0 if value >= _MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch timestamp {raw!r} is out of range") from exc
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"timestamp {raw!r} is not RFC 3339") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {raw!r} has no UTC offset; RFC 3339 requires one (e.g. 'Z')")
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:  # 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
            raise ValueError(f"timestamp {raw!r} is out of range") from exc
    raise ValueError(f"timestamp must be RFC 3339 text or an epoch number, got {type(raw).__name__}")


def to_rfc3339(ts: datetime) -> str:
    """Format a UTC datetime as RFC 3339 with a Z suffix and microseconds when present."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
