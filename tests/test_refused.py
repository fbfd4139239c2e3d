"""A message the server never takes (a "poison" message) is given up; nothing else is.

A device client that does not ask for the server's limits (``session_limits`` off, as the
MicroPython SDK) assumes ThingsBoard's default 65536-byte packet limit. A server set lower
(``transport.mqtt.netty.max_payload_size``) closes the connection on a bigger packet without a
PUBACK (spec: thingsboard-mqtt.md 2.5, 17.10). After three closes in a row right after that
message, the client fails its handle with ``MessageRefusedError``, logs an ERROR naming topic
and size, and delivers the rest of its queue.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from thingsboard_sdk.aio import AsyncTBDeviceClient
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.exceptions import MessageRefusedError
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient

LIMIT = 2000
BIG = {f"k{i:03d}": "x" * 40 for i in range(60)}  # about 3 KB of JSON: over LIMIT


@pytest.fixture
def server():
    with DevServer(http_port=None, max_payload_size=LIMIT) as s:
        yield s


def _refusals(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "refused the message" in r.getMessage()
    ]


def test_poison_message_fails_its_handle_and_the_rest_is_delivered(server, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="thingsboard_sdk")
    token = server.add_device("d")
    c = TBDeviceMqttClient(server.host, server.port, token, queue_dir=str(tmp_path))
    c.connect(timeout=10)
    try:
        before = c.send_telemetry({"before": 1})
        assert before.wait(10) is True
        poison = c.send_telemetry(BIG)
        after = [c.send_telemetry({"after": i}) for i in range(5)]
        with pytest.raises(MessageRefusedError) as e:
            poison.wait(30)
        text = str(e.value)
        assert "v1/devices/me/telemetry" in text and "maxPayloadSize" in text
        size = int(text.split("(")[1].split(" bytes")[0])
        assert size > LIMIT
        assert poison.get() == TBPublishInfo.TB_ERR_PAYLOAD_SIZE
        assert poison.done is False and poison.error == text
        for h in after:
            assert h.wait(30) is True
        assert server.latest_telemetry("d") == {"before": 1, "after": 4}
        assert [p.value for p in server.telemetry("d", "after")] == [0, 1, 2, 3, 4]
        assert not any(k.startswith("k0") for k in server.latest_telemetry("d"))
        assert _refusals(caplog) == [text]
        # Given up once: later traffic needs no reconnect.
        events = len(server.connection_events("d"))
        assert c.send_telemetry({"later": 1}).wait(10) is True
        assert len(server.connection_events("d")) == events
    finally:
        c.disconnect()
    # Gone from the durable queue too: a client on the same folder restores nothing.
    c2 = TBDeviceMqttClient(server.host, server.port, token, queue_dir=str(tmp_path))
    try:
        assert c2._engine.queued == 0
    finally:
        c2.disconnect()


def test_a_message_under_the_limit_is_never_given_up(server, caplog):
    caplog.set_level(logging.INFO, logger="thingsboard_sdk")
    c = TBDeviceMqttClient(server.host, server.port, server.add_device("d"))
    c.connect(timeout=10)
    try:
        hs = [c.send_telemetry({"i": i, "pad": "y" * 1500}) for i in range(20)]
        assert all(h.wait(20) for h in hs)
        assert _refusals(caplog) == []
    finally:
        c.disconnect()


def test_gateway_upload_the_server_refuses_fails_its_handle(server, caplog):
    caplog.set_level(logging.INFO, logger="thingsboard_sdk")
    # Without session_limits the gateway, too, only knows the default limit.
    g = TBGatewayMqttClient(
        server.host, server.port, server.add_device("g", gateway=True), session_limits=False
    )
    g.connect(timeout=10)
    try:
        assert g.gw_connect_device("S").wait(10) is True
        poison = g.gw_send_telemetry("S", BIG)
        after = g.gw_send_telemetry("S", {"after": 1})
        with pytest.raises(MessageRefusedError, match="v1/gateway/telemetry"):
            poison.wait(30)
        assert after.wait(30) is True
        assert server.wait_for(lambda: server.latest_telemetry("S").get("after") == 1)
        assert len(_refusals(caplog)) == 1
    finally:
        g.disconnect()


def test_asyncio_handle_raises_for_a_refused_message(server):
    async def main() -> None:
        async with AsyncTBDeviceClient(server.host, server.port, server.add_device("a")) as c:
            poison = await c.send_telemetry(BIG)
            after = await c.send_telemetry({"after": 1})
            with pytest.raises(MessageRefusedError, match="maxPayloadSize"):
                await poison.wait(30)
            assert await after.wait(30) is True
            assert poison.done is False

    asyncio.run(main())
