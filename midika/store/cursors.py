"""Keyset cursors, the same on every store: the kind of listing and the last key it returned.

A cursor is URL-safe base64 of `[kind, µs since the epoch, first, second]` (for readings: device
and measurement; for events: device and type). The kind stops a cursor of one listing from being
resumed in another, where its key would mean something else; a cursor is refused with BadQuery,
which the API reports as a bad `cursor` parameter.
"""

from __future__ import annotations

import base64
import binascii
import json

from midika.errors import BadQuery
from midika.timeutil import from_us


def encode(kind: str, ts_us: int, first: str, second: str) -> str:
    """The opaque cursor of a `kind` listing after the item with key (ts_us, first, second)."""
    raw = json.dumps([kind, ts_us, first, second], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(kind: str, cursor: str) -> tuple[int, str, str]:
    """The key a cursor of a `kind` listing stands for; BadQuery if it is not one, or of another kind."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error) as exc:
        raise BadQuery("cursor: not a cursor this store issued") from exc
    match decoded:
        case [str(k), int(ts_us), str(first), str(second)] if k == kind and not isinstance(ts_us, bool):
            try:
                from_us(ts_us)  # a time no datetime holds cannot be resumed from
            except OverflowError as exc:
                raise BadQuery("cursor: time out of range") from exc
            return ts_us, first, second
    raise BadQuery("cursor: not a cursor this store issued for this kind of query")
