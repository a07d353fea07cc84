"""The ground-truth log: every message a simulator published, one JSON line each.

Tests and evaluations compare what was stored against what was sent, so each line carries the
topic, the payload, and for readings each value expanded as (device, measurement, ts, value).
Injected faults are lines of kind `fault` (what, since when, which measurements), and link actions
(an unclean disconnect: the broker then publishes the device's last will) lines of kind `ctl`;
neither was published, so both have an empty topic.
Payloads are kept as JSON when they are JSON objects whose compact encoding is the exact bytes
sent (all the simulators produce today), otherwise as base64, so the bytes can always be rebuilt.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from midika.errors import ConfigError
from midika.timeutil import parse_timestamp, to_rfc3339
from simulators.messages import SimMessage, encode


@dataclass(frozen=True, slots=True)
class TruthReading:
    """One value a device sent."""

    device: str
    measurement: str
    ts: datetime | None  # None: the message carried no timestamp
    value: Any


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One published message as the log kept it."""

    time: datetime  # simulated time of sending
    device: str
    kind: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    readings: tuple[TruthReading, ...]


class TruthLog:
    """Appends one line per published message to an NDJSON file (truncated on open)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--truth {path}: cannot write the ground-truth log: {exc}") from exc
        self.path = path
        self.lines = 0

    def write(self, message: SimMessage) -> None:
        """Record one published message."""
        self._file.write(json.dumps(record(message), separators=(",", ":"), ensure_ascii=False) + "\n")
        self.lines += 1

    def flush(self) -> None:
        """Make everything written so far visible to readers of the file."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def __enter__(self) -> TruthLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def record(message: SimMessage) -> dict[str, Any]:
    """The log line of one message, as a JSON-ready dict."""
    line: dict[str, Any] = {
        "time": to_rfc3339(message.time),
        "device": message.device,
        "kind": message.kind,
        "topic": message.topic,
        "qos": message.qos,
        "retain": message.retain,
    }
    body = _json(message.payload)
    if body is not None and encode(body) == message.payload:
        line["payload"] = body
    else:
        line["payload_b64"] = base64.b64encode(message.payload).decode("ascii")
    # A store-and-forward batch is an array of reading objects, each with its own ts.
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    if message.kind == "up":
        readings = [
            {"device": message.device, "measurement": name, "ts": item.get("ts"), "value": value}
            for item in items
            if isinstance(item, dict) and isinstance(item.get("values"), dict)
            for name, value in item["values"].items()
        ]
        if readings:
            line["readings"] = readings
    return line


def read_truth(path: Path) -> Iterator[TruthRecord]:
    """The records of a ground-truth log, in the order they were published."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield _parse(json.loads(line))


def read_readings(path: Path) -> Iterator[TruthReading]:
    """Every reading of a ground-truth log, expanded."""
    for rec in read_truth(path):
        yield from rec.readings


def _parse(line: dict[str, Any]) -> TruthRecord:
    payload = encode(line["payload"]) if "payload" in line else base64.b64decode(line["payload_b64"])
    readings = tuple(
        TruthReading(r["device"], r["measurement"], _ts(r.get("ts")), r["value"])
        for r in line.get("readings", ())
    )
    return TruthRecord(
        time=parse_timestamp(line["time"]),
        device=line["device"],
        kind=line["kind"],
        topic=line["topic"],
        payload=payload,
        qos=line["qos"],
        retain=line["retain"],
        readings=readings,
    )


def _ts(raw: object) -> datetime | None:
    return None if raw is None else parse_timestamp(raw)


def _json(payload: bytes) -> dict[str, Any] | list[Any] | None:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict | list) else None
