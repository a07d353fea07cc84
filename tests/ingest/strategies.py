"""Hypothesis strategies for MQTT messages a broken or hostile device might send: topics and payloads."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.ingest.helpers import BUOY, CAM

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2026-07-20T09:00:00Z", "9999-12-31T23:59:59-01:00", "hs", "m", "onjuku-buoy-01/"]),
    # Times before the Unix epoch: RFC 3339 ones, and a number that is 1906 as an epoch time and,
    # as a SenML time, reaches from a 2026 receipt back to 1962.
    st.sampled_from(["1969-12-31T23:59:59Z", "1600-01-01T00:00:00Z", -2_000_000_000]),
)
keys = st.sampled_from(
    [
        *("ts", "seq", "values", "type", "data", "online", "battery", "rssi", "firmware", "uptime"),
        *("bn", "bt", "bu", "bver", "n", "u", "v", "vs", "vb", "t", "ut", "s", "hs", "tp", "glare_score"),
    ]
)
json_ = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)
topics = st.one_of(
    st.sampled_from([BUOY + "/up", CAM + "/up", CAM + "/evt", CAM + "/status"]),
    st.text(max_size=60),
    st.builds(
        "midika/v1/{}/{}/{}".format,
        st.sampled_from(["onjuku-rip", "goto-tuna", "x", "", "+"]),
        st.sampled_from(["onjuku-cam-01", "onjuku-buoy-01", "goto-feeder-01", "nope", "#"]),
        st.sampled_from(["up", "evt", "status", "down", "", "up/x"]),
    ),
)


names = st.sampled_from(["hs", "tp", "tide", "glare_score", "persons_in_water", "rip_index", "x"])
reading = st.fixed_dictionaries(
    {"values": st.dictionaries(names, json_leaf, min_size=1, max_size=3)},
    optional={"ts": json_leaf, "seq": json_leaf},
)
senml_record = st.fixed_dictionaries(
    {"n": names, "v": json_leaf},
    optional={"bn": json_leaf, "bt": json_leaf, "t": json_leaf, "u": json_leaf, "bu": json_leaf},
)
near_valid = st.one_of(reading, st.lists(reading, min_size=1, max_size=4), st.lists(senml_record, max_size=4))


def encode(doc: Any) -> bytes:
    """JSON text as a device would send it, NaN and infinities included."""
    return json.dumps(doc, allow_nan=True).encode()


payloads = st.one_of(st.binary(max_size=200), json_.map(encode), near_valid.map(encode))
