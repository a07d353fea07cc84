"""The registry: lookups, issuing and revoking credentials, verification across processes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.credentials import verify_secret
from devices.registry import Registry
from midika.errors import ConfigError, NotFound, TrialError
from tests.conftest import REPO
from tests.devices.factories import make_trial

ITERATIONS = 1000  # the settings' minimum: enough to exercise PBKDF2, fast enough for tests
ISSUED = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "registry.json"


@pytest.fixture
def registry(state_file: Path) -> Registry:
    return _registry(state_file)


def _registry(state_file: Path) -> Registry:
    trials = [make_trial("alpha", devices=("alpha-01", "alpha-02")), make_trial("beta", devices=("beta-01",))]
    return Registry.from_trials(trials, state_file=state_file, iterations=ITERATIONS, clock=lambda: ISSUED)


@pytest.fixture
def pbkdf2_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts PBKDF2 derivations, to see what the verification cache saves."""
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None) -> bytes:
        calls.append(iterations)
        return real(name, password, salt, iterations, dklen)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    return calls


def test_lookups(registry: Registry) -> None:
    assert [t.id for t in registry.trials()] == ["alpha", "beta"]
    beta = registry.trial("beta")
    assert beta is not None and beta.id == "beta"
    assert registry.trial("gamma") is None
    found = registry.find_device("beta-01")
    assert found is not None and (found[0].id, found[1].id) == ("beta", "beta-01")
    assert registry.find_device("beta-02") is None


def test_device_ids_must_be_unique_across_trials(state_file: Path) -> None:
    trials = [make_trial("alpha", devices=("shared",)), make_trial("beta", devices=("shared",))]
    with pytest.raises(TrialError, match=r"device id 'shared' is also declared at trial 'alpha'"):
        Registry.from_trials(trials, state_file=state_file)


def test_trial_ids_must_be_unique(state_file: Path) -> None:
    trials = [make_trial("alpha", devices=("a-1",)), make_trial("alpha", devices=("a-2",))]
    with pytest.raises(TrialError, match=r"trial id 'alpha' is also declared"):
        Registry.from_trials(trials, state_file=state_file)


def test_issue_then_verify(registry: Registry, state_file: Path) -> None:
    secret = registry.issue_secret("alpha", "alpha-01")
    assert registry.verify("alpha-01", secret)
    assert not registry.verify("alpha-01", secret + "x")
    assert not registry.verify("alpha-02", secret)  # another device of the same trial
    assert not registry.verify("nobody", secret)


def test_state_file_holds_only_the_hash(registry: Registry, state_file: Path) -> None:
    secret = registry.issue_secret("alpha", "alpha-01")
    text = state_file.read_text()
    assert secret not in text
    entry = json.loads(text)["credentials"]["alpha-01"]
    assert entry["trial"] == "alpha"
    assert entry["issued_at"] == ISSUED.isoformat()
    assert verify_secret(secret, entry["hash"])
    assert entry["hash"] == registry.credential_hash("alpha-01")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert not list(state_file.parent.glob("*.tmp"))  # the temporary file was renamed, not left behind


def test_reissue_replaces_the_old_secret(registry: Registry) -> None:
    old = registry.issue_secret("alpha", "alpha-01")
    new = registry.issue_secret("alpha", "alpha-01")
    assert old != new
    assert registry.verify("alpha-01", new)
    assert not registry.verify("alpha-01", old)


def test_revoke(registry: Registry) -> None:
    secret = registry.issue_secret("alpha", "alpha-01")
    assert registry.revoke("alpha", "alpha-01") is True
    assert not registry.verify("alpha-01", secret)
    assert registry.credential_hash("alpha-01") is None
    assert registry.revoke("alpha", "alpha-01") is False


@pytest.mark.parametrize(
    ("trial", "device", "message"),
    [
        ("gamma", "alpha-01", r"no trial 'gamma' \(known trials: alpha, beta\)"),
        ("alpha", "alpha-09", r"trial 'alpha' has no device 'alpha-09' \(its devices: alpha-01, alpha-02\)"),
        ("alpha", "beta-01", r"device 'beta-01' belongs to trial 'beta', not 'alpha'"),
    ],
)
def test_unknown_trial_or_device(registry: Registry, trial: str, device: str, message: str) -> None:
    with pytest.raises(NotFound, match=message):
        registry.issue_secret(trial, device)
    with pytest.raises(NotFound, match=message):
        registry.revoke(trial, device)


def test_another_process_sees_new_credentials(registry: Registry, state_file: Path) -> None:
    broker_side = _registry(state_file)
    assert not broker_side.verify("alpha-01", "anything")  # reads the (missing) state once
    secret = registry.issue_secret("alpha", "alpha-01")
    assert broker_side.verify("alpha-01", secret)
    registry.revoke("alpha", "alpha-01")
    assert not broker_side.verify("alpha-01", secret)  # the cached success is forgotten too


def test_successful_logins_are_cached(registry: Registry, pbkdf2_calls: list[int]) -> None:
    secret = registry.issue_secret("alpha", "alpha-01")
    pbkdf2_calls.clear()
    assert registry.verify("alpha-01", secret)
    assert registry.verify("alpha-01", secret)
    assert registry.verify("alpha-01", secret)
    assert pbkdf2_calls == [ITERATIONS]
    assert not registry.verify("alpha-01", "wrong")
    assert not registry.verify("alpha-01", "wrong")
    assert len(pbkdf2_calls) == 3  # failures are never cached
    registry.issue_secret("alpha", "alpha-02")  # any change of state empties the cache
    pbkdf2_calls.clear()
    assert registry.verify("alpha-01", secret)
    assert len(pbkdf2_calls) == 1


def test_credential_of_a_device_that_moved_trial_is_stale(tmp_path: Path) -> None:
    state_file = tmp_path / "registry.json"
    before = Registry.from_trials([make_trial("alpha", devices=("dev",))], state_file=state_file)
    secret = before.issue_secret("alpha", "dev")
    after = Registry.from_trials([make_trial("beta", devices=("dev",))], state_file=state_file)
    assert after.credential("dev") is None
    assert not after.verify("dev", secret)


def test_unknown_state_is_kept(tmp_path: Path) -> None:
    # A credential of a device no longer in any trial file stays in the file (the device may return).
    state_file = tmp_path / "registry.json"
    Registry.from_trials([make_trial("alpha", devices=("old", "new"))], state_file=state_file).issue_secret(
        "alpha", "old"
    )
    fewer = Registry.from_trials([make_trial("alpha", devices=("new",))], state_file=state_file)
    fewer.issue_secret("alpha", "new")
    assert set(json.loads(state_file.read_text())["credentials"]) == {"old", "new"}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"version": 99, "credentials": {}}',
        '{"version": 1, "credentials": {"d": {"trial": "t"}}}',
    ],
)
def test_corrupt_state_file_names_the_file(registry: Registry, state_file: Path, content: str) -> None:
    state_file.parent.mkdir(parents=True)
    state_file.write_text(content)
    with pytest.raises(ConfigError, match=r"registry\.json"):
        registry.verify("alpha-01", "pw")


def test_bad_hash_in_state_names_the_device(registry: Registry, state_file: Path) -> None:
    state_file.parent.mkdir(parents=True)
    entry = {"trial": "alpha", "hash": "$6$plain", "issued_at": ISSUED.isoformat()}
    state_file.write_text(json.dumps({"version": 1, "credentials": {"alpha-01": entry}}))
    with pytest.raises(ConfigError, match=r"credentials\.alpha-01: not a mosquitto \$7\$"):
        registry.credential("alpha-01")


def _issue_many(state_file: Path, devices: list[str], rounds: int) -> dict[str, str]:
    registry = Registry.load(trials_dir=REPO / "trials", state_file=state_file, iterations=ITERATIONS)
    last: dict[str, str] = {}
    for _ in range(rounds):
        for device in devices:
            found = registry.find_device(device)
            assert found is not None
            last[device] = registry.issue_secret(found[0].id, device)
    return last


def test_concurrent_writers_lose_nothing(state_file: Path) -> None:
    groups = [
        ["onjuku-cam-01", "onjuku-cam-02", "onjuku-buoy-01"],
        ["goto-cage01-wq-01m", "goto-cage02-wq-20m", "goto-feeder-01"],
        ["onjuku-cam-03", "goto-cage01-plankton"],
    ]
    context = multiprocessing.get_context("fork")
    with context.Pool(len(groups)) as pool:
        issue: Callable[..., dict[str, str]] = _issue_many
        results = pool.starmap(issue, [(state_file, group, 8) for group in groups])
    registry = Registry.load(trials_dir=REPO / "trials", state_file=state_file, iterations=ITERATIONS)
    for last in results:
        for device, secret in last.items():
            assert registry.verify(device, secret), device
    stored = json.loads(state_file.read_text())["credentials"]
    assert set(stored) == {d for group in groups for d in group}
