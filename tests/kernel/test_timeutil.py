"""Device timestamps: every accepted form, and a clear ValueError for everything else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from midika.timeutil import parse_timestamp, to_rfc3339

EXPECTED = datetime(2026, 7, 1, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-07-01T03:04:05Z",
        "2026-07-01T12:04:05+09:00",
        "2026-07-01t03:04:05z",
        EXPECTED.timestamp(),
        int(EXPECTED.timestamp()),
        int(EXPECTED.timestamp() * 1000),
    ],
)
def test_accepted_forms(raw: object) -> None:
    assert parse_timestamp(raw) == EXPECTED


@pytest.mark.parametrize(
    "raw",
    [
        "2026-07-01T03:04:05",  # no offset
        "yesterday",
        True,
        None,
        -1,
        float("nan"),
        float("inf"),
        10**30,
        "9999-12-31T23:59:59-01:00",
        [2026],
    ],
)
def test_rejected_forms_raise_value_error(raw: object) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(raw)


def test_rfc3339_round_trip() -> None:
    assert to_rfc3339(EXPECTED) == "2026-07-01T03:04:05Z"
    assert parse_timestamp(to_rfc3339(EXPECTED)) == EXPECTED
