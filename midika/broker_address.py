"""Where an MQTT broker is and how to log in, parsed once from a URL like mqtt://user:pw@host:1883."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from midika.errors import ConfigError

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAddress:
    """An MQTT broker endpoint plus optional credentials."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str, *, key: str = "broker URL") -> BrokerAddress:
        """Parse mqtt:// or mqtts:// URLs; errors name `key` so the user knows which setting is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ConfigError(f"{key}: scheme must be mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ConfigError(f"{key}: no host in {url!r}")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"{key}: bad port in {url!r}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "mqtts",
        )

    def with_credentials(self, username: str, password: str | None) -> BrokerAddress:
        """The same broker, logged in as someone else."""
        return BrokerAddress(
            host=self.host, port=self.port, username=username, password=password, tls=self.tls
        )

    def __str__(self) -> str:  # never print the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"
