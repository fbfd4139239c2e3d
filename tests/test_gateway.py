"""TBGatewayMqttClient against mosquitto, with a paho peer playing ThingsBoard's gateway side.

spec: thingsboard-gateway.md A.2-A.10 (topics and payloads), B.1 (tb-mqtt-client's methods).
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient


@pytest.fixture
def gw(broker, tb_peer):
    client = TBGatewayMqttClient(
        broker.host, broker.port, username="gw-" + uuid.uuid4().hex[:8], client_id=""
    )
    assert client.connect(timeout=10) is not None
    yield client
    client.disconnect()


def test_uploads_have_the_reference_topics_and_payloads(gw, tb_peer):
    mark = tb_peer.mark()
    assert gw.gw_connect_device("Boiler 7", "boiler").wait(5)
    assert gw.gw_send_telemetry("Boiler 7", {"temp": 71.5}).wait(5)
    assert gw.gw_send_attributes("Boiler 7", {"model": "B-200"}).wait(5)
    assert gw.gw_claim("Boiler 7", "s3cret", 60000).wait(5)
    assert gw.gw_disconnect_device("Boiler 7").wait(5)
    # (The gateway also asks getSessionLimits after connecting, on the device topics.)
    got = [
        (m.topic, m.json()) for m in tb_peer.barrier(gw)[mark:] if m.topic.startswith("v1/gateway/")
    ]
    assert got == [
        ("v1/gateway/connect", {"device": "Boiler 7", "type": "boiler"}),
        ("v1/gateway/telemetry", {"Boiler 7": [{"temp": 71.5}]}),
        ("v1/gateway/attributes", {"Boiler 7": {"model": "B-200"}}),
        ("v1/gateway/claim", {"Boiler 7": {"secretKey": "s3cret", "durationMs": 60000}}),
        ("v1/gateway/disconnect", {"device": "Boiler 7"}),
    ]


def test_server_messages_reach_callbacks_and_rpc_replies_go_back(gw, tb_peer):
    gw.gw_connect_device("Pump 2").wait(5)
    updates: list = []
    assert gw.gw_subscribe_to_attribute("Pump 2", "speed", updates.append)
    assert gw.gw_subscribe_to_attribute("Nope", "x", updates.append) is False
    rpcs: list = []

    def on_rpc(client, content):
        rpcs.append(content)
        client.gw_send_rpc_reply(content["device"], content["data"]["id"], {"ok": True})

    gw.gw_set_server_side_rpc_request_handler(on_rpc)
    responses: list = []
    done = threading.Event()

    def on_response(result, exc):
        responses.append((result, exc))
        done.set()

    def answer(msg):
        if msg.topic == "v1/gateway/attributes/request":
            req = msg.json()
            body = {"id": req["id"], "device": req["device"], "value": 3}
            return [("v1/gateway/attributes/response", json.dumps(body))]
        return None

    tb_peer.respond(answer)
    mark = tb_peer.mark()
    gw.gw_request_shared_attributes("Pump 2", ["speed"], on_response)
    tb_peer.publish("v1/gateway/attributes", {"device": "Pump 2", "data": {"speed": 5}})
    tb_peer.publish(
        "v1/gateway/rpc",
        {"device": "Pump 2", "data": {"id": 4, "method": "stop", "params": {}}},
    )
    for _ in range(100):
        gw.wait_for_msg(timeout=0.1)
        if updates and rpcs and done.is_set():
            break
    assert updates == [{"device": "Pump 2", "data": {"speed": 5}}]
    assert rpcs == [{"device": "Pump 2", "data": {"id": 4, "method": "stop", "params": {}}}]
    assert responses == [({"id": 1, "device": "Pump 2", "value": 3}, None)]
    reply = tb_peer.wait_for(
        lambda m: m.topic == "v1/gateway/rpc" and b'"ok"' in m.payload, since=mark
    )
    assert reply.json() == {"device": "Pump 2", "id": 4, "data": {"ok": True}}


def test_reconnect_announces_connected_sub_devices(gw, tb_peer, broker):
    gw.gw_connect_device("A", "t1").wait(5)
    gw.gw_connect_device("B", "t2").wait(5)
    gw.gw_disconnect_device("B").wait(5)
    tb_peer.barrier(gw)
    mark = tb_peer.mark()
    gw.disconnect()
    assert gw.connect(timeout=10) is not None
    again = tb_peer.wait_for(lambda m: m.topic == "v1/gateway/connect", since=mark)
    assert again.json() == {"device": "A", "type": "t1"}
    later = [m for m in tb_peer.barrier(gw)[mark:] if m.topic == "v1/gateway/connect"]
    assert [m.json()["device"] for m in later] == ["A"]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda g: g.gw_request_shared_attributes("A", ["k"], 5), id="request"),
        pytest.param(lambda g: g.gw_subscribe_to_all_attributes(None), id="subscribe-all"),
        pytest.param(lambda g: g.gw_subscribe_to_attribute("A", "k", "cb"), id="subscribe"),
        pytest.param(lambda g: g.gw_set_server_side_rpc_request_handler(5), id="rpc-handler"),
    ],
)
def test_gateway_callback_that_cannot_be_called_is_refused_at_once(gw, tb_peer, call):
    # As for the device client: a non-callable failed only when a message arrived.
    gw.gw_connect_device("A").wait(10)
    tb_peer.barrier(gw)  # the connect has reached the peer before the mark
    mark = tb_peer.mark()
    with pytest.raises(TypeError, match="callable"):
        call(gw)
    assert tb_peer.barrier(gw)[mark:] == []


def test_a_subclass_overriding_an_upload_method_is_called():
    calls = []

    class Mine(TBGatewayMqttClient):
        def gw_send_telemetry(self, device, telemetry, quality_of_service=1):
            calls.append(device)
            return super().gw_send_telemetry(device, telemetry, quality_of_service)

    gw = Mine("127.0.0.1", 1, username="t", callback_thread=False, reconnect=False)
    plain = TBGatewayMqttClient("127.0.0.1", 1, username="t", callback_thread=False)
    try:
        gw.gw_send_telemetry("A", {"x": 1})
        assert calls == ["A"]
        # The plain class serves uploads straight from the engine, with the same arguments.
        assert plain.gw_send_telemetry("A", {"x": 1}, quality_of_service=None).mid() == 1
        with pytest.raises(ValueError, match="quality_of_service must be 0 or 1, got 2"):
            plain.gw_send_attributes("A", {"x": 1}, 2)
    finally:
        gw.disconnect()
        plain.disconnect()
