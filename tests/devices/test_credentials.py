"""Device secrets: the `$7$` format, and interoperability with the real mosquitto_passwd and mosquitto."""

from __future__ import annotations

import base64
import getpass
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.credentials import HASH_BYTES, SALT_BYTES, PasswordHash, hash_secret, new_secret, verify_secret
from tests.conftest import free_port, require_program

# Written by mosquitto_passwd 2.0.11 (`mosquitto_passwd -b -c file user pw`): a known answer that
# pins the format even where mosquitto is not installed.
MOSQUITTO_HASH_OF_PW = (
    "$7$101$+Rc0YP4WhbvTXMZN$K+TvN5tmQB1Dg5DT"
    "fEplEjIiRNcDeQN7Q8aWwT3QlN6EPGIGHHSDQPK6imb0GgFIsbWNf18YBuVlnUYphcrl/g=="
)
SEVEN = re.compile(r"^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


def test_hash_has_mosquitto_layout() -> None:
    encoded = hash_secret("secret", iterations=1234)
    match = SEVEN.match(encoded)
    assert match is not None, encoded
    assert match.group(1) == "1234"
    assert len(base64.b64decode(match.group(2), validate=True)) == SALT_BYTES == 12
    assert len(base64.b64decode(match.group(3), validate=True)) == HASH_BYTES == 64


def test_round_trip_and_wrong_secret() -> None:
    encoded = hash_secret("correct horse", iterations=1000)
    assert verify_secret("correct horse", encoded)
    assert not verify_secret("correct hors", encoded)
    assert not verify_secret("", encoded)


def test_salt_is_random() -> None:
    assert hash_secret("same", iterations=1000) != hash_secret("same", iterations=1000)


def test_non_ascii_secret() -> None:
    assert verify_secret("御宿の離岸流", hash_secret("御宿の離岸流", iterations=1000))


def test_known_mosquitto_hash_verifies() -> None:
    assert verify_secret("pw", MOSQUITTO_HASH_OF_PW)
    assert not verify_secret("pW", MOSQUITTO_HASH_OF_PW)


def test_parse_encode_round_trip() -> None:
    assert PasswordHash.parse(MOSQUITTO_HASH_OF_PW).encode() == MOSQUITTO_HASH_OF_PW


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("$6$abc$def", "not a mosquitto $7$"),
        ("$7$100$onlytwo", "three fields"),
        ("$7$x$AAAA$AAAA", "iterations"),
        ("$7$0$AAAA$AAAA", "iterations"),
        ("$7$100$!!!!$AAAA", "base64"),
        ("$7$100$AAAAAAAAAAAAAAAA$AAAA", "expected 64"),
    ],
)
def test_malformed_hash_is_rejected(encoded: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        verify_secret("pw", encoded)


def test_new_secrets_are_long_and_distinct() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in secrets)


def test_iterations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="iterations"):
        hash_secret("pw", iterations=0)


@pytest.mark.servers
def test_mosquitto_passwd_hash_verifies(tmp_path: Path) -> None:
    passwd = require_program("mosquitto_passwd")
    password_file = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(password_file), "dev", "s3cret:with$odd/chars"], check=True)
    user, encoded = password_file.read_text().strip().split(":", 1)
    assert user == "dev"
    assert verify_secret("s3cret:with$odd/chars", encoded)
    assert not verify_secret("s3cret", encoded)


def _start(binary: str, config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {proc.stdout.read() if proc.stdout else b''!r}"
                ) from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start listening")


def _connect(port: int, username: str, password: str) -> ReasonCode:
    """The CONNACK reason code mosquitto answers a login with."""
    result: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, props: object
    ) -> None:
        result.append(reason)
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{username}")
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK from mosquitto"
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0]


@pytest.mark.servers
def test_mosquitto_accepts_our_hash(tmp_path: Path) -> None:
    binary = require_program("mosquitto")
    port = free_port()
    password_file = tmp_path / "passwd"
    password_file.write_text(f"onjuku-cam-01:{hash_secret('field-secret', iterations=1000)}\n")
    config = tmp_path / "mosquitto.conf"
    # `user` keeps a root-started mosquitto from switching to an account that can't read tmp_path.
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {password_file}\n"
        f"persistence false\nuser {getpass.getuser()}\n"
    )
    proc = _start(binary, config, port)
    try:
        assert not _connect(port, "onjuku-cam-01", "field-secret").is_failure
        assert _connect(port, "onjuku-cam-01", "wrong-secret").is_failure
        assert _connect(port, "someone-else", "field-secret").is_failure
    finally:
        proc.terminate()
        proc.wait(10)
