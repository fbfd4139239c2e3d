"""Self-tests of the harness, with paho standing in for the device (no thingsboard_sdk needed).

If these fail, every other failure in the suite is suspect.
"""

from __future__ import annotations

import socket
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from conftest import FakeBroker, Mosquitto, TBPeer, compact, encode_packet, read_packet
from paho.mqtt.enums import CallbackAPIVersion


class PahoDevice:
    """A device made of paho (MQTT 3.1.1), subscribed like the SDK does."""

    def __init__(self, b: Mosquitto, **kw):
        self.got: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="paho-dev-" + uuid.uuid4().hex[:8], **kw
        )
        self.c.username_pw_set("token")
        subscribed = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect(b.host, b.port)
        self.c.loop_start()
        self.c.subscribe(
            [
                ("v1/devices/me/attributes", 1),
                ("v1/devices/me/rpc/request/+", 1),
                ("v1/devices/me/attributes/response/+", 1),
                ("/provision/response", 1),
            ]
        )
        assert subscribed.wait(5)

    def _on_message(self, client, userdata, message):
        with self.cond:
            self.got.append((message.topic, bytes(message.payload)))
            self.cond.notify_all()

    def wait(self, topic: str, timeout: float = 5.0) -> bytes:
        with self.cond:
            assert self.cond.wait_for(lambda: any(t == topic for t, _ in self.got), timeout)
            return next(p for t, p in self.got if t == topic)

    def publish(self, topic, payload, qos=1):
        self.c.publish(topic, payload, qos=qos).wait_for_publish(5)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def paho_device(broker):
    d = PahoDevice(broker)
    yield d
    d.close()


def test_broker_listens_on_loopback_only(broker):
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass
    conf = broker.conf.read_text()
    assert f"listener {broker.port} 127.0.0.1" in conf
    assert "set_tcp_nodelay true" in conf
    assert "allow_anonymous true" in conf


def test_peer_records_topic_payload_qos(tb_peer: TBPeer, paho_device: PahoDevice):
    mark = tb_peer.mark()
    paho_device.publish("v1/devices/me/telemetry", b'{"a":1}', qos=1)
    paho_device.publish("v1/devices/me/telemetry", b'{"a":2}', qos=0)
    msgs = tb_peer.wait_count("v1/devices/me/telemetry", 2, since=mark)
    assert [(m.payload, m.qos) for m in msgs] == [(b'{"a":1}', 1), (b'{"a":2}', 0)]


def test_peer_does_not_see_or_answer_its_own_publishes(tb_peer: TBPeer, paho_device):
    tb_peer.answer_rpc(lambda method, params: {"echo": method})
    tb_peer.server_rpc(7, "fromServer", {})
    assert paho_device.wait("v1/devices/me/rpc/request/7") == compact(
        {"method": "fromServer", "params": {}}
    )
    # the peer's own request is not recorded and therefore not answered
    paho_device.publish("v1/devices/me/rpc/request/1", compact({"method": "m", "params": 1}))
    tb_peer.wait_for("v1/devices/me/rpc/request/1")
    assert not tb_peer.matching("v1/devices/me/rpc/request/7")
    assert not tb_peer.matching("v1/devices/me/rpc/response/7")


def test_peer_auto_replies(tb_peer: TBPeer, broker):
    dev = PahoDevice(broker)
    dev.c.subscribe([("v1/devices/me/rpc/response/+", 1)])
    try:
        tb_peer.answer_attribute_requests(lambda req: {"shared": {"k": req["sharedKeys"]}})
        tb_peer.answer_provision(
            {"status": "SUCCESS", "credentialsType": "ACCESS_TOKEN", "credentialsValue": "abc"}
        )
        dev.publish("v1/devices/me/attributes/request/3", b'{"sharedKeys":"k"}')
        assert dev.wait("v1/devices/me/attributes/response/3") == b'{"shared":{"k":"k"}}'
        dev.publish("/provision/request", b'{"provisionDeviceKey":"a"}')
        assert b'"SUCCESS"' in dev.wait("/provision/response")
    finally:
        dev.close()


def test_restartable_broker_keeps_port_and_persistent_peer_session(
    restartable_broker: Mosquitto, peer_factory
):
    peer = peer_factory(restartable_broker, persistent=True)
    port = restartable_broker.port
    restartable_broker.stop()
    with pytest.raises(OSError):
        socket.create_connection((restartable_broker.host, port), timeout=1).close()
    restartable_broker.start()
    assert restartable_broker.port == port
    # a message published before the peer is back is kept in its persistent session
    dev = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-dev-restart")
    dev.connect(restartable_broker.host, port)
    dev.loop_start()
    try:
        dev.publish("v1/devices/me/telemetry", b'{"n":1}', qos=1).wait_for_publish(5)
        peer.wait_subscribed()
        assert peer.wait_for("v1/devices/me/telemetry", timeout=10).payload == b'{"n":1}'
    finally:
        dev.disconnect()
        dev.loop_stop()


def test_fake_broker_speaks_connack_and_suback():
    fb = FakeBroker(connack=(1, 0))
    try:
        with socket.create_connection((fb.host, fb.port), timeout=2) as s:
            body = (
                b"\x00\x04MQTT\x04\xc2\x00\x78" + b"\x00\x03cid" + b"\x00\x03tok" + b"\x00\x04pswd"
            )
            s.sendall(encode_packet(1, 0, body))
            assert read_packet(s) == (2, 0, b"\x01\x00")
            s.sendall(encode_packet(8, 2, b"\x00\x05" + b"\x00\x03a/b\x01"))
            assert read_packet(s) == (9, 0, b"\x00\x05\x01")
        fb.wait(lambda: bool(fb.connects))
        info = fb.connects[0]
        assert (info.client_id, info.username, info.keepalive) == ("cid", "tok", 120)
    finally:
        fb.close()
