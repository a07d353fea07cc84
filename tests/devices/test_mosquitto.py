"""Mosquitto with per-device logins: the exported files, and the shipped mosquitto.conf running them.

The broker tests run the real mosquitto on deploy/mosquitto/mosquitto.conf with only its ports and
paths moved into a temporary folder, so they check the production configuration, not a test one.
Whatever must not arrive is checked by sending a legitimate message after it: the subscriber sees
that one, and so would have seen the forbidden one first.
"""

from __future__ import annotations

import getpass
import os
import queue
import re
import secrets
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from typer.testing import CliRunner

from devices.cli import app
from devices.credentials import verify_secret
from devices.mosquitto import ServiceLogin, export, ingest_login, read_password_file, render
from devices.registry import Registry
from midika.errors import ConfigError
from midika.settings import Settings
from tests.conftest import REPO, free_port, require_program
from tests.devices.factories import make_trial, trial_data, write_trial
from tests.servers import Mosquitto

pytestmark = pytest.mark.servers

CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
INGEST = "midika-ingest"
INGEST_PASSWORD = secrets.token_urlsafe(24)
ITERATIONS = 1000
WAIT_S = 10.0
MAX_PAYLOAD = Settings.model_fields["max_payload_bytes"].default


def topic(trial: str, device: str, kind: str) -> str:
    return f"midika/v1/{trial}/{device}/{kind}"


# -- the fleet: two trials, one device of which has no credentials ---------------------------------


@dataclass(frozen=True)
class Fleet:
    registry: Registry
    passwords: dict[str, str]  # every login that should work, the ingest's included


def make_fleet(folder: Path) -> Fleet:
    trials = [
        make_trial("alpha", devices=("alpha-02", "alpha-01", "alpha-03")),
        make_trial("beta", devices=("beta-01",)),
    ]
    registry = Registry.from_trials(trials, state_file=folder / "registry.json", iterations=ITERATIONS)
    passwords = {
        d: registry.issue_secret(t, d)
        for t, d in [("alpha", "alpha-01"), ("alpha", "alpha-02"), ("beta", "beta-01")]
    }
    return Fleet(registry=registry, passwords={**passwords, INGEST: INGEST_PASSWORD})


def export_fleet(fleet: Fleet, out: Path, *, password: str = INGEST_PASSWORD) -> None:
    export(
        fleet.registry,
        out=out,
        ingest=ServiceLogin(username=INGEST, password=password),
        iterations=ITERATIONS,
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return make_fleet(tmp_path_factory.mktemp("fleet"))


# -- the export ------------------------------------------------------------------------------------


def test_export_writes_sorted_byte_stable_files_whose_hashes_verify(fleet: Fleet, tmp_path: Path) -> None:
    export_fleet(fleet, tmp_path)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert stat.S_IMODE(acl.stat().st_mode) == 0o644
    first = passwd.read_bytes(), acl.read_bytes()

    lines = passwd.read_text().splitlines()
    users = [line.split(":", 1)[0] for line in lines]
    assert users == sorted(users) == ["alpha-01", "alpha-02", "beta-01", INGEST]
    hashes = read_password_file(passwd)
    for user, password in fleet.passwords.items():
        assert re.fullmatch(r"\$7\$1000\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", hashes[user])
        assert verify_secret(password, hashes[user]), user
        if user != INGEST:
            assert hashes[user] == fleet.registry.credential_hash(user)
    assert "alpha-03" not in passwd.read_text()
    assert "# No credentials issued, so no access: alpha-03\n" in acl.read_text()
    assert "user alpha-03" not in acl.read_text()

    export_fleet(fleet, tmp_path)  # the ingest's hash is kept while its password is unchanged
    assert (passwd.read_bytes(), acl.read_bytes()) == first
    assert not list(tmp_path.glob(".*.tmp"))

    export_fleet(fleet, tmp_path, password="another long ingest password")
    changed = read_password_file(passwd)
    assert verify_secret("another long ingest password", changed[INGEST])
    assert {u: h for u, h in changed.items() if u != INGEST} == {
        u: h for u, h in hashes.items() if u != INGEST
    }


def test_acl_pins_every_device_to_its_own_trial(fleet: Fleet) -> None:
    acl = render(
        fleet.registry, ingest=ServiceLogin(username=INGEST, password=INGEST_PASSWORD), iterations=ITERATIONS
    ).acl
    assert "pattern" not in acl.replace("`pattern` lines", "")
    assert (
        "user midika-ingest\n"
        "topic read midika/v1/+/+/up\n"
        "topic read midika/v1/+/+/evt\n"
        "topic read midika/v1/+/+/status\n"
        "topic write midika/v1/+/+/down\n"
    ) in acl
    assert (
        "# Trial alpha\n"
        "user alpha-01\n"
        "topic write midika/v1/alpha/alpha-01/up\n"
        "topic write midika/v1/alpha/alpha-01/evt\n"
        "topic write midika/v1/alpha/alpha-01/status\n"
        "topic read midika/v1/alpha/alpha-01/down\n"
        "user alpha-02\n"
    ) in acl
    assert "\n# Trial beta\nuser beta-01\n" in acl


def test_ingest_login_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    secret_file = tmp_path / "ingest-password"
    secret_file.write_text("from the file, long enough\n")
    settings = Settings.load(ingest_password="from the environment, long")
    assert ingest_login(settings, password_file=secret_file).password == "from the file, long enough"
    assert ingest_login(settings).password == "from the environment, long"
    assert ingest_login(settings).username == INGEST

    with pytest.raises(ConfigError, match="--ingest-password-file or set MIDIKA_INGEST_PASSWORD"):
        ingest_login(Settings.load(ingest_password=None))
    with pytest.raises(ConfigError, match="MIDIKA_INGEST_PASSWORD: the ingest password has 8 characters"):
        ingest_login(Settings.load(ingest_password="change-m"))
    with pytest.raises(ConfigError, match="MIDIKA_INGEST_USERNAME 'ingest:1' cannot be a mosquitto user"):
        ingest_login(Settings.load(ingest_username="ingest:1", ingest_password=INGEST_PASSWORD))
    with pytest.raises(ConfigError, match=r"--ingest-password-file .*missing: cannot read it"):
        ingest_login(settings, password_file=tmp_path / "missing")


def test_ingest_username_must_not_be_a_device(fleet: Fleet) -> None:
    with pytest.raises(ConfigError, match="'beta-01' is also a device of trial 'beta'"):
        render(
            fleet.registry,
            ingest=ServiceLogin(username="beta-01", password=INGEST_PASSWORD),
            iterations=ITERATIONS,
        )


def test_cli_exports_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MIDIKA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MIDIKA_TRIALS_DIR", str(tmp_path / "trials"))
    monkeypatch.setenv("MIDIKA_INGEST_PASSWORD", INGEST_PASSWORD)
    write_trial(tmp_path / "trials", trial_data("alpha", devices=("alpha-01", "alpha-02", "alpha-03")))
    runner = CliRunner()
    assert runner.invoke(app, ["credentials", "alpha", "alpha-02"]).exit_code == 0

    # As root, hand the files to mosquitto's user in the eclipse-mosquitto image; else to ourselves.
    owner = (1883, 1883) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    out = tmp_path / "conf"
    result = runner.invoke(app, ["export-mosquitto", "--out", str(out), "--owner", f"{owner[0]}:{owner[1]}"])

    assert result.exit_code == 0, result.output
    for name in ("passwd", "acl"):
        assert ((out / name).stat().st_uid, (out / name).stat().st_gid) == owner
    assert "midika-ingest and 1 device(s) with credentials" in result.stdout
    assert "2 devices have no credentials and cannot log in: alpha-01, alpha-03" in result.stderr
    assert sorted(read_password_file(tmp_path / "conf" / "passwd")) == ["alpha-02", INGEST]
    assert "--ingest-password-file" in runner.invoke(app, ["export-mosquitto", "--help"]).stdout
    bad_owner = runner.invoke(app, ["export-mosquitto", "--out", str(out), "--owner", "mosquitto"])
    assert bad_owner.exit_code == 2
    assert "'mosquitto' is not UID:GID" in bad_owner.output

    monkeypatch.delenv("MIDIKA_INGEST_PASSWORD")
    refused = runner.invoke(app, ["export-mosquitto", "--out", str(tmp_path / "other")])
    assert isinstance(refused.exception, ConfigError)
    assert not (tmp_path / "other").exists()


# -- the shipped mosquitto.conf, run by the real mosquitto -----------------------------------------


class ShippedMosquitto(Mosquitto):
    """deploy/mosquitto/mosquitto.conf with its ports and /mosquitto/... paths moved into `tmp`."""

    def __init__(self, *, tmp: Path, config_dir: Path, certs_dir: Path | None = None) -> None:
        super().__init__(tmp=tmp, password_file=config_dir / "passwd", acl_file=config_dir / "acl")
        self.config_dir = config_dir
        self.certs_dir = certs_dir
        self.tls_port = free_port() if certs_dir is not None else None

    def config(self) -> str:
        text = CONF.read_text(encoding="utf-8")
        moves = {
            "\nlistener 1883\n": f"\nlistener {self.port} {self.host}\n",
            "/mosquitto/config/": f"{self.config_dir}/",
            "/mosquitto/data/": f"{self.tmp}/data/",
        }
        if self.certs_dir is not None:
            text = enable_tls(text)
            moves["\nlistener 8883\n"] = f"\nlistener {self.tls_port} {self.host}\n"
            moves["/mosquitto/certs/"] = f"{self.certs_dir}/"
        for old, new in moves.items():
            assert old in text, f"{CONF} no longer has {old.strip()!r}: update this test with it"
            text = text.replace(old, new)
        (self.tmp / "data").mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # as root, mosquitto switches to user `mosquitto`, who cannot read tmp
            text += f"user {getpass.getuser()}\n"
        return text

    def reload(self) -> None:
        """SIGHUP: mosquitto rereads the password and ACL files."""
        assert self._process is not None
        self._process.send_signal(signal.SIGHUP)


def enable_tls(text: str) -> str:
    """Uncomment the settings between BEGIN TLS and END TLS, as the conf tells operators to."""
    head, begin, rest = text.partition("# BEGIN TLS")
    block, end, tail = rest.partition("# END TLS")
    assert begin and end, f"{CONF} has no BEGIN TLS ... END TLS block"
    enabled = re.sub(r"^#(?=[a-z])", "", block, flags=re.MULTILINE)
    assert "\nlistener 8883\n" in enabled
    return head + begin + enabled + end + tail


def make_certificates(folder: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    openssl = require_program("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    for command in (
        f"req -x509 {key} -keyout ca.key -out ca.crt -days 1 -subj /CN=midika-test-ca",
        f"req {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1"
        " -extfile san.ext",
    ):
        subprocess.run([openssl, *command.split()], cwd=folder, check=True, capture_output=True)
    return folder / "ca.crt"


def start_broker(fleet: Fleet, folder: Path, *, tls: bool = False) -> ShippedMosquitto:
    export_fleet(fleet, folder / "config")
    certs = folder / "certs" if tls else None
    if certs is not None:
        make_certificates(certs)
    server = ShippedMosquitto(tmp=folder / "mosquitto", config_dir=folder / "config", certs_dir=certs)
    server.start()
    return server


@pytest.fixture(scope="module")
def broker(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShippedMosquitto]:
    server = start_broker(fleet, tmp_path_factory.mktemp("broker"))
    yield server
    server.stop()


class Client:
    """A paho client, connected or refused, that keeps every message it receives in order."""

    def __init__(
        self,
        broker: ShippedMosquitto,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        tls_ca: Path | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.disconnected = threading.Event()
        self._connacks: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id if client_id is not None else username or "",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        if will is not None:
            self.mqtt.will_set(will[0], will[1], qos=1)
        if tls_ca is not None:
            self.mqtt.tls_set(ca_certs=str(tls_ca))
        self.mqtt.on_connect = lambda _c, _u, _f, code, _p: self._connacks.put(code)
        self.mqtt.on_message = lambda _c, _u, msg: self.inbox.put((msg.topic, bytes(msg.payload)))
        self.mqtt.on_subscribe = lambda _c, _u, _mid, codes, _p: self._subacks.put(codes)
        self.mqtt.on_disconnect = lambda *_: self.disconnected.set()
        port = broker.tls_port if tls_ca is not None else broker.port
        assert port is not None
        self.mqtt.connect(broker.host, port, keepalive=30)
        self.mqtt.loop_start()
        code = self._connacks.get(timeout=WAIT_S)
        if code.is_failure:
            self.close()  # or paho keeps reconnecting
            raise ConnectionRefusedError(str(code))

    def subscribe(self, *filters: str) -> list[ReasonCode]:
        """Subscribe at QoS 1 and return the SUBACK's codes."""
        self.mqtt.subscribe([(f, 1) for f in filters])
        return self._subacks.get(timeout=WAIT_S)

    def publish(self, topic_name: str, payload: bytes, *, timeout: float = WAIT_S) -> bool:
        """Publish at QoS 1; whether the PUBACK came (mosquitto acknowledges denied publishes too)."""
        info = self.mqtt.publish(topic_name, payload, qos=1)
        info.wait_for_publish(timeout)
        return info.is_published()

    def until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Every message received up to and including the first one carrying `payload`."""
        seen: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + WAIT_S
        while not seen or seen[-1][1] != payload:
            try:
                seen.append(self.inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{payload!r} did not arrive; got {seen}") from None
        return seen

    def drop(self) -> None:
        """Cut the TCP connection without a DISCONNECT, as a device losing power does."""
        self.mqtt.loop_stop()
        sock = self.mqtt.socket()
        assert isinstance(sock, socket.socket)
        sock.close()

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


Connect = Callable[..., Client]


@pytest.fixture
def connect(fleet: Fleet, broker: ShippedMosquitto) -> Iterator[Connect]:
    """Connects as a user (with its own password unless one is given); closes all after the test."""
    clients: list[Client] = []

    def make(
        username: str | None, password: str | None = None, *, on: ShippedMosquitto = broker, **options: object
    ) -> Client:
        secret = password if password is not None else fleet.passwords.get(username or "")
        client = Client(on, username, secret, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def ingest(connect: Connect) -> Client:
    client = connect(INGEST)
    granted = client.subscribe(*(topic("+", "+", kind) for kind in ("up", "evt", "status")))
    assert [code.value for code in granted] == [1, 1, 1]
    return client


def test_the_shipped_conf_runs_and_listens(broker: ShippedMosquitto) -> None:
    with socket.create_connection((broker.host, broker.port), timeout=WAIT_S):
        pass
    logs = broker.logs()
    assert f"Opening ipv4 listen socket on port {broker.port}." in logs
    assert "Error" not in logs


def test_a_device_publishes_and_the_ingest_receives(connect: Connect, ingest: Client) -> None:
    device = connect("alpha-01")
    for kind in ("up", "evt", "status"):
        assert device.publish(topic("alpha", "alpha-01", kind), f"{kind} 1".encode())

    assert ingest.until(b"status 1") == [
        (topic("alpha", "alpha-01", "up"), b"up 1"),
        (topic("alpha", "alpha-01", "evt"), b"evt 1"),
        (topic("alpha", "alpha-01", "status"), b"status 1"),
    ]


def test_a_device_cannot_publish_on_another_devices_or_trials_topics(
    connect: Connect, ingest: Client
) -> None:
    device = connect("alpha-01")
    forged = [
        topic("alpha", "alpha-02", "up"),  # another device of its trial
        topic("beta", "beta-01", "evt"),  # a device of another trial
        topic("beta", "alpha-01", "up"),  # its own id under another trial: what a %u pattern allows
        topic("alpha", "alpha-01", "down"),  # its own configuration topic
        "midika/v1/alpha/alpha-01/up/extra",
    ]
    for name in forged:
        device.publish(name, b"forged")
    device.publish(topic("alpha", "alpha-01", "up"), b"legit")

    assert ingest.until(b"legit") == [(topic("alpha", "alpha-01", "up"), b"legit")]


def test_the_ingest_cannot_forge_device_data(connect: Connect, ingest: Client) -> None:
    ingest.publish(topic("beta", "beta-01", "up"), b"forged")  # its own subscription would see it
    connect("beta-01").publish(topic("beta", "beta-01", "up"), b"legit")

    assert ingest.until(b"legit") == [(topic("beta", "beta-01", "up"), b"legit")]


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alpha-01", "wrong"),  # wrong password
        ("alpha-01", INGEST_PASSWORD),  # another account's password
        ("gamma-01", "whatever"),  # unknown user
        ("alpha-03", "whatever"),  # a device without credentials
        (None, None),  # anonymous
    ],
)
def test_bad_logins_are_refused(connect: Connect, username: str | None, password: str | None) -> None:
    with pytest.raises(ConnectionRefusedError):
        connect(username, password)


def test_a_device_reads_only_its_own_down(connect: Connect, ingest: Client) -> None:
    spy = connect("alpha-01")
    # mosquitto 2.0 grants any SUBSCRIBE and checks read access per delivered message instead.
    spy.subscribe(
        "#", "midika/v1/#", topic("+", "+", "up"), topic("alpha", "alpha-02", "down"), "$share/x/midika/v1/#"
    )
    connect("alpha-02").publish(topic("alpha", "alpha-02", "up"), b"neighbour's reading")
    ingest.publish(topic("alpha", "alpha-02", "down"), b"neighbour's configuration")
    ingest.publish(topic("alpha", "alpha-01", "down"), b"own configuration")

    assert spy.until(b"own configuration") == [(topic("alpha", "alpha-01", "down"), b"own configuration")]


def test_a_device_receives_its_own_down_from_the_ingest(connect: Connect) -> None:
    device = connect("beta-01")
    assert [c.value for c in device.subscribe(topic("beta", "beta-01", "down"))] == [1]
    assert connect(INGEST).publish(topic("beta", "beta-01", "down"), b'{"period_s": 60}')

    assert device.until(b'{"period_s": 60}') == [(topic("beta", "beta-01", "down"), b'{"period_s": 60}')]


def test_the_ingest_can_use_a_shared_subscription(connect: Connect) -> None:
    ingest = connect(INGEST)
    assert [c.value for c in ingest.subscribe("$share/ingest/midika/v1/+/+/up")] == [1]
    device = connect("alpha-02")
    device.publish(topic("alpha", "alpha-02", "evt"), b"not subscribed")
    device.publish(topic("alpha", "alpha-02", "up"), b"shared")

    assert ingest.until(b"shared") == [(topic("alpha", "alpha-02", "up"), b"shared")]


def test_a_device_cannot_take_over_the_ingests_session(connect: Connect, ingest: Client) -> None:
    # Without use_username_as_clientid the impostor would inherit the ingest's subscriptions and queue.
    impostor = connect("alpha-01", client_id=INGEST, clean_session=False)
    connect("beta-01").publish(topic("beta", "beta-01", "up"), b"after the impostor")

    assert ingest.until(b"after the impostor") == [(topic("beta", "beta-01", "up"), b"after the impostor")]
    assert not ingest.disconnected.is_set()
    assert impostor.inbox.empty()


def test_a_will_is_published_only_on_the_devices_own_topic(connect: Connect, ingest: Client) -> None:
    status = topic("alpha", "alpha-02", "status")
    connect("alpha-01", will=(status, b"forged will")).drop()
    connect("alpha-02", will=(status, b"offline")).drop()
    assert ingest.until(b"offline") == [(topic("alpha", "alpha-02", "status"), b"offline")]
    connect("beta-01").publish(topic("beta", "beta-01", "up"), b"later")  # after both wills were handled

    assert ingest.until(b"later") == [(topic("beta", "beta-01", "up"), b"later")]


def test_payloads_the_ingest_quarantines_still_reach_it(connect: Connect, ingest: Client) -> None:
    setting = re.search(r"^max_packet_size (\d+)$", CONF.read_text(), re.MULTILINE)
    assert setting is not None
    max_packet = int(setting[1])
    device = connect("alpha-01")
    too_large_for_the_ingest = b"x" * (MAX_PAYLOAD + 1)
    assert device.publish(topic("alpha", "alpha-01", "up"), too_large_for_the_ingest)
    assert ingest.until(too_large_for_the_ingest)[-1][0] == topic("alpha", "alpha-01", "up")

    # Beyond max_packet_size mosquitto disconnects the sender before acknowledging: it can tell.
    assert not device.publish(topic("alpha", "alpha-01", "up"), b"x" * max_packet, timeout=3.0)
    assert device.disconnected.wait(WAIT_S)
    connect("alpha-02").publish(topic("alpha", "alpha-02", "up"), b"small")
    assert ingest.until(b"small") == [(topic("alpha", "alpha-02", "up"), b"small")]


def test_revoked_credentials_are_cut_off_on_reload(
    fleet_copy: Fleet, tmp_path: Path, connect: Connect
) -> None:
    server = start_broker(fleet_copy, tmp_path)
    try:
        revoked = connect("alpha-02", fleet_copy.passwords["alpha-02"], on=server)
        kept = connect("alpha-01", fleet_copy.passwords["alpha-01"], on=server)
        fleet_copy.registry.revoke("alpha", "alpha-02")
        export_fleet(fleet_copy, tmp_path / "config")
        server.reload()

        assert revoked.disconnected.wait(WAIT_S)
        with pytest.raises(ConnectionRefusedError):
            connect("alpha-02", fleet_copy.passwords["alpha-02"], on=server)
        assert kept.publish(topic("alpha", "alpha-01", "up"), b"still welcome")
        assert not kept.disconnected.is_set()
    finally:
        server.stop()


def test_messages_queued_for_the_ingest_survive_a_broker_restart(
    fleet_copy: Fleet, tmp_path: Path, connect: Connect
) -> None:
    server = start_broker(fleet_copy, tmp_path)
    try:
        away = connect(INGEST, fleet_copy.passwords[INGEST], on=server, clean_session=False)
        away.subscribe(topic("+", "+", "up"))
        away.close()
        device = connect("beta-01", fleet_copy.passwords["beta-01"], on=server)
        for n in range(3):
            assert device.publish(topic("beta", "beta-01", "up"), f"queued {n}".encode())
        device.close()
        server.stop()  # a clean stop saves the in-memory database
        server.start()

        back = connect(INGEST, fleet_copy.passwords[INGEST], on=server, clean_session=False)
        assert [p for _, p in back.until(b"queued 2")] == [b"queued 0", b"queued 1", b"queued 2"]
    finally:
        server.stop()


def test_the_tls_listener_serves_devices_once_certificates_are_given(
    fleet_copy: Fleet, tmp_path: Path, connect: Connect
) -> None:
    server = start_broker(fleet_copy, tmp_path, tls=True)
    try:
        assert server.tls_port is not None
        context = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.crt"))
        with (
            socket.create_connection((server.host, server.tls_port), timeout=WAIT_S) as raw,
            context.wrap_socket(raw, server_hostname=server.host) as tls,
        ):
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        ingest = connect(INGEST, fleet_copy.passwords[INGEST], on=server)
        ingest.subscribe(topic("+", "+", "up"))
        device = connect(
            "alpha-01", fleet_copy.passwords["alpha-01"], on=server, tls_ca=tmp_path / "certs" / "ca.crt"
        )
        assert device.publish(topic("alpha", "alpha-01", "up"), b"over tls")
        assert ingest.until(b"over tls") == [(topic("alpha", "alpha-01", "up"), b"over tls")]
    finally:
        server.stop()


@pytest.fixture
def fleet_copy(tmp_path: Path) -> Fleet:
    """A fleet of the test's own, for tests that revoke credentials or restart the broker."""
    return make_fleet(tmp_path / "fleet")
