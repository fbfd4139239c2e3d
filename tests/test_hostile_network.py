"""Hostile or broken data from the network never raises out of the client and never stops it."""

from __future__ import annotations

import logging
import struct

import pytest
from conftest import FakeBroker, mqtt_str, pump_until
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

HOSTILE = [
    pytest.param("v1/devices/me/attributes", b"{not json", id="attr-malformed-json"),
    pytest.param("v1/devices/me/attributes", b"\xff\xfe\x00garbage", id="attr-invalid-utf8"),
    pytest.param("v1/devices/me/attributes", b"", id="attr-empty"),
    pytest.param("v1/devices/me/attributes", b"[1,2,3]", id="attr-array"),
    pytest.param("v1/devices/me/attributes", b"42", id="attr-scalar"),
    pytest.param("v1/devices/me/attributes", b'"str"', id="attr-string"),
    pytest.param("v1/devices/me/attributes", b"null", id="attr-null"),
    pytest.param("v1/devices/me/rpc/request/7", b"{broken", id="rpc-req-malformed"),
    pytest.param("v1/devices/me/rpc/request/8", b"\xc3\x28", id="rpc-req-invalid-utf8"),
    pytest.param("v1/devices/me/rpc/request/abc", b'{"method":"m"}', id="rpc-req-non-numeric"),
    pytest.param("v1/devices/me/rpc/response/abc", b'{"a":1}', id="rpc-resp-non-numeric"),
    pytest.param("v1/devices/me/rpc/response/", b'{"a":1}', id="rpc-resp-empty-id"),
    pytest.param("v1/devices/me/rpc/response/99999", b'{"a":1}', id="rpc-resp-never-requested"),
    pytest.param("v1/devices/me/rpc/response/99999999999999999999", b"{}", id="rpc-resp-huge-id"),
    pytest.param("v1/devices/me/rpc/response/-1", b"{}", id="rpc-resp-negative-id"),
    pytest.param("v1/devices/me/attributes/response/abc", b"{}", id="attr-resp-non-numeric"),
    pytest.param(
        "v1/devices/me/attributes/response/4242", b'{"shared":{}}', id="attr-resp-unasked"
    ),
    pytest.param("v1/devices/me/attributes/response/1", b"[]", id="attr-resp-array"),
    pytest.param("v1/devices/me/attributes/response/1", b"\xff", id="attr-resp-invalid-utf8"),
    pytest.param("v1/devices/me/unknown/topic", b'{"a":1}', id="unknown-topic"),
    pytest.param("v1/devices/me/rpc/request/1/extra", b"{}", id="rpc-req-extra-level"),
    pytest.param("v2/fw/response/1/chunk/0", b"\x00\x01\x02", id="fw-chunk-unasked"),
    pytest.param("v1/devices/me/attributes", b'{"a":' + b"[" * 5000, id="deep-nesting"),
    pytest.param("v1/devices/me/attributes", b'{"a":"' + b"x" * 60000 + b'"}', id="large"),
]


@pytest.mark.parametrize("topic, payload", HOSTILE)
def test_hostile_publish_is_dropped_and_client_keeps_working(client, tb_peer, topic, payload):
    got, handled = [], []
    client.subscribe_to_all_attributes(lambda r, *a: got.append(r))
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append((rid, body)))
    tb_peer.publish(topic, payload)
    tb_peer.push_attributes({"after": 1})  # arrives after the hostile message
    # nothing raises out of wait_for_msg / check_for_msg while the junk is processed
    pump_until(client, lambda: {"after": 1} in got, what="update after hostile message")
    client.check_for_msg()
    # dropped, not delivered as if valid
    assert all(isinstance(r, dict) for r in got), got
    assert got[-1] == {"after": 1}
    # still sending and receiving
    assert client.send_telemetry({"alive": 1}).wait(5) is True
    tb_peer.server_rpc(3, "ping", {})
    pump_until(client, lambda: ("3", {"method": "ping", "params": {}}) in handled)


def test_rpc_request_non_object_body_is_passed_or_dropped_without_raising(client, tb_peer):
    """A JSON array/scalar where an object belongs: never an exception out of the client."""
    handled = []
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append((rid, body)))
    tb_peer.publish("v1/devices/me/rpc/request/1", b"[1,2]")
    tb_peer.publish("v1/devices/me/rpc/request/2", b"7")
    tb_peer.server_rpc(3, "last", None)
    pump_until(client, lambda: any(rid == "3" for rid, _ in handled))
    assert handled[-1] == ("3", {"method": "last", "params": None})


def test_pending_request_survives_junk_responses(client, tb_peer):
    """Junk on the response topic for the pending id must not end the wait wrongly."""

    def responder(msg):
        if msg.topic != "v1/devices/me/attributes/request/1":
            return None
        return [
            ("v1/devices/me/attributes/response/1", b"{garbage"),
            ("v1/devices/me/attributes/response/1", {"shared": {"ok": 1}}),
        ]

    tb_peer.respond(responder)
    results = []
    client.request_attributes(
        shared_keys=["ok"], callback=lambda r, e=None: results.append((r, e)), timeout=5
    )
    assert len(results) == 1
    result, exc = results[0]
    # either the junk is dropped and the good answer wins, or the junk ends it as an error;
    # never an exception out of request_attributes and never a non-dict result
    assert (result, exc) == ({"shared": {"ok": 1}}, None) or (result is None and exc is not None)


def test_many_junk_messages_in_a_row(client, tb_peer):
    got = []
    client.subscribe_to_attribute("end", lambda r, *a: got.append(r))
    for i in range(200):
        tb_peer.publish("v1/devices/me/rpc/response/" + "x" * (i % 7 + 1), b"\xff" * i)
    tb_peer.push_attributes({"end": True})
    pump_until(client, lambda: got, timeout=20)
    assert got == [{"end": True}]


def test_qos2_publish_is_dropped_answered_and_the_session_goes_on(fake_broker, caplog):
    # QA row 11: the client subscribes at QoS 1 and ThingsBoard grants at most 1, yet a QoS 2
    # PUBLISH was answered with PUBACK and dispatched. Now: logged and dropped, answered as a
    # QoS 2 receiver must (PUBREC, PUBCOMP to the PUBREL), and the session goes on.
    caplog.set_level(logging.WARNING)
    fb: FakeBroker = fake_broker()
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="t", client_id="qos2")
    handled: list = []
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append((rid, body)))
    body = b'{"method":"m","params":{}}'
    try:
        assert client.connect(timeout=5) == 0
        fb.send(3, 0x04, mqtt_str("v1/devices/me/rpc/request/1") + struct.pack("!H", 7) + body)
        fb.wait(lambda: (5, b"\x00\x07") in fb.packets, timeout=10)  # PUBREC
        fb.send(6, 0x02, b"\x00\x07")  # PUBREL
        fb.wait(lambda: (7, b"\x00\x07") in fb.packets, timeout=10)  # PUBCOMP
        fb.send(3, 0x02, mqtt_str("v1/devices/me/rpc/request/2") + struct.pack("!H", 8) + body)
        pump_until(client, lambda: handled, what="the QoS 1 RPC after the QoS 2 one")
        fb.wait(lambda: (4, b"\x00\x08") in fb.packets, timeout=10)  # its PUBACK
        assert handled == [("2", {"method": "m", "params": {}})]
        assert (4, b"\x00\x07") not in fb.packets, "a QoS 2 PUBLISH got a PUBACK"
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and "QoS 2" in r.getMessage()
        ]
        assert len(warned) == 1 and "v1/devices/me/rpc/request/1" in warned[0], warned
        assert client.connected
    finally:
        client.disconnect()
