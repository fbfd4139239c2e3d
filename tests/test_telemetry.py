"""send_telemetry / send_attributes: exact topics, payload bytes, QoS, handles, flush."""

from __future__ import annotations

import json
import math

import pytest
from conftest import compact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TELEMETRY = "v1/devices/me/telemetry"
ATTRIBUTES = "v1/devices/me/attributes"


def test_telemetry_dict_exact_bytes_and_qos1(client, tb_peer):
    mark = tb_peer.mark()
    client.send_telemetry({"temperature": 25.5, "humidity": 60})
    msg = tb_peer.wait_for(TELEMETRY, since=mark)
    assert msg.payload == b'{"temperature":25.5,"humidity":60}'
    assert msg.qos == 1
    assert msg.retain is False


def test_telemetry_grouped_by_timestamp_exact_bytes(client, tb_peer):
    mark = tb_peer.mark()
    telemetry = [
        {"ts": 1451649600000, "values": {"temperature": 42.2, "humidity": 71}},
        {"ts": 1451649601000, "values": {"temperature": 42.3, "humidity": 72}},
    ]
    client.send_telemetry(telemetry)
    msg = tb_peer.wait_for(TELEMETRY, since=mark)
    assert msg.payload == (
        b'[{"ts":1451649600000,"values":{"temperature":42.2,"humidity":71}},'
        b'{"ts":1451649601000,"values":{"temperature":42.3,"humidity":72}}]'
    )


def test_telemetry_single_ts_values_dict_and_list_of_dicts(client, tb_peer):
    mark = tb_peer.mark()
    client.send_telemetry({"ts": 1700000000000, "values": {"a": 1}})
    client.send_telemetry([{"a": 1}, {"b": True, "c": None, "d": "x"}])
    msgs = tb_peer.wait_count(TELEMETRY, 2, since=mark)
    assert msgs[0].payload == b'{"ts":1700000000000,"values":{"a":1}}'
    assert msgs[1].payload == b'[{"a":1},{"b":true,"c":null,"d":"x"}]'


def test_nested_values_and_key_order_kept(client, tb_peer):
    mark = tb_peer.mark()
    data = {"z": 1, "a": {"nested": [1, 2.5, "s"]}, "m": False}
    client.send_telemetry(data)
    assert tb_peer.wait_for(TELEMETRY, since=mark).payload == compact(data)


def test_unicode_roundtrip(client, tb_peer):
    mark = tb_peer.mark()
    data = {"name": "héllo wörld ☃", "emoji": "🚀"}
    client.send_telemetry(data)
    assert tb_peer.wait_for(TELEMETRY, since=mark).json() == data


def test_attributes_exact_bytes_and_qos1(client, tb_peer):
    mark = tb_peer.mark()
    client.send_attributes({"sensorModel": "DHT-22", "attribute_2": "value"})
    msg = tb_peer.wait_for(ATTRIBUTES, since=mark)
    assert msg.payload == b'{"sensorModel":"DHT-22","attribute_2":"value"}'
    assert msg.qos == 1


def test_quality_of_service_0_publishes_at_qos0(make_client, tb_peer):
    client = make_client(quality_of_service=0)
    assert client.quality_of_service == 0
    mark = tb_peer.mark()
    h1 = client.send_telemetry({"q": 0})
    h2 = client.send_attributes({"q": 0})
    t = tb_peer.wait_for(TELEMETRY, since=mark)
    a = tb_peer.wait_for(ATTRIBUTES, since=mark)
    assert (t.qos, a.qos) == (0, 0)
    assert h1.wait(timeout=5) is True  # QoS 0: True once written
    assert h2.wait(timeout=5) is True


def test_quality_of_service_default_is_1(make_client):
    assert make_client(connect=False).quality_of_service == 1


def test_handle_wait_and_done_after_puback(client, tb_peer):
    handle = client.send_telemetry({"h": 1})
    assert handle.wait(timeout=5) is True
    assert handle.done is True
    handle2 = client.send_attributes({"h": 2})
    assert handle2.wait() is True  # no timeout: waits for the PUBACK


def test_flush_waits_for_every_qos1_ack(client, tb_peer):
    mark = tb_peer.mark()
    handles = [client.send_telemetry({"i": i}) for i in range(500)]
    assert client.flush(timeout=10) is True
    assert all(h.done for h in handles)
    assert client.flush() is True  # nothing pending: returns at once
    msgs = tb_peer.wait_count(TELEMETRY, 500, timeout=10, since=mark)
    assert [m.json()["i"] for m in msgs] == list(range(500))  # same QoS, same order


def test_send_returns_without_waiting_for_network(client, tb_peer):
    import time

    t0 = time.monotonic()
    for i in range(1000):
        client.send_telemetry({"fast": i})
    assert time.monotonic() - t0 < 2.0
    assert client.flush(timeout=20)


def test_send_telemetry_from_another_thread(client, tb_peer):
    import threading

    mark = tb_peer.mark()
    errors = []

    def worker(k):
        try:
            for i in range(50):
                client.send_telemetry({"t": k, "i": i})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    msgs = tb_peer.wait_count(TELEMETRY, 200, timeout=10, since=mark)
    assert {(m.json()["t"], m.json()["i"]) for m in msgs} == {
        (k, i) for k in range(4) for i in range(50)
    }


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_payload_roundtrip_property(client, tb_peer, data):
    mark = tb_peer.mark()
    client.send_telemetry(data)
    msg = tb_peer.wait_for(TELEMETRY, since=mark)
    assert json.loads(msg.payload) == data


@pytest.mark.parametrize("value", [1e300, -0.0, 5e-324, 2**63 - 1, -(2**63)])
def test_extreme_numbers_roundtrip(client, tb_peer, value):
    mark = tb_peer.mark()
    client.send_telemetry({"v": value})
    got = tb_peer.wait_for(TELEMETRY, since=mark).json()["v"]
    assert got == value
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


def test_large_payloads_up_to_thingsboard_limit(client, tb_peer):
    """rumqttc's 10 KiB default is raised to ThingsBoard's 64 KiB, both directions."""
    mark = tb_peer.mark()
    big = {"blob": "x" * 60_000}
    assert client.send_telemetry(big).wait(10) is True
    assert tb_peer.wait_for(TELEMETRY, since=mark).payload == compact(big)
    got = []
    client.subscribe_to_attribute("blob", lambda r, *a: got.append(r))
    tb_peer.push_attributes(big)
    from conftest import pump_until

    pump_until(client, lambda: got)
    assert got == [big]
