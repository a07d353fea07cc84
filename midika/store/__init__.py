"""The store interface and its adapters (embedded DuckDB; InfluxDB for production)."""

from midika.store.base import (
    AggregateQuery,
    Bucket,
    EventCount,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    ReadingStats,
    StatsQuery,
    Store,
    WriteResult,
)

__all__ = [
    "AggregateQuery",
    "Bucket",
    "EventCount",
    "EventQuery",
    "Page",
    "QuarantineQuery",
    "ReadingQuery",
    "ReadingStats",
    "StatsQuery",
    "Store",
    "WriteResult",
]
