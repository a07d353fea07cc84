"""Small JSON state files shared between processes: the device registry's and the API keys'.

Each file is rewritten whole: read-modify-write under an exclusive `flock` on a sibling `.lock`
file, then written to a temporary file, fsync'd and renamed over the old one, so a reader never
sees half a file and two writers never lose each other's change. Readers notice a rewrite by the
file's `signature` and reload.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from midika.errors import ConfigError

Signature = tuple[int, int, int]


def signature(path: Path) -> Signature | None:
    """What changes whenever `path` is rewritten; None while it does not exist."""
    # The inode changes on every os.replace, so a rewrite within the mtime granularity is still seen.
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_document(path: Path, *, what: str, version: int) -> dict[str, Any] | None:
    """The JSON object in `path`, checked for `version`; None if the file does not exist yet."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {what} is unreadable: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("version") != version:
        raise ConfigError(f"{path}: not a version-{version} midika {what}")
    return raw


def write_document(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` with `document` atomically; the file is created with mode 0600."""
    # mkstemp creates the file 0600: the states hold hashes, roles and grants — private, if not secret.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the cross-process write lock of state file `path` (its sibling `<name>.lock`)."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield
