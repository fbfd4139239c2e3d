"""Rate limits: a paced client stays within the server's limits and is never disconnected;
a raw client sending as fast is disconnected. Against our dev server, which enforces limits
as ThingsBoard's transport does (thingsboard-gateway.md A.11) and answers getSessionLimits.
"""

from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

# 20 telemetry messages per second; the test sends 100 at once: five seconds' worth.
LIMIT = "20:1"
BURST = 100


@pytest.fixture
def limited():
    with DevServer(http_port=None, telemetry_rate_limits=LIMIT) as server:
        token = server.add_device("paced")
        yield server, token


def _disconnects(server: DevServer, device: str) -> list:
    return [e for e in server.connection_events(device) if e.kind == "disconnected"]


def test_a_paced_client_at_5x_the_limit_is_never_disconnected(limited):
    server, token = limited
    client = TBDeviceMqttClient(
        server.host, server.port, access_token=token, session_limits=True, reconnect=False
    )
    assert client.connect(timeout=10) is not None
    handles = [client.send_telemetry({"i": i}) for i in range(BURST)]
    # send_* did not block: what the limit holds back waits in the queue.
    assert client._engine.queued > BURST // 2
    for h in handles:
        assert h.wait(30) is True
    assert client.connected is True
    assert _disconnects(server, "paced") == []
    got = sorted(p.value for p in server.telemetry("paced", "i"))
    assert got == list(range(BURST))
    client.disconnect()


def test_limits_set_by_hand_pace_without_asking(limited):
    server, token = limited
    client = TBDeviceMqttClient(
        server.host, server.port, access_token=token, telemetry_rate_limit=LIMIT
    )
    assert client.connect(timeout=10) is not None
    handles = [client.send_telemetry({"j": i}) for i in range(60)]
    for h in handles:
        assert h.wait(30) is True
    assert _disconnects(server, "paced") == []
    client.disconnect()


def test_a_raw_client_at_5x_the_limit_is_disconnected(limited):
    server, token = limited
    closed = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-" + uuid.uuid4().hex[:8])
    c.username_pw_set(token)
    c.on_disconnect = lambda *a: closed.set()
    c.connect(server.host, server.port)
    c.loop_start()
    try:
        for i in range(BURST):
            c.publish("v1/devices/me/telemetry", json.dumps({"i": i}), qos=1)
        assert closed.wait(10), "the server never closed the raw client"
    finally:
        c.disconnect()
        c.loop_stop()
    assert _disconnects(server, "paced") != []


def test_bad_limits_by_hand_name_the_option():
    with pytest.raises(ValueError, match="telemetry_rate_limit"):
        TBDeviceMqttClient("127.0.0.1", 1883, access_token="x", telemetry_rate_limit="fast")


def test_handle_get_and_is_connected_aliases(limited):
    server, token = limited
    client = TBDeviceMqttClient(server.host, server.port, access_token=token)
    assert client.is_connected() is False
    assert client.connect(timeout=10) is not None
    assert client.is_connected() is True
    assert client.send_telemetry({"x": 1}).get() == 0
    client.disconnect()
