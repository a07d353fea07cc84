"""Mosquitto's password and ACL files, written from the device registry.

The ACL expresses the embedded broker's policy (`devices.broker_plugins`): a device writes only its
own `up`, `evt` and `status` and reads only its own `down`; the ingest account reads every device's
`up`, `evt` and `status` (shared subscriptions included: mosquitto 2.0 checks read access on each
delivered message's real topic, not on the `$share/...` filter) and writes any device's `down`.

Every user gets its own `user` block and there are no `pattern` lines. `%u` could stand for the
device level but not for the trial level, so `pattern write midika/v1/+/%u/up` would let a device
publish as itself into every trial; patterns would also apply to the service accounts. The password
file has to be rewritten whenever a credential is issued or revoked anyway, so per-user blocks cost
no extra step, and mosquitto matches them without the string substitution patterns need per check.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devices.contract import INGEST_KINDS, Kind, Topic, topic_filter
from devices.credentials import hash_secret, verify_secret
from devices.registry import Registry
from midika.errors import ConfigError
from midika.settings import Settings

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
# The password file holds hashes only, but they invite offline guessing; the ACL is no secret.
PASSWORD_MODE = 0o600
ACL_MODE = 0o644
# Hashes use few PBKDF2 rounds because mosquitto verifies logins on its one thread, where costly
# hashes would let anyone stall the broker by trying the ingest's username; strength must
# therefore come from the password itself.
MIN_SERVICE_PASSWORD = 16
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # no ':' (the file's separator), '+#/'


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceLogin:
    """A non-device broker account: its username and its password, which is never written out."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MosquittoFiles:
    """The text of both files, and which devices were left out for lack of credentials."""

    passwd: str
    acl: str
    devices: tuple[str, ...]
    without_credentials: tuple[str, ...]


def ingest_login(settings: Settings, *, password_file: Path | None = None) -> ServiceLogin:
    """The ingest account: MIDIKA_INGEST_USERNAME, password from a file or MIDIKA_INGEST_PASSWORD."""
    username = settings.ingest_username
    if _USERNAME.fullmatch(username) is None:
        raise ConfigError(
            f"MIDIKA_INGEST_USERNAME {username!r} cannot be a mosquitto user: use letters, digits, "
            "'.', '_' and '-' (at most 63)"
        )
    if password_file is not None:
        source = f"--ingest-password-file {password_file}"
        try:
            # Secret files usually end in a newline that is not part of the password.
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read it: {exc}") from exc
    elif settings.ingest_password is not None:
        source = "MIDIKA_INGEST_PASSWORD"
        password = settings.ingest_password.get_secret_value()
    else:
        raise ConfigError(
            "the ingest account needs a password: pass --ingest-password-file or set MIDIKA_INGEST_PASSWORD"
        )
    if len(password) < MIN_SERVICE_PASSWORD:
        raise ConfigError(
            f"{source}: the ingest password has {len(password)} characters; use at least "
            f"{MIN_SERVICE_PASSWORD} random ones, e.g. from `openssl rand -base64 32`"
        )
    return ServiceLogin(username=username, password=password)


def render(
    registry: Registry, *, ingest: ServiceLogin, iterations: int, previous: Mapping[str, str] | None = None
) -> MosquittoFiles:
    """Both files' text; the ingest keeps its `previous` hash while that still matches its password."""
    found = registry.find_device(ingest.username)
    if found is not None:
        raise ConfigError(
            f"MIDIKA_INGEST_USERNAME {ingest.username!r} is also a device of trial {found[0].id!r}"
        )
    old = (previous or {}).get(ingest.username)
    # Reusing the hash keeps an unchanged export byte-identical: a fresh salt would change the file.
    ingest_hash = old if old and _still_matches(ingest.password, old, iterations) else None
    hashes = {ingest.username: ingest_hash or hash_secret(ingest.password, iterations=iterations)}
    acl = [
        "# Written by `midika devices export-mosquitto` from the device registry: do not edit, export again.",
        "# Everything not granted below is denied. Each device is pinned to its own trial, so there",
        "# are no `pattern` lines: %u could not pin the trial level (see devices/mosquitto.py).",
        "",
        "# The ingest: reads every device's data, writes any device's configuration.",
        f"user {ingest.username}",
        *(f"topic read {topic_filter(kind)}" for kind in INGEST_KINDS),
        f"topic write {topic_filter(Kind.DOWN)}",
    ]
    devices: list[str] = []
    missing: list[str] = []
    for trial in registry.trials():
        acl += ["", f"# Trial {trial.id}"]
        lacking = []
        for device in sorted(trial.devices, key=lambda d: d.id):
            encoded = registry.credential_hash(device.id)
            if encoded is None:
                lacking.append(device.id)
                continue
            hashes[device.id] = encoded
            devices.append(device.id)
            acl.append(f"user {device.id}")
            acl += [f"topic write {Topic(trial=trial.id, device=device.id, kind=k)}" for k in INGEST_KINDS]
            acl.append(f"topic read {Topic(trial=trial.id, device=device.id, kind=Kind.DOWN)}")
        if lacking:
            acl.append(f"# No credentials issued, so no access: {', '.join(lacking)}")
        missing += lacking
    passwd = "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))
    return MosquittoFiles(
        passwd=passwd, acl="\n".join(acl) + "\n", devices=tuple(devices), without_credentials=tuple(missing)
    )


def export(
    registry: Registry,
    *,
    out: Path,
    ingest: ServiceLogin,
    iterations: int,
    owner: tuple[int, int] | None = None,
) -> MosquittoFiles:
    """Write `out`/passwd (0600) and `out`/acl (0644) atomically, owned by `owner` (uid, gid) if given."""
    out.mkdir(parents=True, exist_ok=True)
    files = render(
        registry, ingest=ingest, iterations=iterations, previous=read_password_file(out / PASSWORD_FILE)
    )
    write_atomically(out / PASSWORD_FILE, files.passwd, mode=PASSWORD_MODE, owner=owner)
    write_atomically(out / ACL_FILE, files.acl, mode=ACL_MODE, owner=owner)
    return files


def read_password_file(path: Path) -> dict[str, str]:
    """The `user:hash` lines of a mosquitto password file; empty if there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the existing password file: {exc}") from exc
    entries = {}
    for line in text.splitlines():
        user, sep, encoded = line.partition(":")
        if sep and not line.startswith("#"):
            entries[user] = encoded
    return entries


def write_atomically(path: Path, text: str, *, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace `path` with `text` so that readers see the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # Owner and mode are set before the rename: mosquitto, reloading between a rename and a
        # later chown, would find a password file it cannot read.
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)  # mkstemp made it 0600; fchmod is not subject to the umask
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _still_matches(password: str, encoded: str, iterations: int) -> bool:
    try:
        return encoded.startswith(f"$7${iterations}$") and verify_secret(password, encoded)
    except ValueError:  # a malformed old hash is simply replaced
        return False
