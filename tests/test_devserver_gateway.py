"""The dev server speaks the Gateway MQTT API as ThingsBoard does (thingsboard-gateway.md Part A,
Part C): our TBGatewayMqttClient over MQTT 3.1.1, raw paho clients over MQTT 5 for reason codes.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient


@pytest.fixture
def server():
    with DevServer(http_port=None) as s:
        yield s


@pytest.fixture
def gw(server):
    token = server.add_device("GW", gateway=True)
    client = TBGatewayMqttClient(server.host, server.port, username=token)
    assert client.connect(timeout=10) is not None
    yield client
    client.disconnect()


def pump(client, pred, timeout=10.0):
    """Serves callbacks on this thread until ``pred()``."""
    import time

    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not met"
        client.wait_for_msg(timeout=0.1)


def test_sub_devices_are_created_on_first_use_and_store_their_data(server, gw):
    assert gw.gw_connect_device("Boiler 7", "boiler").wait(5)
    assert "Boiler 7" in server.devices()
    assert server.is_connected("Boiler 7")
    # Telemetry for a device never connected creates it too (A.3).
    assert gw.gw_send_telemetry("Pump 2", {"rpm": 1450}).wait(5)
    assert gw.gw_send_telemetry("Boiler 7", [{"ts": 1700000000000, "values": {"t": 71.5}}]).wait(5)
    assert gw.gw_send_attributes("Boiler 7", {"model": "B-200"}).wait(5)
    assert gw.gw_claim("Boiler 7", "s3cret", 60000).wait(5)
    assert server.latest_telemetry("Pump 2") == {"rpm": 1450}
    assert [(p.ts, p.value) for p in server.telemetry("Boiler 7", "t")] == [(1700000000000, 71.5)]
    assert server.client_attributes("Boiler 7") == {"model": "B-200"}
    assert server.claims("Boiler 7")[0].secret_key == "s3cret"
    assert gw.gw_disconnect_device("Boiler 7").wait(5)
    server.wait_for(lambda: not server.is_connected("Boiler 7"), 5, "sub-device closed")


def test_rpc_and_shared_attributes_reach_the_gateway_and_replies_complete(server, gw):
    gw.gw_connect_device("Valve").wait(5)
    pushes: list = []
    gw.gw_subscribe_to_all_attributes(pushes.append)

    def on_rpc(client, content):
        client.gw_send_rpc_reply(content["device"], content["data"]["id"], {"ok": 1})

    gw.gw_set_server_side_rpc_request_handler(on_rpc)
    server.set_shared_attributes("Valve", {"setpoint": 65})
    pump(gw, lambda: pushes)
    assert pushes == [{"device": "Valve", "data": {"setpoint": 65}}]
    result: list = []
    t = threading.Thread(target=lambda: result.append(server.send_rpc("Valve", "open", {"a": 1})))
    t.start()
    pump(gw, lambda: result)
    t.join()
    assert result == [{"ok": 1}]


def test_attribute_requests_are_answered_in_the_gateway_shape(server, gw):
    gw.gw_connect_device("Meter").wait(5)
    server.set_shared_attributes("Meter", {"a": 1, "b": "x"})
    got: list = []
    gw.gw_request_shared_attributes("Meter", ["a"], lambda r, e: got.append(r))
    gw.gw_request_shared_attributes("Meter", ["a", "b"], lambda r, e: got.append(r))
    gw.gw_request_client_attributes("Meter", ["nope"], lambda r, e: got.append(r))
    pump(gw, lambda: len(got) == 3)
    by_id = {r["id"]: r for r in got}
    assert sorted(by_id) == [1, 2, 3]
    assert by_id[1] == {"id": 1, "device": "Meter", "value": 1}
    assert by_id[2] == {"id": 2, "device": "Meter", "values": {"a": 1, "b": "x"}}
    assert by_id[3] == {"id": 3, "device": "Meter"}


def _v5(server, token):
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="v5-" + uuid.uuid4().hex[:8],
        protocol=mqtt.MQTTv5,
    )
    c.username_pw_set(token)
    acks: dict = {}
    cond = threading.Condition()
    closed = threading.Event()

    def on_publish(client, userdata, mid, reason_code, properties):
        with cond:
            acks[mid] = reason_code.value
            cond.notify_all()

    c.on_publish = on_publish
    c.on_disconnect = lambda *a: closed.set()
    c.connect(server.host, server.port)
    c.loop_start()

    def ack(topic, payload):
        info = c.publish(topic, payload, qos=1)
        with cond:
            assert cond.wait_for(lambda: info.mid in acks, 5), f"no PUBACK for {topic}"
            return acks[info.mid]

    return c, ack, closed


def test_mqtt5_reason_codes_for_bad_gateway_payloads(server):
    token = server.add_device("GW5", gateway=True)
    c, ack, closed = _v5(server, token)
    try:
        assert ack("v1/gateway/connect", json.dumps({"device": "D1"})) == 0
        # A.12: unparseable JSON: 0x99, the connection stays.
        assert ack("v1/gateway/telemetry", b"{not json") == 0x99
        assert not closed.is_set()
        # A.2: an unknown gateway topic: 0x90.
        assert ack("v1/gateway/nope", b"{}") == 0x90
        assert ack("v1/gateway/disconnect", json.dumps({"device": "unknown"})) == 0
        # A.12: the wrong shape: 0x83, then the connection is closed.
        assert ack("v1/gateway/connect", json.dumps({"type": "x"})) == 0x83
        assert closed.wait(5)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_device_that_is_no_gateway_is_ignored(server):
    token = server.add_device("Plain")
    c, ack, closed = _v5(server, token)
    try:
        c.publish("v1/gateway/connect", json.dumps({"device": "X"}), qos=1)
        c.publish("v1/devices/me/telemetry", json.dumps({"after": 1}), qos=1)
        server.wait_for(lambda: server.latest_telemetry("Plain"), 5, "telemetry after it")
        assert "X" not in server.devices()
        assert not closed.is_set()
    finally:
        c.disconnect()
        c.loop_stop()


def test_session_limits_of_a_gateway_carry_gateway_rate_limits():
    with DevServer(
        http_port=None, gateway_telemetry_rate_limits="5:1", rate_limits="50:1"
    ) as server:
        token = server.add_device("GWL", gateway=True)
        c, ack, closed = _v5(server, token)
        got: list = []
        done = threading.Event()

        def on_message(client, userdata, msg):
            got.append(json.loads(msg.payload))
            done.set()

        c.on_message = on_message
        c.subscribe("v1/devices/me/rpc/response/+", qos=1)
        props = Properties(PacketTypes.PUBLISH)
        c.publish(
            "v1/devices/me/rpc/request/1",
            json.dumps({"method": "getSessionLimits", "params": {}}),
            qos=1,
            properties=props,
        )
        try:
            assert done.wait(5)
        finally:
            c.disconnect()
            c.loop_stop()
        limits = got[0]
        assert limits["rateLimits"]["messages"] == "50:1"
        assert limits["gatewayRateLimits"]["telemetryMessages"] == "5:1"


def test_a_paced_gateway_at_5x_its_relay_limit_is_never_disconnected():
    with DevServer(http_port=None, gateway_telemetry_rate_limits="10:1") as server:
        token = server.add_device("GWP", gateway=True)
        gw = TBGatewayMqttClient(server.host, server.port, username=token, reconnect=False)
        assert gw.connect(timeout=10) is not None
        handles = [gw.gw_send_telemetry(f"S{i % 5}", {"i": i}) for i in range(50)]
        for h in handles:
            assert h.wait(30) is True
        assert gw.connected
        assert [e for e in server.connection_events("GWP") if e.kind == "disconnected"] == []
        gw.disconnect()


def test_a_raw_gateway_at_5x_its_relay_limit_is_disconnected():
    with DevServer(http_port=None, gateway_telemetry_rate_limits="10:1") as server:
        token = server.add_device("GWR", gateway=True)
        c, ack, closed = _v5(server, token)
        try:
            for i in range(50):
                c.publish("v1/gateway/telemetry", json.dumps({"S": [{"i": i}]}), qos=1)
            assert closed.wait(10)
        finally:
            c.disconnect()
            c.loop_stop()


def test_callbacks_are_served_in_the_background_as_tb_mqtt_client_does(server, gw):
    # A tb-mqtt-client script sets a handler and never polls: connect() started a thread.
    gw.gw_connect_device("Bg").wait(5)
    calls: list = []

    def on_rpc(client, content):
        calls.append(threading.current_thread().name)
        client.gw_send_rpc_reply(content["device"], content["data"]["id"], "pong")

    gw.gw_set_server_side_rpc_request_handler(on_rpc)
    assert server.send_rpc("Bg", "ping", {}, timeout=10) == "pong"
    assert calls == ["thingsboard-gateway-callbacks"]


def test_with_the_callback_thread_off_polling_serves_callbacks(server):
    token = server.add_device("GWQ", gateway=True)
    gw = TBGatewayMqttClient(server.host, server.port, username=token, callback_thread=False)
    assert gw.connect(timeout=10) is not None
    try:
        gw.gw_connect_device("Q").wait(5)
        pushes: list = []
        gw.gw_subscribe_to_all_attributes(pushes.append)
        server.set_shared_attributes("Q", {"k": 1})
        pump(gw, lambda: pushes)
        assert pushes == [{"device": "Q", "data": {"k": 1}}]
    finally:
        gw.disconnect()


def test_a_sub_device_gets_its_type_and_gateways_as_thingsboard_records_them(tmp_path):
    # thingsboard-gateway.md A.3/A.4: the connect's type names a new device's type (missing or
    # null -> "default"); a device created by another message is "default"; an existing device
    # keeps its type; every gateway that connects it becomes its lastConnectedGateway, and the
    # one that created it keeps the Created relation. All of it survives a restart (--data).
    with DevServer(http_port=None, data=tmp_path) as server:
        a = TBGatewayMqttClient(
            server.host, server.port, username=server.add_device("GW A", gateway=True)
        )
        b = TBGatewayMqttClient(
            server.host, server.port, username=server.add_device("GW B", gateway=True)
        )
        assert a.connect(timeout=10) is not None and b.connect(timeout=10) is not None
        try:
            assert a.gw_connect_device("Sub R", "meter").wait(10)
            assert a.gw_connect_device("No type").wait(10)
            assert a.gw_send_telemetry("Tele first", {"t": 1}).wait(10)
            assert a.gw_connect_device("Tele first", "meter").wait(10)
            info = server.device_info("Sub R")
            assert (info["type"], info["last_connected_gateway"], info["created_by"]) == (
                "meter",
                "GW A",
                "GW A",
            )
            assert server.device_info("No type")["type"] == "default"
            assert server.device_info("Tele first")["type"] == "default"
            assert b.gw_connect_device("Sub R", "other").wait(10)
            info = server.device_info("Sub R")
            assert (info["type"], info["last_connected_gateway"], info["created_by"]) == (
                "meter",
                "GW B",
                "GW A",
            )
            gw_info = server.device_info("GW A")
            assert (gw_info["gateway"], gw_info["last_connected_gateway"]) == (True, None)
        finally:
            a.disconnect()
            b.disconnect()
        assert server.sync(10)
    with DevServer(http_port=None, data=tmp_path) as again:
        info = again.device_info("Sub R")
        assert (info["type"], info["last_connected_gateway"], info["created_by"]) == (
            "meter",
            "GW B",
            "GW A",
        )
        with pytest.raises(KeyError):
            again.device_info("nobody")
