"""`midika simulate [SCENARIO]`: run one trial's simulated devices against a broker, until done or Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from midika.broker_address import BrokerAddress
from midika.errors import ConfigError
from midika.models.trial import Trial
from midika.settings import Settings
from midika.timeutil import parse_timestamp, utcnow
from simulators.faults import Fault
from simulators.runner import RunSummary, SimulationRunner

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def simulate(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML (see simulators/scenarios/): trial, devices, start, duration, speed, "
            "faults, seed. Options given as well override it.",
        ),
    ] = None,
    trial: Annotated[
        str | None,
        typer.Option("--trial", help="Trial id (a file in MIDIKA_TRIALS_DIR) or a trial YAML file."),
    ] = None,
    broker: Annotated[
        str, typer.Option("--broker", help="Broker URL, mqtt://host:port (or mqtts://).")
    ] = "mqtt://127.0.0.1:1883",
    credentials: Annotated[
        Path | None,
        typer.Option(
            "--credentials",
            help="JSON file mapping device id to secret; omit only for a broker allowing anonymous logins.",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="The same seed sends the same data (default 1).")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", help="Simulated seconds per real second; inf: as fast as possible (default 1)."
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration", help="Simulated time to run, e.g. 90s, 10m, 6h, 7d, 1h30m; default: until Ctrl-C."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            help="Simulated start, RFC 3339 or a date in the trial's time zone; default now, or, when "
            "accelerated with a duration, that long before now (a backfill that ends now).",
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option("--truth", help="Write the ground-truth log (NDJSON): messages and injected faults."),
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option("--device", help="Simulate only this device (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run simulated devices of one trial against an MQTT broker, from a scenario or options."""
    plan = _plan(scenario, trial)
    spec, faults = plan.trial, plan.faults
    length = parse_duration(duration) if duration is not None else plan.duration
    rate = speed if speed is not None else plan.speed
    if start is not None:
        begin = parse_start(start, spec)
    elif plan.start is not None:
        begin = plan.start
    elif length is not None and rate > 1:
        begin = utcnow() - length
    else:
        begin = utcnow()
    wanted = device or plan.devices or [d.id for d in spec.devices]
    bar = None if quiet else ProgressBar(length)
    runner = SimulationRunner(
        trial=spec,
        broker=BrokerAddress.parse(broker, key="--broker"),
        secrets=read_credentials(credentials, wanted),
        seed=seed if seed is not None else plan.seed,
        start=begin,
        speed=rate,
        truth=truth,
        devices=wanted,
        faults=faults,
        progress=bar.update if bar is not None else None,
    )
    until = f"for {duration or _human(length)}" if length else "until Ctrl-C"
    typer.echo(
        f"simulating {spec.id} ({len(wanted)} devices, {len(faults)} faults) from "
        f"{runner.start.isoformat()} at {rate:g}x {until}"
    )
    stop = threading.Event()
    with _stop_on_signals(stop), bar or nullcontext():
        summary = runner.run(duration=length, stop=stop)
    typer.echo(describe(summary))


@dataclass(frozen=True, slots=True)
class _Plan:
    trial: Trial
    seed: int = 1
    speed: float = 1.0
    start: datetime | None = None
    duration: timedelta | None = None
    devices: list[str] | None = None
    faults: tuple[Fault, ...] = ()


def _plan(scenario: Path | None, trial: str | None) -> _Plan:
    """What the scenario file (or just --trial) asks for."""
    if scenario is None:
        if trial is None:
            raise ConfigError("give a scenario file or --trial")
        return _Plan(trial=load_trial(trial))
    from devices.trial_files import read_trial_files
    from simulators.scenario import load_scenario

    folder = (
        Path(trial).parent if trial is not None and trial.endswith(".yaml") else Settings.load().trials_dir
    )
    trials = {source.trial.id: source.trial for source in read_trial_files(folder)}
    found, spec = load_scenario(scenario, trials)
    return _Plan(
        trial=spec,
        seed=found.seed,
        speed=found.speed_factor,
        start=found.start_time(spec),
        duration=timedelta(seconds=found.duration) if found.duration is not None else None,
        devices=found.device_ids(spec),
        faults=tuple(found.fault_list()),
    )


class ProgressBar:
    """A rich progress bar: simulated time reached, messages sent and their rate."""

    def __init__(self, duration: timedelta | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[sim]}"),
            TextColumn("{task.fields[messages]} messages, {task.fields[rate]} msg/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        total = duration.total_seconds() if duration is not None else None
        self._task = self._progress.add_task("simulating", total=total, sim="", messages=0, rate="0")

    def update(self, summary: RunSummary) -> None:
        """Show a runner's progress report."""
        rate = summary.published / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
        self._progress.update(
            self._task,
            completed=(summary.sim_time - summary.sim_start).total_seconds(),
            sim=summary.sim_time.strftime("%Y-%m-%d %H:%M"),
            messages=summary.published,
            rate=f"{rate:,.0f}",
        )

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _human(length: timedelta | None) -> str:
    return "" if length is None else f"{length.total_seconds():g} s"


def describe(summary: RunSummary) -> str:
    """One line on what a run published."""
    state = "stopped" if summary.interrupted else "done"
    lost = f", {summary.unacknowledged} NOT acknowledged" if summary.unacknowledged else ""
    return (
        f"{state}: {summary.published} messages ({summary.readings} readings, {summary.events} events, "
        f"{summary.status} status) from {summary.devices} devices{lost}; {summary.faults} faults; simulated "
        f"{summary.sim_start.isoformat()} .. {summary.sim_time.isoformat()} in {summary.wall_seconds:.1f} s"
    )


def load_trial(ref: str) -> Trial:
    """A trial by id (from MIDIKA_TRIALS_DIR) or by the path of its YAML file."""
    from devices.trial_files import read_trial_files

    path = Path(ref)
    if path.suffix == ".yaml":
        if not path.is_file():
            raise ConfigError(f"--trial: no trial file {path}")
        folder, trial_id = path.parent, path.stem
    else:
        folder, trial_id = Settings.load().trials_dir, ref
    sources = read_trial_files(folder)
    found = next((s.trial for s in sources if s.trial.id == trial_id), None)
    if found is None:
        have = ", ".join(sorted(s.trial.id for s in sources)) or "none"
        raise ConfigError(f"--trial: no trial {trial_id!r} in {folder} (have {have})")
    return found


def read_credentials(path: Path | None, devices: list[str]) -> dict[str, str]:
    """Device secrets from a JSON object {device id: secret}; without a file, empty passwords."""
    if path is None:
        return dict.fromkeys(devices, "")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--credentials {path}: cannot read it as JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ConfigError(f"--credentials {path}: must be a JSON object mapping device id to secret text")
    return data


def parse_duration(text: str) -> timedelta:
    """`90s`, `10m`, `6h`, `7d`, `2w` or combinations such as `1h30m`."""
    compact = text.strip().replace(" ", "")
    if not compact or _DURATION_PART.sub("", compact):
        raise ConfigError(f"--duration: {text!r} is not a duration like 90s, 10m, 6h, 7d or 1h30m")
    seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(compact))
    if seconds <= 0:
        raise ConfigError(f"--duration: {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_start(text: str, trial: Trial) -> datetime:
    """RFC 3339, or a date or local date-time in the trial's time zone, or `now`."""
    if text.strip().lower() == "now":
        return utcnow()
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        local = None
    if local is not None and local.tzinfo is None:
        return local.replace(tzinfo=trial.zone)
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise ConfigError(f"--start: {exc}") from exc


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    # Ctrl-C sets the event instead of raising inside paho or a sleep: the runner then sends each
    # device's offline status, waits for acknowledgements and closes the truth log.
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        restore()  # a second Ctrl-C, while devices say goodbye, aborts at once

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers; the caller owns `stop` then
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    try:
        yield
    finally:
        restore()
