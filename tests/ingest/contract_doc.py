"""The examples of devices/CONTRACT.md, parsed: `mosquitto_pub` commands and rejected messages."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from tests.conftest import REPO

DOC = REPO / "devices" / "CONTRACT.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The mosquitto_pub options the examples may use; anything else fails the tests until it is added
# here (and so checked).
_WITH_VALUE = frozenset(
    {"-h", "-p", "-V", "-q", "-i", "-u", "-P", "-t", "-m", "--will-topic", "--will-payload", "--will-qos"}
)
_FLAGS = frozenset({"-r", "--will-retain"})


@dataclass(frozen=True)
class Publish:
    """One `mosquitto_pub` command of the contract."""

    argv: list[str]
    options: dict[str, str]
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def topic(self) -> str:
        """The topic published to."""
        return self.options["-t"]

    @property
    def payload(self) -> str:
        """The message published."""
        return self.options["-m"]

    def __str__(self) -> str:  # pytest ids
        return f"{self.topic} {self.payload[:40]}"


@dataclass(frozen=True)
class RejectedExample:
    """A ```rejected block: a message and the reason and detail the platform records for it."""

    topic: str
    payload: str
    reason: str
    detail: str


def fenced(language: str) -> list[str]:
    """The bodies of the fenced blocks of `language`."""
    return [body for lang, body in _FENCE.findall(DOC.read_text(encoding="utf-8")) if lang == language]


def publishes() -> list[Publish]:
    """Every mosquitto_pub command in the shell blocks."""
    commands = []
    for body in fenced("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("mosquitto_pub"):
                commands.append(_parse(shlex.split(line)))
    return commands


def _parse(argv: list[str]) -> Publish:
    options: dict[str, str] = {}
    flags: set[str] = set()
    args = iter(argv[1:])
    for arg in args:
        if arg in _WITH_VALUE:
            options[arg] = next(args)
        elif arg in _FLAGS:
            flags.add(arg)
        else:
            raise AssertionError(f"mosquitto_pub option {arg!r} is not checked by the tests: {argv}")
    return Publish(argv=argv, options=options, flags=frozenset(flags))


def rejected_examples() -> list[RejectedExample]:
    """Every ```rejected block."""
    examples = []
    for body in fenced("rejected"):
        fields = dict(line.split(":", 1) for line in body.splitlines() if line.strip())
        examples.append(RejectedExample(**{key.strip(): value.strip() for key, value in fields.items()}))
    return examples
