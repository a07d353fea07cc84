"""The store interface and its adapters (embedded DuckDB; InfluxDB for production)."""

from midika.store.base import (
    AggregateQuery,
    Bucket,
    EventQuery,
    Page,
    QuarantineQuery,
    ReadingQuery,
    Store,
    WriteResult,
)

__all__ = [
    "AggregateQuery",
    "Bucket",
    "EventQuery",
    "Page",
    "QuarantineQuery",
    "ReadingQuery",
    "Store",
    "WriteResult",
]
