"""amqtt plugins for the embedded broker: logins checked against the registry, topics per login.

Topic layout: `midika/v1/{trial}/{device}/{kind}`. A device publishes its own `up`, `evt` and
`status` and subscribes to its own `down`; the ingest service account reads everything under
`midika/v1/` and publishes any device's `down`; the simulator service account stands in for every
device (publishes any `up`/`evt`/`status`, reads any `down`).

amqtt builds each plugin's `Config` dataclass from the broker config with dacite, which hands
instances through by reference, so both plugins of one broker share the one `AccessPolicy` object
they are configured with: no module-level registry of brokers is needed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from devices.contract import INGEST_KINDS, ROOT, Kind
from midika.errors import ConfigError
from midika.models.trial import Device, Trial

DEVICE_KINDS = frozenset(INGEST_KINDS)  # what a device publishes is what the ingest consumes
DOWN = Kind.DOWN.value

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # midika.models.trial.Id
_log = logging.getLogger(__name__)


class CredentialCheck(Protocol):
    """What the broker needs from the device registry; `verify` is called from a worker thread."""

    def verify(self, username: str, password: str) -> bool:
        """Whether `password` is the secret of device `username`."""
        ...

    def find_device(self, device_id: str) -> tuple[Trial, Device] | None:
        """The trial and device called `device_id`, or None."""
        ...


class Role(StrEnum):
    """What a service account is for."""

    INGEST = "ingest"
    SIMULATOR = "simulator"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAccount:
    """A non-device login of the embedded broker; `up` makes a random password each run."""

    password: str = field(repr=False)
    role: Role

    def __post_init__(self) -> None:
        if not self.password:
            raise ConfigError(f"service account of role {self.role}: empty password")


@dataclass(slots=True)
class AccessCounters:
    """What the broker refused since it started; every count is something a client lost."""

    refused_connects: int = 0
    denied_publishes: int = 0  # dropped: MQTT 3.1.1 cannot tell the publisher
    # Per login, to find the device whose firmware has the wrong trial or device id in its topics.
    denied_publishes_by_login: dict[str, int] = field(default_factory=dict)
    denied_subscribes: int = 0  # SUBACK 0x80
    denied_receives: int = 0  # not delivered to a subscriber whose filter matched


@dataclass(frozen=True, slots=True)
class Principal:
    """A logged-in user and the topics it may use."""

    username: str
    role: Role | None  # None: a device
    device_topic: str = ""  # "midika/v1/{trial}/{device}" for a device

    def may_publish(self, topic: str) -> bool:
        """Whether this login may publish to `topic` (no wildcards: amqtt rejects those itself)."""
        if self.role is None:
            prefix, _, kind = topic.rpartition("/")
            return prefix == self.device_topic and kind in DEVICE_KINDS
        kinds = {DOWN} if self.role is Role.INGEST else DEVICE_KINDS
        return _is_device_topic(topic, kinds)

    def may_subscribe(self, topic_filter: str) -> bool:
        """Whether every topic `topic_filter` can match is one this login may receive."""
        if self.role is None:
            return topic_filter == f"{self.device_topic}/{DOWN}"
        levels = topic_filter.split("/")
        if self.role is Role.INGEST:
            return levels[:2] == ROOT.split("/") and len(levels) > 2
        return _is_device_filter(levels, DOWN)

    def may_receive(self, topic: str) -> bool:
        """Whether a message on `topic` may be delivered to this login."""
        if self.role is None:
            return topic == f"{self.device_topic}/{DOWN}"
        if self.role is Role.INGEST:
            return topic.startswith(f"{ROOT}/")
        return _is_device_topic(topic, {DOWN})


def _is_device_topic(topic: str, kinds: set[str] | frozenset[str]) -> bool:
    levels = topic.split("/")
    return (
        len(levels) == 5
        and "/".join(levels[:2]) == ROOT
        and all(_ID.match(level) for level in levels[2:4])
        and levels[4] in kinds
    )


def _is_device_filter(levels: list[str], kind: str) -> bool:
    return (
        len(levels) == 5
        and "/".join(levels[:2]) == ROOT
        and all(level == "+" or _ID.match(level) for level in levels[2:4])
        and levels[4] == kind
    )


class AccessPolicy:
    """Who may log in and which topics each login may use; shared by one broker's two plugins."""

    def __init__(
        self, *, credentials: CredentialCheck, service_accounts: Mapping[str, ServiceAccount]
    ) -> None:
        self._credentials = credentials
        self._service_accounts = dict(service_accounts)
        # Filled at login, so a publish costs a dict lookup rather than a registry search.
        self._principals: dict[str, Principal] = {}
        self.counters = AccessCounters()

    async def login(self, username: str | None, password: str | None) -> Principal | str:
        """The principal for these credentials, or why they are refused."""
        if not username:
            return "anonymous logins are not allowed"
        if password is None:
            return "no password"
        account = self._service_accounts.get(username)
        if account is not None:
            if not hmac.compare_digest(account.password.encode(), password.encode()):
                return "wrong password"
            principal = Principal(username, account.role)
        else:
            # PBKDF2 takes tens of milliseconds; on the event loop a login storm would stall every client.
            if not await asyncio.to_thread(self._credentials.verify, username, password):
                return "unknown device or wrong secret"
            principal_or_none = self._device_principal(username)
            if principal_or_none is None:
                return "device has credentials but no trial"
            principal = principal_or_none
        self._principals[username] = principal
        return principal

    def principal(self, username: str | None) -> Principal | None:
        """The principal of a logged-in user, or None for someone the registry doesn't know."""
        if not username:
            return None
        known = self._principals.get(username)
        if known is not None:
            return known
        account = self._service_accounts.get(username)
        return Principal(username, account.role) if account else self._device_principal(username)

    def _device_principal(self, device_id: str) -> Principal | None:
        found = self._credentials.find_device(device_id)
        if found is None:
            return None
        trial, device = found
        return Principal(device_id, None, f"{ROOT}/{trial.id}/{device.id}")

    def allows(self, username: str | None, topic: str, action: Action) -> bool:
        """Whether `username` may do `action` on `topic`; refusals are logged and counted."""
        principal = self.principal(username)
        if action is Action.PUBLISH:
            if principal is not None and principal.may_publish(topic):
                return True
            self.counters.denied_publishes += 1
            login = username or ""
            by_login = self.counters.denied_publishes_by_login
            by_login[login] = by_login.get(login, 0) + 1
            _log.warning("dropped publish from %r to %r: not one of its topics", username, topic)
        elif action is Action.SUBSCRIBE:
            if principal is not None and principal.may_subscribe(topic):
                return True
            self.counters.denied_subscribes += 1
            why = (
                "amqtt has no shared subscriptions, subscribe to the plain filter"
                if topic.startswith("$share/")
                else "not one of its topics"
            )
            _log.warning("refused subscription of %r to %r: %s", username, topic, why)
        else:
            if principal is not None and principal.may_receive(topic):
                return True
            self.counters.denied_receives += 1
            _log.warning("did not deliver %r to %r: not one of its topics", topic, username)
        return False


def _policy_of(config: object, plugin: str) -> AccessPolicy:
    policy = getattr(config, "policy", None)
    if not isinstance(policy, AccessPolicy):
        raise ConfigError(
            f"{plugin}: config key 'policy' must be an AccessPolicy, got {type(policy).__name__}"
        )
    return policy


class RegistryAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Admits devices whose secret the registry verifies and the broker's service accounts."""

    @dataclass
    class Config:
        """The plugin's settings: the broker's shared policy object."""

        policy: AccessPolicy

    def __init__(self, context: object) -> None:
        super().__init__(context)
        self._policy = _policy_of(self.config, type(self).__name__)

    async def authenticate(self, *, session: Session) -> bool:
        """Whether `session`'s CONNECT may proceed; a refusal gets CONNACK 5 (not authorized)."""
        reason = await self._refusal(session)
        if reason is None:
            return True
        self._policy.counters.refused_connects += 1
        _log.warning(
            "refused login %r (client id %r) from %s: %s",
            session.username,
            session.client_id,
            session.remote_address,
            reason,
        )
        return False

    async def _refusal(self, session: Session) -> str | None:
        try:
            principal = await self._policy.login(session.username, session.password)
        except Exception:  # a registry bug must refuse the login, not kill the connection handler
            _log.exception("registry failed verifying %r", session.username)
            return "registry error"
        if isinstance(principal, str):
            return principal
        # A will is a publish the broker makes later on the client's behalf, unchecked by amqtt.
        if session.will_flag and session.will_topic and not principal.may_publish(session.will_topic):
            return f"will topic {session.will_topic!r} is not one of its topics"
        # Taking over another user's client id would take its subscriptions (the ingest's above all).
        holder = self.context.get_session(session.client_id) if session.client_id else None
        if (
            holder is not None
            and holder is not session
            and holder.username != session.username
            and (holder.transitions.is_connected() or not holder.clean_session)
        ):
            return f"client id {session.client_id!r} belongs to another login"
        return None


class RegistryTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type information
    """Limits each login to its own topics for publish, subscribe and delivery."""

    @dataclass
    class Config:
        """The plugin's settings: the broker's shared policy object."""

        policy: AccessPolicy

    def __init__(self, context: object) -> None:
        super().__init__(context)
        self._policy = _policy_of(self.config, type(self).__name__)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        """Whether the session may publish to, subscribe to or receive `topic`."""
        if session is None or topic is None or action is None:
            return False
        return self._policy.allows(session.username, topic, action)
