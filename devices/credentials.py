"""Device secrets and their hashes, in mosquitto 2.x's `$7$` PBKDF2-SHA512 password-file format.

Keeping mosquitto's format means the registry's hashes can be written out as a `password_file` for
an external mosquitto unchanged, and hashes made by `mosquitto_passwd` verify here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "$7$"
SALT_BYTES = 12  # what mosquitto_passwd uses
HASH_BYTES = 64  # one SHA-512 block: pbkdf2_hmac's default dklen for sha512
SECRET_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A parsed `$7$<iterations>$<salt>$<hash>` string."""

    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, encoded: str) -> PasswordHash:
        """Parse a `$7$` hash; ValueError says what is malformed."""
        if not encoded.startswith(PREFIX):
            raise ValueError(f"not a mosquitto $7$ PBKDF2-SHA512 hash: starts with {encoded[:3]!r}")
        parts = encoded[len(PREFIX) :].split("$")
        if len(parts) != 3:
            raise ValueError("a $7$ hash has three fields after the prefix: iterations, salt, hash")
        iterations, salt, digest = parts
        if not iterations.isdigit() or int(iterations) < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
        try:
            salt_bytes = base64.b64decode(salt, validate=True)
            digest_bytes = base64.b64decode(digest, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"salt or hash is not standard base64: {exc}") from exc
        if not salt_bytes:
            raise ValueError("salt is empty")
        if len(digest_bytes) != HASH_BYTES:
            raise ValueError(f"hash is {len(digest_bytes)} bytes, expected {HASH_BYTES}")
        return cls(iterations=int(iterations), salt=salt_bytes, digest=digest_bytes)

    def encode(self) -> str:
        """The `$7$...` text, as mosquitto writes it."""
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"{PREFIX}{self.iterations}${salt}${digest}"

    def matches(self, secret: str) -> bool:
        """Whether `secret` hashes to this digest; the comparison takes constant time."""
        candidate = _derive(secret, self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)


def new_secret() -> str:
    """A fresh random device secret, safe to type into a config file or URL."""
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str, *, iterations: int) -> str:
    """Hash `secret` with a random salt into mosquitto's `$7$` format."""
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(iterations=iterations, salt=salt, digest=_derive(secret, salt, iterations)).encode()


def verify_secret(secret: str, encoded: str) -> bool:
    """Whether `secret` matches the `$7$` hash `encoded`; a malformed hash raises ValueError."""
    return PasswordHash.parse(encoded).matches(secret)


def _derive(secret: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", secret.encode("utf-8"), salt, iterations, HASH_BYTES)
