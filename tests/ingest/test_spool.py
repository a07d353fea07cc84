"""The outage spool on a real file system: order, durability rules, torn tails, bounds, one owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import IngestError
from ingest.message import RawMessage
from ingest.spool import Spool, encode

T0 = datetime(2026, 7, 20, 3, 0, tzinfo=UTC)


def messages(count: int, *, start: int = 0) -> list[RawMessage]:
    return [
        RawMessage(
            topic=f"midika/v1/onjuku-rip/cam-{i % 3}/up",
            payload=b'{"values": {"persons_in_water": %d}}' % i,
            received=T0 + timedelta(microseconds=137 * i),
        )
        for i in range(start, start + count)
    ]


def drain(spool: Spool) -> list[RawMessage]:
    out: list[RawMessage] = []
    while (segment := spool.oldest()) is not None:
        out.extend(segment.messages)
        spool.drop(segment)
    return out


def test_replays_in_order_across_segments_and_frees_the_disk(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path, max_bytes=10_000_000, segment_bytes=2_000)
    sent = messages(200)
    for i in range(0, 200, 7):
        assert spool.append(sent[i : i + 7])
    assert len(list(tmp_path.glob("*.spool"))) > 3  # it rolled over
    assert not spool.empty and spool.size_bytes == sum(len(encode(m)) for m in sent)
    assert drain(spool) == sent
    assert spool.empty and spool.size_bytes == 0 and not list(tmp_path.glob("*.spool"))


def test_odd_topics_payloads_and_times_survive_the_round_trip(tmp_path: Path) -> None:
    odd = [
        RawMessage(topic="midika/v1/t/d/up", payload=b"", received=T0),
        RawMessage(topic="bad\udcfftopic/\u6e29\u5ea6", payload=bytes(range(256)) * 10, received=T0),
        RawMessage(topic="", payload=b"\x00", received=datetime(1970, 1, 1, tzinfo=UTC)),
    ]
    spool = Spool(directory=tmp_path, max_bytes=1 << 20)
    assert spool.append(odd)
    assert drain(spool) == odd


def test_a_restart_recovers_what_an_earlier_run_left(tmp_path: Path) -> None:
    first = Spool(directory=tmp_path, max_bytes=1 << 20, segment_bytes=500)
    assert first.append(messages(30))
    first.close()
    second = Spool(directory=tmp_path, max_bytes=1 << 20, segment_bytes=500)
    assert second.recovered == 30
    assert second.append(messages(5, start=30))  # a fresh segment, after the old ones
    assert drain(second) == messages(35)


def test_a_torn_tail_is_skipped_and_the_frames_before_it_kept(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path, max_bytes=1 << 20)
    assert spool.append(messages(10))
    spool.close()
    (segment,) = tmp_path.glob("*.spool")
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # a crash in the middle of the last frame's write
    again = Spool(directory=tmp_path, max_bytes=1 << 20)
    read = again.oldest()
    assert read is not None and read.torn
    assert list(read.messages) == messages(9)


def test_a_corrupt_frame_ends_the_segment_there(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path, max_bytes=1 << 20)
    assert spool.append(messages(10))
    spool.close()
    (segment,) = tmp_path.glob("*.spool")
    data = bytearray(segment.read_bytes())
    third = sum(len(encode(m)) for m in messages(2))
    data[third + 12] ^= 0xFF  # a flipped bit inside the third frame's body: its crc no longer matches
    segment.write_bytes(bytes(data))
    read = Spool(directory=tmp_path, max_bytes=1 << 20).oldest()
    assert read is not None and read.torn and list(read.messages) == messages(2)


def test_full_refuses_the_whole_batch_and_writes_nothing(tmp_path: Path) -> None:
    one = len(encode(messages(1)[0]))
    spool = Spool(directory=tmp_path, max_bytes=one * 10)
    assert spool.append(messages(8))
    size = spool.size_bytes
    assert not spool.append(messages(3, start=8))
    assert spool.size_bytes == size
    assert spool.append(messages(2, start=8))  # what fits still goes in
    assert drain(spool) == messages(10)
    assert spool.append(messages(10))  # room again once replayed


def test_one_spool_folder_has_one_owner(tmp_path: Path) -> None:
    owner = Spool(directory=tmp_path, max_bytes=1 << 20)
    with pytest.raises(IngestError, match="in use by another ingest worker"):
        Spool(directory=tmp_path, max_bytes=1 << 20)
    owner.close()
    Spool(directory=tmp_path, max_bytes=1 << 20).close()  # free again


def test_an_unusable_folder_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(IngestError, match="MIDIKA_INGEST_SPOOL_DIR"):
        Spool(directory=blocker / "spool", max_bytes=1 << 20)
