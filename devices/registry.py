"""The device registry: every trial declared in `trials/*.yaml`, and the credentials of their devices.

A device logs in to MQTT with its id as username, so device ids are unique across all trials. Only
hashes of secrets are kept, in a JSON state file that several processes share: the CLI issues a
secret while a running broker verifies logins, so writes are locked and atomic, and readers reload
the file when it changes.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devices.credentials import PasswordHash, hash_secret, new_secret
from devices.trial_files import TrialSource, cross_trial_problems, read_trial_files
from midika import statefile
from midika.errors import ConfigError, NotFound, TrialError
from midika.models.trial import Device, Trial
from midika.timeutil import Clock, utcnow

if TYPE_CHECKING:
    from midika.settings import Settings

DEFAULT_ITERATIONS = 20_000
STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Credential:
    """The hash of a device's current secret, and when and for which trial it was issued."""

    trial: str
    hash: PasswordHash
    issued_at: datetime


class Registry:
    """Trials, their devices, and device credentials; safe to share between threads."""

    def __init__(
        self,
        trials: Iterable[Trial],
        *,
        state_file: Path,
        iterations: int = DEFAULT_ITERATIONS,
        clock: Clock = utcnow,
    ) -> None:
        sources = [TrialSource.of(trial) for trial in trials]
        problems = cross_trial_problems(sources)
        if problems:
            raise TrialError("\n".join(problems))
        self._trials = {s.trial.id: s.trial for s in sorted(sources, key=lambda s: s.trial.id)}
        self._devices = {d.id: (t, d) for t in self._trials.values() for d in t.devices}
        self._state_file = state_file
        self._iterations = iterations
        self._clock = clock
        self._mutex = threading.Lock()
        self._signature: statefile.Signature | None = None
        self._credentials: dict[str, Credential] = {}
        # Reconnect storms would cost a PBKDF2 per login; remember logins that succeeded, keyed by a
        # salted digest so the cache never holds a password, and forget them whenever state changes.
        self._cache_salt = secrets.token_bytes(16)
        self._verified: set[tuple[str, bytes]] = set()
        self._generation = 0

    @classmethod
    def load(
        cls,
        *,
        trials_dir: Path,
        state_file: Path,
        iterations: int = DEFAULT_ITERATIONS,
        clock: Clock = utcnow,
    ) -> Registry:
        """Load and validate every `*.yaml` in `trials_dir`; TrialError lists every problem found."""
        trials = [source.trial for source in read_trial_files(trials_dir)]
        return cls(trials, state_file=state_file, iterations=iterations, clock=clock)

    @classmethod
    def from_trials(
        cls,
        trials: Iterable[Trial],
        *,
        state_file: Path,
        iterations: int = DEFAULT_ITERATIONS,
        clock: Clock = utcnow,
    ) -> Registry:
        """A registry over already-built trials (tests, tools); TrialError if their ids collide."""
        return cls(trials, state_file=state_file, iterations=iterations, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry the settings describe: their trials folder, registry file and PBKDF2 rounds."""
        return cls.load(
            trials_dir=settings.trials_dir,
            state_file=settings.registry_file,
            iterations=settings.credential_iterations,
        )

    # -- trials and devices ------------------------------------------------------------------------

    def trials(self) -> list[Trial]:
        """Every trial, by id."""
        return list(self._trials.values())

    def trial(self, trial_id: str) -> Trial | None:
        """The trial called `trial_id`, or None."""
        return self._trials.get(trial_id)

    def find_device(self, device_id: str) -> tuple[Trial, Device] | None:
        """The device called `device_id` and its trial, or None."""
        return self._devices.get(device_id)

    def require_trial(self, trial_id: str) -> Trial:
        """The trial called `trial_id`; NotFound lists the known trials."""
        trial = self._trials.get(trial_id)
        if trial is None:
            known = ", ".join(self._trials) or "none"
            raise NotFound(f"no trial {trial_id!r} (known trials: {known})")
        return trial

    def require_device(self, trial_id: str, device_id: str) -> Device:
        """Device `device_id` of trial `trial_id`; NotFound says which of the two is wrong."""
        trial = self.require_trial(trial_id)
        found = self._devices.get(device_id)
        if found is None:
            known = ", ".join(d.id for d in trial.devices) or "none"
            raise NotFound(f"trial {trial_id!r} has no device {device_id!r} (its devices: {known})")
        if found[0].id != trial_id:
            raise NotFound(f"device {device_id!r} belongs to trial {found[0].id!r}, not {trial_id!r}")
        return found[1]

    # -- credentials -------------------------------------------------------------------------------

    def issue_secret(self, trial_id: str, device_id: str) -> str:
        """Issue a new secret for a device, replacing any earlier one; only its hash is stored."""
        self.require_device(trial_id, device_id)
        secret = new_secret()
        encoded = hash_secret(secret, iterations=self._iterations)
        credential = Credential(trial=trial_id, hash=PasswordHash.parse(encoded), issued_at=self._clock())
        with self._update() as credentials:
            credentials[device_id] = credential
        return secret

    def revoke(self, trial_id: str, device_id: str) -> bool:
        """Remove a device's credentials; False if it had none."""
        self.require_device(trial_id, device_id)
        with self._update() as credentials:
            return credentials.pop(device_id, None) is not None

    def credential(self, device_id: str) -> Credential | None:
        """The device's current credential, or None if none was issued for it in its trial."""
        return self._lookup(device_id)[0]

    def credential_hash(self, device_id: str) -> str | None:
        """The device's `$7$` hash as mosquitto's password file wants it, or None."""
        credential = self.credential(device_id)
        return None if credential is None else credential.hash.encode()

    def verify(self, username: str, password: str) -> bool:
        """Whether `username` (a device id) may log in with `password`."""
        key = (username, hashlib.sha256(self._cache_salt + password.encode("utf-8")).digest())
        credential, generation, known = self._lookup(username, key)
        if credential is None:
            return False
        if known:
            return True
        # PBKDF2 runs outside the lock so one slow login doesn't hold up the others.
        if not credential.hash.matches(password):
            return False
        with self._mutex:
            # Only remember the success if the state it was checked against is still current.
            if generation == self._generation:
                self._verified.add(key)
        return True

    # -- internals ---------------------------------------------------------------------------------

    def _lookup(
        self, device_id: str, key: tuple[str, bytes] | None = None
    ) -> tuple[Credential | None, int, bool]:
        """The device's valid credential, the state generation, and whether `key` already logged in."""
        entry = self._devices.get(device_id)
        with self._mutex:
            self._refresh()
            credential = self._credentials.get(device_id)
            # A credential issued while the device belonged to another trial is stale: its topics differ.
            if entry is None or credential is None or credential.trial != entry[0].id:
                return None, self._generation, False
            return credential, self._generation, key in self._verified

    def _refresh(self) -> None:
        """Reload the state file if another process (or we) replaced it; caller holds the mutex."""
        signature = statefile.signature(self._state_file)
        if signature != self._signature:
            self._credentials = _read_state(self._state_file)
            self._signature = signature
            self._forget_verified()

    def _forget_verified(self) -> None:
        self._verified.clear()
        self._generation += 1

    @contextmanager
    def _update(self) -> Iterator[dict[str, Credential]]:
        """Read-modify-write the state file under an exclusive lock shared with other processes."""
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        with statefile.exclusive(self._state_file):
            # Start from the file, not our copy: another process may have written since we read it.
            credentials = _read_state(self._state_file)
            yield credentials
            _write_state(self._state_file, credentials)
            with self._mutex:
                self._credentials = credentials
                self._signature = statefile.signature(self._state_file)
                self._forget_verified()


def _read_state(path: Path) -> dict[str, Credential]:
    raw = statefile.read_document(path, what="registry state file", version=STATE_VERSION)
    if raw is None:
        return {}
    credentials: dict[str, Credential] = {}
    for device_id, entry in _mapping(raw.get("credentials", {}), path, "credentials").items():
        try:
            fields = _mapping(entry, path, f"credentials.{device_id}")
            credentials[device_id] = Credential(
                trial=str(fields["trial"]),
                hash=PasswordHash.parse(str(fields["hash"])),
                issued_at=datetime.fromisoformat(str(fields["issued_at"])),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{path}: credentials.{device_id}: {exc!s}") from exc
    return credentials


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be an object")
    return value


def _write_state(path: Path, credentials: dict[str, Credential]) -> None:
    document = {
        "version": STATE_VERSION,
        "credentials": {
            device_id: {"trial": c.trial, "hash": c.hash.encode(), "issued_at": c.issued_at.isoformat()}
            for device_id, c in sorted(credentials.items())
        },
    }
    statefile.write_document(path, document)
