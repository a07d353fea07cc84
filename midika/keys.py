"""API keys: issued and revoked with `midika keys ...`, checked by the API on every request.

A key is `mk_<id>_<secret>`: `id` (8 hex digits) names the key in listings and lets the API find its
record without scanning; `secret` is 32 random bytes. Only the SHA-256 of the whole key is stored.
A fast hash is enough here, unlike for passwords: a slow hash (PBKDF2, bcrypt) protects secrets
people choose, which can be guessed; 256 random bits cannot be, even at billions of SHA-256 a second,
while a slow hash would cost milliseconds on every API request.

Keys live in `<data_dir>/api_keys.json` (mode 0600), rewritten whole under an exclusive `flock`
and replaced atomically, as the device registry does; readers reload it when its inode, mtime or
size changes, so a key revoked from the CLI stops working at once in a running API.

Roles, from most to least: `admin` (everything), `evaluator` (raw and aggregated data of its trials),
`viewer` (aggregates, latest values, device status and KPIs of its trials). A key's trials are ids or
`*`, every trial — except trials marked `personal_data: true`, which only keys naming them see.
Admin keys see every trial: they can issue any key anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from midika import statefile
from midika.errors import ConfigError, NotFound
from midika.models.trial import Trial
from midika.timeutil import utcnow

STATE_VERSION = 1
WILDCARD = "*"
_KEY = re.compile(r"^mk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class Role(StrEnum):
    """What a key may do; each role includes everything the roles below it may."""

    VIEWER = "viewer"
    EVALUATOR = "evaluator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in viewer < evaluator < admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether a key of this role may use a route that needs `needed`."""
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A key's record: everything but the key itself, which is never stored."""

    id: str
    name: str
    role: Role
    trials: tuple[str, ...]
    hash: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def sees(self, trial: Trial) -> bool:
        """Whether this key may read anything of `trial`."""
        if self.role is Role.ADMIN or trial.id in self.trials:
            return True
        # A wildcard is a convenience for open data; personal data needs a grant naming the trial.
        return WILDCARD in self.trials and not trial.personal_data


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly created key: `secret` is the full key, shown once and never stored."""

    record: ApiKey
    secret: str = field(repr=False)


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256 (see the module docstring for why not a slow hash)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The API keys of one data folder; safe to share between threads and processes."""

    def __init__(self, *, path: Path) -> None:
        self._path = path
        self._mutex = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._signature: statefile.Signature | None = None

    @property
    def path(self) -> Path:
        """The JSON file the keys are kept in."""
        return self._path

    def create(self, *, role: Role, trials: Sequence[str] = (), name: str = "") -> IssuedKey:
        """Issue a key; only its hash is kept."""
        if role is not Role.ADMIN and not trials:
            raise ConfigError(f"a {role} key needs at least one --trial (a trial id, or '*' for all)")
        with self._update() as keys:
            key_id = secrets.token_hex(4)
            while key_id in keys:
                key_id = secrets.token_hex(4)
            secret = f"mk_{key_id}_{secrets.token_urlsafe(32)}"
            record = ApiKey(
                id=key_id,
                name=name,
                role=role,
                trials=tuple(dict.fromkeys(trials)),
                hash=hash_key(secret),
                created_at=utcnow(),
            )
            keys[key_id] = record
        return IssuedKey(record, secret)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key `key_id`; it stops working at once. NotFound if there is none."""
        with self._update() as keys:
            record = keys.get(key_id)
            if record is None:
                raise NotFound(f"no API key {key_id!r}; `midika keys list` shows them")
            if record.active:
                record = replace(record, revoked_at=utcnow())
                keys[key_id] = record
        return record

    def list(self) -> list[ApiKey]:
        """Every key ever issued, revoked ones included, oldest first."""
        with self._mutex:
            self._refresh()
            return sorted(self._keys.values(), key=lambda k: (k.created_at, k.id))

    def authenticate(self, key: str) -> ApiKey | None:
        """The active key record `key` belongs to, or None."""
        match = _KEY.match(key)
        if match is None:
            return None
        with self._mutex:
            self._refresh()
            record = self._keys.get(match.group(1))
        if record is None or not record.active:
            return None
        return record if hmac.compare_digest(record.hash, hash_key(key)) else None

    def _refresh(self) -> None:
        signature = statefile.signature(self._path)
        if signature != self._signature:
            self._keys = _read(self._path)
            self._signature = signature

    @contextmanager
    def _update(self) -> Iterator[dict[str, ApiKey]]:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"MIDIKA_DATA_DIR: cannot create {self._path.parent}: {exc}") from exc
        with statefile.exclusive(self._path):
            keys = _read(self._path)  # another process may have written since we last read
            yield keys
            _write(self._path, keys)
            with self._mutex:
                self._keys = keys
                self._signature = statefile.signature(self._path)


def _read(path: Path) -> dict[str, ApiKey]:
    raw = statefile.read_document(path, what="API key file", version=STATE_VERSION)
    if raw is None:
        return {}
    keys: dict[str, ApiKey] = {}
    entries: Any = raw.get("keys", {})
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: keys must be an object")
    for key_id, entry in entries.items():
        try:
            revoked = entry.get("revoked_at")
            keys[key_id] = ApiKey(
                id=key_id,
                name=str(entry.get("name", "")),
                role=Role(entry["role"]),
                trials=tuple(str(t) for t in entry.get("trials", [])),
                hash=str(entry["hash"]),
                created_at=datetime.fromisoformat(entry["created_at"]),
                revoked_at=None if revoked is None else datetime.fromisoformat(revoked),
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: keys.{key_id}: {exc!s}") from exc
    return keys


def _write(path: Path, keys: dict[str, ApiKey]) -> None:
    document = {
        "version": STATE_VERSION,
        "keys": {
            k.id: {
                "name": k.name,
                "role": k.role.value,
                "trials": list(k.trials),
                "hash": k.hash,
                "created_at": k.created_at.isoformat(),
                "revoked_at": None if k.revoked_at is None else k.revoked_at.isoformat(),
            }
            for k in sorted(keys.values(), key=lambda k: k.id)
        },
    }
    statefile.write_document(path, document)


def ensure_local_admin_key(ring: KeyRing, key_file: Path) -> tuple[str, bool]:
    """The admin key kept in `key_file` for local use, created (0600) if missing or revoked.

    Returns the key and whether it was created now.
    """
    try:
        existing = key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    except OSError as exc:
        raise ConfigError(f"{key_file}: cannot read the local admin key: {exc}") from exc
    record = ring.authenticate(existing) if existing else None
    if record is not None and record.role is Role.ADMIN:
        return existing, False
    issued = ring.create(role=Role.ADMIN, name="local admin (midika up)")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(issued.secret + "\n")
    os.chmod(key_file, 0o600)  # an older file may have had wider permissions
    return issued.secret, True
