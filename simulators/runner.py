"""Publishing a simulation to an MQTT broker: one connection per device, paced against the wall clock.

Message generation is pure (`simulators.messages`); this module only decides *when* each message
goes out and sends it through the device's own connection, logged in with the device's id and
secret like real firmware. The connections of a run share one network thread (`pool.LinkPool`)
and are opened a few dozen at a time, so a thousand devices start in seconds.

Speed 1 is real time, N is N times faster, infinity is as fast as the broker acknowledges. Unless
`allow_future` is set, no message is sent before the wall clock reaches its timestamp, so an
accelerated run from the past catches up with now and then carries on live (the ingest
quarantines readings from the future).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from midika.broker_address import BrokerAddress
from midika.errors import ConfigError
from midika.models.trial import Trial
from midika.timeutil import utcnow
from simulators.faults import Fault
from simulators.link import DeviceLink, LinkSpec
from simulators.messages import OFFLINE_WILL, SimMessage, Simulation, offline_status, topic
from simulators.pool import LinkPool
from simulators.truth import TruthLog

log = logging.getLogger(__name__)

MAX_UNACKNOWLEDGED = 1000  # per device: a backfill waits for the broker rather than queueing without end
DRAIN_TIMEOUT_S = 30.0
PROGRESS_INTERVAL_S = 1.0
# Devices connecting at once: each waits a round trip for its CONNACK, so a few dozen in parallel
# start 1,000 devices in seconds without a burst of connections the broker would have to queue.
CONNECT_CONCURRENCY = 32


LinkFactory = Callable[[LinkSpec], DeviceLink]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a run published; also reported as progress while it runs."""

    trial: str
    devices: int
    published: int = 0  # messages handed to the devices' connections
    readings: int = 0  # values inside the /up messages
    events: int = 0
    status: int = 0
    faults: int = 0  # fault records written to the ground truth (injected faults, not messages)
    unacknowledged: int = 0  # published but never acknowledged by the broker (lost on exit)
    sim_start: datetime
    sim_time: datetime  # simulated time reached
    wall_seconds: float = 0.0
    interrupted: bool = False  # stopped before the requested duration was over


class SimulationRunner:
    """Runs one trial's simulated devices against a broker."""

    def __init__(
        self,
        *,
        trial: Trial,
        broker: BrokerAddress,
        secrets: Mapping[str, str],
        seed: int,
        start: datetime,
        speed: float,
        truth: Path | None = None,
        devices: Sequence[str] | None = None,
        allow_future: bool = False,
        progress: Callable[[RunSummary], None] | None = None,
        connect: LinkFactory | None = None,
        faults: Sequence[Fault] = (),
    ) -> None:
        if math.isnan(speed) or speed <= 0:
            raise ConfigError(f"speed must be a positive number or inf, got {speed}")
        # Validates start and the device selection without any I/O; each run starts a fresh one.
        self._make: Callable[[], Simulation] = functools.partial(
            Simulation, trial, seed=seed, start=start, devices=devices, faults=tuple(faults)
        )
        self._first = self._make()
        self.device_ids = [m.device.id for m in self._first.models]
        if not self.device_ids:
            raise ConfigError(f"trial {trial.id!r}: no devices to simulate")
        missing = [d for d in self.device_ids if d not in secrets]
        if missing:
            raise ConfigError(
                f"no secret for device {', '.join(missing)} of trial {trial.id!r} in the credentials"
            )
        self.trial = trial
        self.broker = broker
        self._secrets = dict(secrets)
        self.speed = speed
        self.truth = truth
        self.allow_future = allow_future
        self._progress = progress
        self._connect = connect  # None: each run opens its links on a LinkPool of its own
        self.summary: RunSummary | None = None  # the last run's, for callers that ran it in a thread

    @property
    def start(self) -> datetime:
        """Simulated start time (rounded up to a whole second)."""
        return self._first.start

    def run(self, *, duration: timedelta | None = None, stop: threading.Event | None = None) -> RunSummary:
        """Publish until `duration` of simulated time has passed (None: until `stop` is set).

        Raises DeviceRefused if the broker refuses a device and BrokerUnavailable if it cannot be
        reached; both before anything is published.
        """
        stop = stop or threading.Event()
        with contextlib.ExitStack() as resources:
            connect = self._connect
            if connect is None:
                pool = LinkPool()
                resources.callback(pool.close)  # after the links are closed: it writes their DISCONNECTs
                connect = pool.connect
            summary = self._run(self._connect_all(connect), duration, stop)
        self.summary = summary
        if self._progress is not None:
            self._progress(summary)
        return summary

    def _run(
        self, links: Mapping[str, DeviceLink], duration: timedelta | None, stop: threading.Event
    ) -> RunSummary:
        """Publish through connected links, say goodbye and close them."""
        end = None if duration is None else self.start + duration
        tally = _Tally(self.trial.id, len(links), self.start)
        if self._progress is not None:
            self._progress(tally.summary(unacknowledged=0))  # every device connected
        truth: TruthLog | None = None
        unacknowledged = 0
        try:
            truth = TruthLog(self.truth) if self.truth is not None else None
            completed = self._publish(self._make().messages(end), links, tally, truth, stop)
            if completed and end is not None:
                completed = self._wait_until(end, tally.wall0, stop, truth)
            tally.interrupted = not completed
            at = self._sim_now(tally.wall0, end if completed else None, tally.sim_time)
            for device in self.device_ids:  # a clean shutdown says so, rather than leave "online" retained
                if not links[device].dropped:  # a dropped device is offline already (its will)
                    self._send(offline_status(self.trial.id, device, at), links, tally, truth)
        finally:
            unacknowledged = sum(link.close(timeout=DRAIN_TIMEOUT_S) for link in links.values())
            if truth is not None:
                truth.close()
        if unacknowledged:
            log.warning(
                "%s: %d messages were never acknowledged by %s", self.trial.id, unacknowledged, self.broker
            )
        return tally.summary(unacknowledged=unacknowledged)

    def _publish(
        self,
        stream: Iterator[SimMessage],
        links: Mapping[str, DeviceLink],
        tally: _Tally,
        truth: TruthLog | None,
        stop: threading.Event,
    ) -> bool:
        """Send the stream, each message when it is due; False if `stop` cut it short."""
        next_progress = tally.wall0 + PROGRESS_INTERVAL_S
        for message in stream:
            if not self._wait_until(message.time, tally.wall0, stop, truth):
                return False
            link = links[message.device]
            while link.unacknowledged() >= MAX_UNACKNOWLEDGED:
                if stop.wait(0.01):
                    return False
            self._send(message, links, tally, truth)
            if self._progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + PROGRESS_INTERVAL_S
                self._progress(
                    tally.summary(unacknowledged=sum(lk.unacknowledged() for lk in links.values()))
                )
        return True

    @staticmethod
    def _send(
        message: SimMessage, links: Mapping[str, DeviceLink], tally: _Tally, truth: TruthLog | None
    ) -> None:
        link = links[message.device]
        if message.kind == "ctl":  # a fault cuts the connection: the broker publishes the last will
            if not link.dropped:
                link.drop()
        elif message.kind != "fault":  # fault records are for the ground truth only
            if link.dropped:
                link.reconnect()
            link.publish(message)
        if truth is not None:
            truth.write(message)
        tally.add(message)

    def _connect_all(self, connect: LinkFactory) -> dict[str, DeviceLink]:
        """Every device's link, connected in parallel; the first device's error if any failed."""
        links: dict[str, DeviceLink] = {}
        failures: dict[str, Exception] = {}

        def one(spec: LinkSpec) -> None:
            if failures:
                return  # one refusal or timeout ends the run: don't wait for the rest to fail too
            try:
                links[spec.client_id] = connect(spec)
            except Exception as exc:
                failures[spec.client_id] = exc

        specs = [self._spec(device) for device in self.device_ids]
        workers = min(CONNECT_CONCURRENCY, len(specs))
        with ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"sim-connect-{self.trial.id}"
        ) as pool:
            list(pool.map(one, specs))
        if failures:
            for link in links.values():
                link.close(timeout=0.0)
            raise next(failures[d] for d in self.device_ids if d in failures)
        return {device: links[device] for device in self.device_ids}

    def _spec(self, device: str) -> LinkSpec:
        return LinkSpec(
            broker=self.broker,
            client_id=device,
            username=device,
            password=self._secrets[device] or None,
            will_topic=topic(self.trial.id, device, "status"),
            will_payload=OFFLINE_WILL,
        )

    def _wait_until(
        self, when: datetime, wall0: float, stop: threading.Event, truth: TruthLog | None
    ) -> bool:
        """Sleep until `when` is due; False if `stop` was set first."""
        offset = (when - self.start).total_seconds()
        delay = wall0 + (offset / self.speed if math.isfinite(self.speed) else 0.0) - time.monotonic()
        if not self.allow_future:
            delay = max(delay, (when - utcnow()).total_seconds())
        if delay <= 0:
            return not stop.is_set()
        if truth is not None:
            truth.flush()  # readers of the log see everything sent before an idle stretch
        return not stop.wait(delay)

    def _sim_now(self, wall0: float, end: datetime | None, reached: datetime) -> datetime:
        """The simulated time now: the end of a completed run, else where the clock has got to."""
        if end is not None:
            now = end
        elif math.isfinite(self.speed):
            now = self.start + timedelta(seconds=(time.monotonic() - wall0) * self.speed)
        else:
            now = reached
        if not self.allow_future:
            now = min(now, utcnow())
        return max(now, reached)


class _Tally:
    """Running counts of a run."""

    def __init__(self, trial: str, devices: int, start: datetime) -> None:
        self.trial, self.devices, self.sim_start, self.sim_time = trial, devices, start, start
        self.published = self.readings = self.events = self.status = self.faults = 0
        self.interrupted = False
        self.wall0 = time.monotonic()

    def add(self, message: SimMessage) -> None:
        if message.kind in ("fault", "ctl"):
            self.faults += message.kind == "fault"
            return
        self.published += 1
        self.readings += message.readings
        self.events += message.kind == "evt"
        self.status += message.kind == "status"
        self.sim_time = max(self.sim_time, message.time)

    def summary(self, *, unacknowledged: int) -> RunSummary:
        return RunSummary(
            trial=self.trial,
            devices=self.devices,
            published=self.published,
            readings=self.readings,
            events=self.events,
            status=self.status,
            faults=self.faults,
            unacknowledged=unacknowledged,
            sim_start=self.sim_start,
            sim_time=self.sim_time,
            wall_seconds=time.monotonic() - self.wall0,
            interrupted=self.interrupted,
        )
