"""hypothesis: random JSON-able payloads survive the trip through the client and mosquitto.

Uplink: what the peer receives parses to the object sent, with keys in the same order and ints
still ints (compared through ``json.dumps`` of both). Downlink: an attribute push arrives in the
callback as the same dict.
"""

from __future__ import annotations

import json

import pytest
from conftest import pump_until
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

TELEMETRY = "v1/devices/me/telemetry"
ATTRIBUTES = "v1/devices/me/attributes"

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(text, values, max_size=6)
# downlink JSON without floats: see test_attribute_push_float_is_exact for why
exact_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
exact_objects = st.dictionaries(text, exact_values, min_size=1, max_size=6)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def same_json(payload: bytes, obj) -> bool:
    return json.dumps(json.loads(payload)) == json.dumps(obj)


@PROPERTY
@given(obj=objects)
def test_telemetry_payload_round_trip(client, tb_peer, obj):
    # {"ts", "values"} together is the timestamped form, with its own rules
    assume(not ("ts" in obj and "values" in obj))
    mark = tb_peer.mark()
    assert client.send_telemetry(obj).wait(5) is True
    msg = tb_peer.wait_for(TELEMETRY, since=mark)
    assert same_json(msg.payload, obj), (msg.payload, obj)


@PROPERTY
@given(obj=objects)
def test_attributes_payload_round_trip(client, tb_peer, obj):
    mark = tb_peer.mark()
    assert client.send_attributes(obj).wait(5) is True
    msg = tb_peer.wait_for(ATTRIBUTES, since=mark)
    assert same_json(msg.payload, obj), (msg.payload, obj)


@PROPERTY
@given(obj=exact_objects)
def test_attribute_push_round_trip(client, tb_peer, obj):
    got = []
    sid = client.subscribe_to_all_attributes(lambda r, *a: got.append(r))
    try:
        tb_peer.push_attributes(obj)
        pump_until(client, lambda: got, timeout=5)
        assert json.dumps(got[0]) == json.dumps(obj)
    finally:
        client.unsubscribe_from_attribute(sid)


@pytest.mark.xfail(
    strict=True,
    reason="engine bug: tb-core parses downlink JSON with serde_json without its "
    "float_roundtrip feature, so some floats arrive 1 ulp off (found by hypothesis)",
)
def test_attribute_push_float_is_exact(client, tb_peer):
    obj = {"f": 1801439850948199.0, "g": 0.1, "h": 2.2250738585072014e-308}
    got = []
    client.subscribe_to_all_attributes(lambda r, *a: got.append(r))
    tb_peer.push_attributes(obj)
    pump_until(client, lambda: got, timeout=5)
    assert got[0] == obj, (got[0], obj)
