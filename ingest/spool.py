"""The outage spool: raw MQTT messages kept on local disk while the store is down, replayed later.

The spool holds messages, not decoded records: replaying runs them through the same `process` as
live traffic (with the receive time they arrived with), so the spool has no format of its own to
keep in step with the domain models, and a message spooled by one midika version replays in the next.

Layout: a folder of segment files `NNNNNNNNNNNN.spool`, oldest first, each a run of frames

    u32 length | u32 crc32 | i64 received (µs since the epoch, UTC) | u16 topic length | topic | payload

where `length` counts the bytes after the crc and the crc covers them. Appends go to the newest
segment and are fsync'd before `append` returns, so a message acknowledged to the broker after
`append` survives a crash or power cut. A crash mid-append leaves a torn last frame: reading stops
there, and the messages of that frame were never acknowledged, so the broker delivers them again.
Every process start appends to a fresh segment, never after a possibly torn tail. A replayed
segment is deleted as a whole; a crash mid-replay replays it again, which the stores' idempotent
writes absorb.

The spool is bounded by `max_bytes` on disk: `append` refuses (returns False) a batch that would
not fit, and the caller stops acknowledging, so the broker keeps the messages instead.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from ingest.errors import IngestError
from ingest.message import RawMessage
from midika.timeutil import from_us, to_us

__all__ = ["RawMessage", "Segment", "Spool", "encode"]

log = logging.getLogger(__name__)

_HEAD: Final = struct.Struct("<II")  # length, crc32
_BODY: Final = struct.Struct("<qH")  # received µs, topic length
_SUFFIX: Final = ".spool"
SEGMENT_BYTES: Final = 16 * 1024 * 1024  # big enough to replay in few steps, small enough to free space soon


def encode(message: RawMessage) -> bytes:
    """The message as one spool frame."""
    topic = message.topic.encode("utf-8", "surrogateescape")
    body = _BODY.pack(to_us(message.received), len(topic)) + topic + message.payload
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed segment read back whole: its messages and whether its tail was torn."""

    path: Path
    messages: tuple[RawMessage, ...]
    torn: bool


class Spool:
    """An append-only, fsync'd, size-bounded queue of raw messages in a folder; one writer thread."""

    def __init__(self, *, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self._dir = directory
        self._max = max_bytes
        self._segment_bytes = segment_bytes
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock = (directory / ".lock").open("a")
        except OSError as exc:
            raise IngestError(f"MIDIKA_INGEST_SPOOL_DIR: cannot use {directory}: {exc}") from exc
        try:
            # Two workers appending to one spool would interleave frames and replay each other's.
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise IngestError(
                f"MIDIKA_INGEST_SPOOL_DIR: {directory} is in use by another ingest worker; "
                "give each worker its own (the default is per MIDIKA_INGEST_CLIENT_ID)"
            ) from None
        existing = sorted(directory.glob(f"*{_SUFFIX}"))
        self._sealed: list[Path] = existing  # segments from earlier runs are replayed first
        self.recovered = sum(len(_read(path)[0]) for path in existing)  # messages left by earlier runs
        self._bytes = sum(path.stat().st_size for path in existing)
        self._next = 1 + max((int(path.stem) for path in existing if path.stem.isdigit()), default=0)
        self._active: BinaryIO | None = None
        self._active_path: Path | None = None
        self._active_size = 0
        if existing:
            log.warning(
                "the spool %s holds %d bytes from an earlier run; replaying them", directory, self._bytes
            )

    @property
    def size_bytes(self) -> int:
        """Bytes on disk, every segment together."""
        return self._bytes

    @property
    def empty(self) -> bool:
        """True when there is nothing to replay."""
        return not self._sealed and self._active_size == 0

    def append(self, messages: Sequence[RawMessage]) -> bool:
        """Write and fsync the messages; False, writing nothing, if they would exceed `max_bytes`."""
        data = b"".join(encode(message) for message in messages)
        if self._bytes + len(data) > self._max:
            return False
        if self._active is None or self._active_size >= self._segment_bytes:
            self._roll()
        assert self._active is not None
        try:
            self._active.write(data)
            self._active.flush()
            os.fsync(self._active.fileno())
        except OSError as exc:
            # A half-written frame is torn and skipped on replay; none of these messages was acked.
            raise IngestError(f"cannot write to the spool {self._dir}: {exc}", retryable=True) from exc
        self._active_size += len(data)
        self._bytes += len(data)
        return True

    def oldest(self) -> Segment | None:
        """The oldest segment, sealing the active one if it is the only one left; None when empty."""
        if not self._sealed and self._active_size:
            self._seal()
        if not self._sealed:
            return None
        path = self._sealed[0]
        messages, torn = _read(path)
        if torn:
            log.warning("the spool segment %s ends in a torn frame (a crash mid-write); skipped it", path)
        return Segment(path=path, messages=tuple(messages), torn=torn)

    def drop(self, segment: Segment) -> None:
        """Delete a segment once its messages are in the store."""
        size = segment.path.stat().st_size
        segment.path.unlink()
        self._sealed.remove(segment.path)
        self._bytes -= size
        _fsync_dir(self._dir)

    def close(self) -> None:
        """Close the active segment (what it holds is replayed by the next run) and the folder's lock."""
        self._seal()
        self._lock.close()

    def _roll(self) -> None:
        self._seal()
        path = self._dir / f"{self._next:012d}{_SUFFIX}"
        self._next += 1
        self._active = path.open("xb")
        self._active_path = path
        self._active_size = 0
        _fsync_dir(self._dir)  # the new file's directory entry must survive a crash too

    def _seal(self) -> None:
        if self._active is None or self._active_path is None:
            return
        self._active.close()
        if self._active_size:
            self._sealed.append(self._active_path)
        else:
            self._active_path.unlink()
        self._active, self._active_path, self._active_size = None, None, 0


def _read(path: Path) -> tuple[list[RawMessage], bool]:
    """The frames of a segment, and whether bytes after the last good frame were left unread."""
    data = path.read_bytes()
    messages: list[RawMessage] = []
    offset = 0
    while offset + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, offset)
        start = offset + _HEAD.size
        body = data[start : start + length]
        if len(body) != length or length < _BODY.size or zlib.crc32(body) != crc:
            break
        micros, topic_len = _BODY.unpack_from(body)
        messages.append(
            RawMessage(
                topic=body[_BODY.size : _BODY.size + topic_len].decode("utf-8", "surrogateescape"),
                payload=body[_BODY.size + topic_len :],
                received=from_us(micros),
            )
        )
        offset = start + length
    return messages, offset != len(data)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
