"""The whole platform in one process: embedded broker, ingest, API and (optionally) simulators.

`midika up` and the end-to-end tests start exactly the same thing through `Platform.start`, so the
tests exercise what a user runs. Components start in dependency order (store, registry, broker,
ingest, API, simulators) and stop in reverse, so nothing the simulators publish is lost on exit:
the ingest drains before the store closes.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import uvicorn

from api.app import create_app
from devices.broker import BrokerThread
from devices.broker_plugins import Role, ServiceAccount
from devices.registry import Registry
from ingest.metrics import metrics_registry
from ingest.worker import IngestWorker
from midika.broker_address import BrokerAddress
from midika.errors import ConfigError, MidikaError
from midika.keys import KeyRing, ensure_local_admin_key
from midika.settings import Settings
from midika.store.base import Store
from midika.store.factory import open_store
from midika.timeutil import utcnow
from simulators.faults import Fault
from simulators.runner import SimulationRunner
from simulators.scenario import demo_scenarios, load_scenario

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationPlan:
    """Which trials to simulate, how fast, from which seed."""

    trials: tuple[str, ...] | None = None  # None: every trial of the registry
    seed: int = 1
    speed: float = 1.0
    start: datetime | None = None  # simulated start time; default now
    # Run each trial's live demo scenario (simulators/scenarios/<trial>-demo.yaml) where there is
    # one: its seed and faults; speed and start stay the plan's.
    demos: bool = False


@dataclass
class Platform:
    """A running midika: stop() shuts it down in reverse order of start."""

    settings: Settings
    registry: Registry
    store: Store
    broker_address: BrokerAddress
    api_url: str
    worker: IngestWorker
    broker: BrokerThread | None = None
    admin_key: str = field(default="", repr=False)  # the local admin key, for `midika up` and tests
    admin_key_created: bool = False
    _server: uvicorn.Server | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _sim_stop: threading.Event = field(default_factory=threading.Event)
    simulators: list[SimulationRunner] = field(default_factory=list)

    @classmethod
    def start(cls, settings: Settings, *, simulation: SimulationPlan | None = None) -> Platform:
        """Start every component; on failure, stop what already started and re-raise."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        registry = Registry.load(
            trials_dir=settings.trials_dir,
            state_file=settings.registry_file,
            iterations=settings.credential_iterations,
        )
        keys = KeyRing(path=settings.api_keys_file)
        # A local run must be usable at once: the admin key sits in a 0600 file next to the data.
        admin_key, created = ensure_local_admin_key(keys, settings.admin_key_file)
        store = open_store(settings)
        broker: BrokerThread | None = None
        try:
            broker, address = _start_broker(settings, registry)
            worker = IngestWorker(
                store=store,
                trials=registry,
                broker=address,
                settings=settings,
                mqtt_version="5" if broker is None else "3.1.1",  # amqtt speaks 3.1.1 only
            )
            worker.start(timeout=15.0)
            platform = cls(
                settings=settings,
                registry=registry,
                store=store,
                broker_address=address,
                api_url="",
                worker=worker,
                broker=broker,
                admin_key=admin_key,
                admin_key_created=created,
            )
        except BaseException:
            if broker is not None:
                broker.stop()
            store.close()
            raise
        try:
            platform._start_api()
            if simulation is not None:
                platform._start_simulators(simulation)
        except BaseException:
            platform.stop()
            raise
        return platform

    def _start_api(self) -> None:
        keys = KeyRing(path=self.settings.api_keys_file)
        # /metrics of the API includes the ingest's: both run in this process.
        metrics = metrics_registry(lambda: self.worker.stats)
        app = create_app(
            store=self.store, trials=self.registry, settings=self.settings, keys=keys, metrics=metrics
        )
        port = self.settings.api_port or _free_port(self.settings.api_host)
        config = uvicorn.Config(
            app, host=self.settings.api_host, port=port, log_level="warning", access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="midika-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise MidikaError(f"the API did not start on {self.settings.api_host}:{port} (port in use?)")
            time.sleep(0.05)
        self._server = server
        self._threads.append(thread)
        self.api_url = f"http://{self.settings.api_host}:{port}"

    def _start_simulators(self, plan: SimulationPlan) -> None:
        wanted = plan.trials or tuple(t.id for t in self.registry.trials())
        start = plan.start or utcnow()
        demos = demo_scenarios() if plan.demos else {}
        for trial_id in wanted:
            trial = self.registry.trial(trial_id)
            if trial is None:
                raise ConfigError(f"--trial {trial_id!r}: no such trial")
            seed = plan.seed
            faults: tuple[Fault, ...] = ()
            if plan.demos and trial.id in demos:
                scenario, _ = load_scenario(demos[trial.id], {t.id: t for t in self.registry.trials()})
                seed, faults = scenario.seed, tuple(scenario.fault_list())
            # Simulated devices get fresh secrets each run; the registry keeps only the hashes.
            device_secrets = {d.id: self.registry.issue_secret(trial.id, d.id) for d in trial.devices}
            runner = SimulationRunner(
                trial=trial,
                # Each simulated device logs in with its own id and secret, like real firmware.
                broker=BrokerAddress(host=self.broker_address.host, port=self.broker_address.port),
                secrets=device_secrets,
                seed=seed,
                start=start,
                speed=plan.speed,
                truth=self.settings.data_dir / f"truth-{trial.id}.ndjson",
                faults=faults,
            )
            thread = threading.Thread(
                target=runner.run,
                kwargs={"duration": None, "stop": self._sim_stop},
                name=f"sim-{trial.id}",
                daemon=True,
            )
            thread.start()
            self.simulators.append(runner)
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop simulators, drain the ingest, stop the API and broker, close the store."""
        self._sim_stop.set()
        for thread in self._threads:
            if thread.name.startswith("sim-"):
                thread.join(timeout=10.0)
        try:
            self.worker.stop()
        except MidikaError as exc:  # stopping must go on: the store still has to close
            log.error("ingest did not stop cleanly: %s", exc)
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            if thread.name == "midika-api":
                thread.join(timeout=10.0)
        if self.broker is not None:
            self.broker.stop()
        self.store.close()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until the ingest has written everything it received."""
        self.worker.wait_idle(timeout=timeout)


def _start_broker(settings: Settings, registry: Registry) -> tuple[BrokerThread | None, BrokerAddress]:
    if settings.broker_url is not None:
        address = BrokerAddress.parse(settings.broker_url, key="MIDIKA_BROKER_URL")
        password = settings.ingest_password.get_secret_value() if settings.ingest_password else None
        return None, address.with_credentials(settings.ingest_username, password or address.password)
    # The embedded broker lives as long as this process: its service passwords need not outlive it.
    ingest_password = secrets.token_urlsafe(24)
    port = settings.broker_port or _free_port(settings.broker_host)
    broker = BrokerThread(
        host=settings.broker_host,
        port=port,
        credentials=registry,
        service_accounts={
            settings.ingest_username: ServiceAccount(password=ingest_password, role=Role.INGEST),
        },
    )
    broker.start(timeout=15.0)
    address = BrokerAddress(
        host=settings.broker_host,
        port=broker.port,
        username=settings.ingest_username,
        password=ingest_password,
    )
    return broker, address


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
