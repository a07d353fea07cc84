"""The same seed sends the same bytes; anything else that changes the output is a bug."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from midika.models.trial import Trial
from simulators.messages import SimMessage, messages
from tests.conftest import REPO
from tests.simulators.conftest import AUGUST

HALF_DAY = AUGUST + timedelta(hours=12)


def digest(stream: list[SimMessage]) -> str:
    h = hashlib.sha256()
    for m in stream:
        h.update(f"{m.topic}|{m.qos}|{m.retain}|{m.time.isoformat()}|".encode())
        h.update(m.payload)
    return h.hexdigest()


@pytest.mark.parametrize("trial_id", ["onjuku-rip", "goto-tuna"])
def test_same_seed_same_bytes(trial_id: str, onjuku: Trial, goto: Trial) -> None:
    trial = onjuku if trial_id == "onjuku-rip" else goto
    first = list(messages(trial, 7, AUGUST, HALF_DAY))
    second = list(messages(trial, 7, AUGUST, HALF_DAY))
    assert len(first) > 100
    assert [m.payload for m in first] == [m.payload for m in second]
    assert first == second


def test_different_seed_different_bytes(goto: Trial) -> None:
    one = list(messages(goto, 1, AUGUST, HALF_DAY))
    two = list(messages(goto, 2, AUGUST, HALF_DAY))
    # Same schedule shape, different weather and noise.
    assert [m.topic for m in one][:20] != [] and digest(one) != digest(two)
    payloads_one = {m.payload for m in one if m.kind == "up"}
    payloads_two = {m.payload for m in two if m.kind == "up"}
    assert len(payloads_one & payloads_two) < len(payloads_one) / 10


def test_stable_across_processes(goto: Trial) -> None:
    """No dependence on Python's per-process string hashing (PYTHONHASHSEED)."""
    here = digest(list(messages(goto, 3, AUGUST, AUGUST + timedelta(hours=3))))
    script = (
        "import hashlib, yaml, datetime as dt\n"
        "from midika.models.trial import Trial\n"
        "from simulators.messages import messages\n"
        "from tests.simulators.test_determinism import digest\n"
        "t = Trial.model_validate(yaml.safe_load(open('trials/goto-tuna.yaml', encoding='utf-8')))\n"
        "s = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)\n"
        "print(digest(list(messages(t, 3, s, s + dt.timedelta(hours=3)))))\n"
    )
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here


def test_longer_run_starts_with_the_shorter_one(onjuku: Trial) -> None:
    short = list(messages(onjuku, 5, AUGUST, AUGUST + timedelta(minutes=90)))
    long = list(messages(onjuku, 5, AUGUST, AUGUST + timedelta(hours=3)))
    assert short == long[: len(short)]
    assert all(m.time < AUGUST + timedelta(minutes=90) for m in short)
    assert long[len(short)].time >= AUGUST + timedelta(minutes=90)


def test_a_subset_of_devices_sends_what_it_sends_in_the_full_run(goto: Trial) -> None:
    picked = ["goto-cage02-wq-05m", "goto-feeder-01"]
    full = [m for m in messages(goto, 9, AUGUST, HALF_DAY) if m.device in picked]
    alone = list(messages(goto, 9, AUGUST, HALF_DAY, devices=picked))
    assert alone == full
    assert {m.device for m in alone} == set(picked)


def test_device_streams_are_ordered_and_numbered(onjuku: Trial) -> None:
    last_time: dict[str, object] = {}
    seqs: dict[str, list[int]] = {}
    for m in messages(onjuku, 1, AUGUST, AUGUST + timedelta(hours=2)):
        assert m.topic == f"midika/v1/onjuku-rip/{m.device}/{m.kind}"
        assert m.qos == 1 and m.retain == (m.kind == "status")
        body = json.loads(m.payload)
        assert body["ts"].endswith("Z") and m.time.isoformat().startswith(body["ts"][:19])
        prev = last_time.get(m.device)
        assert prev is None or m.time >= prev  # type: ignore[operator]
        last_time[m.device] = m.time
        if m.kind != "status":
            seqs.setdefault(m.device, []).append(body["seq"])
    for device, numbers in seqs.items():
        assert numbers == list(range(len(numbers))), device
