"""AsyncTBGatewayClient against mosquitto, with the scripted peer on the gateway topics.

spec: thingsboard-gateway.md A.2-A.10 (topics and payloads). The same exchanges as
``test_gateway.py``, awaited.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from thingsboard_sdk.aio import AsyncTBGatewayClient

pytestmark = pytest.mark.asyncio


def gateway(broker: Any) -> AsyncTBGatewayClient:
    return AsyncTBGatewayClient(
        broker.host, broker.port, username="gw-" + uuid.uuid4().hex[:8], client_id=""
    )


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


async def test_uploads_have_the_reference_topics_and_payloads(broker, tb_peer):
    async with gateway(broker) as gw:
        mark = tb_peer.mark()
        assert await (await gw.gw_connect_device("Boiler 7", "boiler"))
        assert await (await gw.gw_send_telemetry("Boiler 7", {"temp": 71.5}))
        assert await (await gw.gw_send_attributes("Boiler 7", {"model": "B-200"}))
        assert await (await gw.gw_claim("Boiler 7", "s3cret", 60000))
        assert await (await gw.gw_disconnect_device("Boiler 7"))
        msgs = await in_thread(
            tb_peer.wait_count, lambda m: m.topic.startswith("v1/gateway/"), 5, since=mark
        )
    assert [(m.topic, m.json()) for m in msgs] == [
        ("v1/gateway/connect", {"device": "Boiler 7", "type": "boiler"}),
        ("v1/gateway/telemetry", {"Boiler 7": [{"temp": 71.5}]}),
        ("v1/gateway/attributes", {"Boiler 7": {"model": "B-200"}}),
        ("v1/gateway/claim", {"Boiler 7": {"secretKey": "s3cret", "durationMs": 60000}}),
        ("v1/gateway/disconnect", {"device": "Boiler 7"}),
    ]


async def test_requests_updates_and_rpc_as_awaits_iterators_and_callbacks(broker, tb_peer):
    def answer(msg):
        if msg.topic == "v1/gateway/attributes/request":
            req = msg.json()
            body = {"id": req["id"], "device": req["device"], "value": 3}
            return [("v1/gateway/attributes/response", json.dumps(body))]
        return None

    tb_peer.respond(answer)
    async with gateway(broker) as gw:
        await gw.gw_connect_device("Pump 2")
        assert gw.gw_subscribe_to_attribute("Nope", "x", print) is False
        got: asyncio.Queue = asyncio.Queue()

        async def on_update(content: Any) -> None:
            got.put_nowait(("cb", content))

        assert gw.gw_subscribe_to_attribute("Pump 2", "speed", on_update)
        updates = gw.gw_attribute_updates("Pump 2")
        requests = gw.gw_rpc_requests()
        assert await gw.gw_request_shared_attributes("Pump 2", ["speed"]) == {
            "id": 1,
            "device": "Pump 2",
            "value": 3,
        }
        mark = tb_peer.mark()
        tb_peer.publish("v1/gateway/attributes", {"device": "Pump 2", "data": {"speed": 5}})
        tb_peer.publish("v1/gateway/rpc", {"device": "Pump 2", "data": {"id": 4, "method": "stop"}})
        content = {"device": "Pump 2", "data": {"speed": 5}}
        assert await asyncio.wait_for(got.get(), 10) == ("cb", content)
        assert await asyncio.wait_for(updates.__anext__(), 10) == content
        request = await asyncio.wait_for(requests.__anext__(), 10)
        assert (request.device, request.id, request.method) == ("Pump 2", 4, "stop")
        handle = await request.reply({"ok": True})
        assert handle is not None and await handle.wait(10)
        reply = await in_thread(
            tb_peer.wait_for,
            lambda m: m.topic == "v1/gateway/rpc" and b'"ok"' in m.payload,
            since=mark,
        )
        assert reply.json() == {"device": "Pump 2", "id": 4, "data": {"ok": True}}


async def test_gateway_request_timeout_and_cancellation(broker, tb_peer):
    async with gateway(broker) as gw:
        await gw.gw_connect_device("Silent")
        with pytest.raises(TimeoutError):
            await gw.gw_request_client_attributes("Silent", ["x"], timeout=0.3)
        task = asyncio.ensure_future(gw.gw_request_shared_attributes("Silent", ["y"], timeout=60))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gw._gw_requests == {}
