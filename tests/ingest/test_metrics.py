"""The ingest's Prometheus collector: each IngestStats field under its name, histograms cumulative."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics import metrics_registry
from ingest.stats import LATENCY_BOUNDS_S, IngestStats, Latency
from midika import __version__
from midika.models.records import QuarantineReason


def test_every_counter_from_one_snapshot() -> None:
    counts = [0] * len(LATENCY_BOUNDS_S)
    counts[0], counts[3] = 2, 1  # two writes ≤ 1 ms, one ≤ 10 ms
    stats = IngestStats(
        received=10,
        pending=2,
        readings_stored=40,
        duplicates=3,
        events_stored=1,
        event_duplicates=4,
        status_stored=5,
        quarantined={QuarantineReason.UNPARSEABLE: 2},
        lost=0,
        recovered=6,
        unacked=7,
        accepted=8,
        spooled=9,
        replayed=11,
        spool_bytes=12_345,
        connected=True,
        write_latency=Latency(counts=tuple(counts), over=1, total=4, sum_s=12.5),
    )
    text = generate_latest(metrics_registry(lambda: stats)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("midika_ingest_messages_received_total", ())] == 10
    assert samples[("midika_ingest_readings_stored_total", ())] == 40
    assert samples[("midika_ingest_duplicates_total", (("kind", "reading"),))] == 3
    assert samples[("midika_ingest_duplicates_total", (("kind", "event"),))] == 4
    assert samples[("midika_ingest_quarantined_total", (("reason", "unparseable"),))] == 2
    assert samples[("midika_ingest_quarantined_total", (("reason", "bad_topic"),))] == 0
    assert samples[("midika_ingest_pending", ())] == 2
    assert samples[("midika_ingest_recovered_total", ())] == 6
    assert samples[("midika_ingest_unacked", ())] == 7
    assert samples[("midika_ingest_messages_accepted_total", ())] == 8
    assert samples[("midika_ingest_spooled_total", ())] == 9
    assert samples[("midika_ingest_replayed_total", ())] == 11
    assert samples[("midika_ingest_spool_bytes", ())] == 12_345
    assert samples[("midika_ingest_connected", ())] == 1
    assert samples[("midika_ingest_write_seconds_bucket", (("le", "0.001"),))] == 2
    assert samples[("midika_ingest_write_seconds_bucket", (("le", "0.01"),))] == 3
    assert samples[("midika_ingest_write_seconds_bucket", (("le", "10.0"),))] == 3
    assert samples[("midika_ingest_write_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("midika_ingest_write_seconds_sum", ())] == 12.5
    assert samples[("midika_build_info", (("version", __version__),))] == 1


def test_without_an_ingest_only_build_info() -> None:
    text = generate_latest(metrics_registry()).decode()
    assert "midika_build_info" in text and "midika_ingest" not in text
