"""thingsboard_sdk.aio: the asyncio device client, over real sockets.

Against mosquitto with the scripted ThingsBoard peer (exact topics and bytes) and against the
dev server (firmware, RPC, refusal). Every wait is on an event with a bound, never a sleep.
``test_aio_uvloop.py`` runs a selection of these under uvloop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from typing import Any

import pytest
from conftest import ATTR_REQUEST, RPC_REQUEST, compact
from thingsboard_sdk.aio import AsyncTBDeviceClient, FirmwareEvent

pytestmark = pytest.mark.asyncio

TELEMETRY = "v1/devices/me/telemetry"
ATTRIBUTES = "v1/devices/me/attributes"


def new_client(broker: Any, **kwargs: Any) -> AsyncTBDeviceClient:
    kwargs.setdefault("client_id", "aio-" + uuid.uuid4().hex[:12])
    kwargs.setdefault("access_token", "tok-" + uuid.uuid4().hex[:8])
    return AsyncTBDeviceClient(broker.host, broker.port, **kwargs)


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Runs a blocking peer call without blocking the loop the client is serviced on."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


# -- uplinks ------------------------------------------------------------------------------------


async def test_telemetry_exact_bytes_and_handle_completes_on_puback(broker, tb_peer):
    async with new_client(broker) as client:
        assert client.connected
        mark = tb_peer.mark()
        handle = await client.send_telemetry({"temperature": 25.5, "humidity": 60})
        assert await handle is True
        assert handle.done
        assert await handle.wait(timeout=1) is True
        msg = await in_thread(tb_peer.wait_for, TELEMETRY, since=mark)
        assert msg.payload == b'{"temperature":25.5,"humidity":60}'
        assert msg.qos == 1


async def test_flush_waits_for_every_ack_and_many_handles_complete(broker, tb_peer):
    async with new_client(broker) as client:
        mark = tb_peer.mark()
        handles = [await client.send_telemetry({"i": i}) for i in range(2000)]
        assert await client.flush(timeout=30) is True
        assert all(h.done for h in handles)
        assert client.queued == 0
        # awaiting many at once: each completes (already delivered here, and while in flight)
        more = [await client.send_telemetry({"i": 2000 + i}) for i in range(500)]
        results = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in more)), 30)
        assert results == [True] * 500
        got = await in_thread(tb_peer.wait_count, TELEMETRY, 2500, timeout=30, since=mark)
        assert sorted(json.loads(m.payload)["i"] for m in got) == list(range(2500))


async def test_attributes_claim_and_qos0(broker, tb_peer):
    async with new_client(broker, quality_of_service=0) as client:
        mark = tb_peer.mark()
        h = await client.send_attributes({"model": "x1", "n": 2})
        assert await h.wait(timeout=10) is True
        h2 = await client.claim_device("secret", 30000)
        assert await h2.wait(timeout=10) is True
        attrs = await in_thread(tb_peer.wait_for, ATTRIBUTES, since=mark)
        assert attrs.payload == b'{"model":"x1","n":2}'
        assert attrs.qos == 0
        claim = await in_thread(tb_peer.wait_for, "v1/devices/me/claim", since=mark)
        assert claim.payload == b'{"secretKey":"secret","durationMs":30000}'


async def test_bad_input_raises_and_sends_nothing(broker, tb_peer):
    async with new_client(broker) as client:
        with pytest.raises(TypeError, match="set"):
            await client.send_telemetry({"CPU", 12.0})
        with pytest.raises(TypeError):
            await client.send_rpc_call(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.subscribe_to_attribute(1, print)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            await client.request_attributes(["a"], timeout="a")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            await client.send_rpc_call("m", timeout="a")  # type: ignore[arg-type]
        assert client.queued == 0


async def test_connect_timeout_that_is_not_a_number_names_itself(broker):
    client = new_client(broker)
    with pytest.raises(TypeError, match="timeout must be a number of seconds, got 'a'"):
        await client.connect(timeout="a")  # type: ignore[arg-type]
    assert not client.connected


# -- requests -------------------------------------------------------------------------------------


async def test_request_attributes_returns_its_response(broker, tb_peer):
    tb_peer.answer_attribute_requests(lambda req: {"client": {"a": 1}, "shared": {"c": True}})
    async with new_client(broker) as client:
        mark = tb_peer.mark()
        result = await client.request_attributes(client_keys=["a"], shared_keys=["c"])
        assert result == {"client": {"a": 1}, "shared": {"c": True}}
        req = await in_thread(tb_peer.wait_for, ATTR_REQUEST, since=mark)
        assert req.topic == "v1/devices/me/attributes/request/1"
        assert req.payload == b'{"clientKeys":"a","sharedKeys":"c"}'
        # concurrent requests each get their own answer
        both = await asyncio.gather(
            client.request_attributes(shared_keys=["x"]),
            client.request_attributes(client_keys=["y"]),
        )
        assert both == [{"client": {"a": 1}, "shared": {"c": True}}] * 2


async def test_send_rpc_call_returns_response_and_payload(broker, tb_peer):
    tb_peer.answer_rpc(lambda method, params: {"method": method, "params": params})
    async with new_client(broker) as client:
        mark = tb_peer.mark()
        assert await client.send_rpc_call("getTime", {"tz": "UTC"}) == {
            "method": "getTime",
            "params": {"tz": "UTC"},
        }
        req = await in_thread(tb_peer.wait_for, RPC_REQUEST, since=mark)
        assert req.topic == "v1/devices/me/rpc/request/1"
        assert req.payload == compact({"method": "getTime", "params": {"tz": "UTC"}})


async def test_request_timeout_raises_timeout_error_and_late_answer_is_dropped(broker, tb_peer):
    async with new_client(broker, request_timeout=0.3) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(TimeoutError, match="RPC call 1"):
            await client.send_rpc_call("noAnswer", {})
        assert 0.25 <= loop.time() - t0 < 5
        with pytest.raises(TimeoutError, match="attribute request 1"):
            await client.request_attributes(shared_keys=["x"], timeout=0.2)
        assert not client._engine.is_request_pending(1)
        # the late answer to request 1 is dropped; request 2 gets its own
        tb_peer.publish("v1/devices/me/attributes/response/1", {"shared": {"late": 1}})
        tb_peer.answer_attribute_requests({"shared": {"x": 2}})
        assert await client.request_attributes(shared_keys=["x"]) == {"shared": {"x": 2}}


async def test_cancelling_a_waiting_task_cleans_up_its_request(broker, tb_peer):
    async with new_client(broker) as client:
        mark = tb_peer.mark()
        task = asyncio.ensure_future(client.request_attributes(shared_keys=["x"], timeout=60))
        req = await in_thread(tb_peer.wait_for, ATTR_REQUEST, since=mark)
        rid = int(req.topic.rsplit("/", 1)[1])
        assert client._engine.is_request_pending(rid)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client._engine.is_request_pending(rid)
        assert client._requests == {}
        tb_peer.answer_rpc({"ok": 1})
        assert await client.send_rpc_call("m") == {"ok": 1}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_asyncio_timeout_bounds_a_call(broker, tb_peer):
    async with new_client(broker) as client:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.send_rpc_call("noAnswer", {}, timeout=60)
        assert not client._engine.is_request_pending(1)
        assert client._requests == {}


async def test_disconnect_ends_pending_waits(broker, tb_peer):
    client = new_client(broker)
    await client.connect()
    pending = asyncio.ensure_future(client.request_attributes(shared_keys=["x"], timeout=60))
    stream = client.rpc_requests()
    nxt = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)  # let both start waiting
    await client.disconnect()
    with pytest.raises(ConnectionError):
        await pending
    with pytest.raises(StopAsyncIteration):
        await nxt
    assert not client.connected
    await client.disconnect()  # idempotent
    assert await client.flush(timeout=1) is True  # nothing queued


async def test_send_before_connect_is_delivered_after_connect(broker, tb_peer):
    client = new_client(broker)
    mark = tb_peer.mark()
    handle = await client.send_telemetry({"early": 1})
    assert await handle.wait(timeout=0.2) is False  # queued, not connected yet
    waiting = asyncio.ensure_future(handle.wait())
    async with client:
        assert await asyncio.wait_for(waiting, 10) is True
    msg = await in_thread(tb_peer.wait_for, TELEMETRY, since=mark)
    assert msg.payload == b'{"early":1}'


async def test_a_client_dropped_without_disconnect_is_freed(broker, tb_peer):
    import gc
    import weakref

    client = new_client(broker)
    await client.connect()
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None


# -- server-side RPC and attribute updates ----------------------------------------------------


async def test_rpc_requests_iterator_and_reply(broker, tb_peer):
    async with new_client(broker) as client:
        mark = tb_peer.mark()
        tb_peer.server_rpc(7, "setGpio", {"pin": 4})
        async with client.rpc_requests() as requests:
            async for request in requests:
                assert (request.id, request.method, request.params) == ("7", "setGpio", {"pin": 4})
                h = await request.reply({"ok": True})
                assert await h.wait(10)
                break
        reply = await in_thread(tb_peer.wait_for, "v1/devices/me/rpc/response/7", since=mark)
        assert reply.payload == b'{"ok":true}'


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_rpc_handler_callbacks_sync_and_async(broker, tb_peer, kind):
    async with new_client(broker) as client:
        got: asyncio.Queue = asyncio.Queue()

        def sync_handler(rid: str, body: Any) -> None:
            got.put_nowait((rid, body))

        async def async_handler(rid: str, body: Any) -> None:
            await client.send_rpc_reply(rid, {"echo": body["params"]})
            got.put_nowait((rid, body))

        client.set_server_side_rpc_request_handler(
            sync_handler if kind == "sync" else async_handler
        )
        mark = tb_peer.mark()
        tb_peer.server_rpc("12", "m", [1, 2])
        rid, body = await asyncio.wait_for(got.get(), 10)
        assert rid == "12" and body == {"method": "m", "params": [1, 2]}
        if kind == "async":
            reply = await in_thread(tb_peer.wait_for, "v1/devices/me/rpc/response/12", since=mark)
            assert reply.payload == b'{"echo":[1,2]}'


async def test_attribute_updates_iterator_and_callbacks(broker, tb_peer):
    async with new_client(broker) as client:
        seen_sync: list = []
        seen_async: asyncio.Queue = asyncio.Queue()

        async def on_async(result: Any, exc: Any) -> None:
            seen_async.put_nowait(result)

        sid = client.subscribe_to_attribute("led", lambda r, e: seen_sync.append(r))
        client.subscribe_to_all_attributes(on_async)
        updates = client.attribute_updates("temp")
        tb_peer.push_attributes({"temp": 21})
        tb_peer.push_attributes({"led": True})
        assert await asyncio.wait_for(updates.__anext__(), 10) == {"temp": 21}
        assert await asyncio.wait_for(seen_async.get(), 10) == {"temp": 21}
        assert await asyncio.wait_for(seen_async.get(), 10) == {"led": True}
        assert seen_sync == [{"led": True}]
        client.unsubscribe_from_attribute(sid)
        await updates.aclose()
        tb_peer.push_attributes({"led": False, "temp": 22})
        assert await asyncio.wait_for(seen_async.get(), 10) == {"led": False, "temp": 22}
        assert seen_sync == [{"led": True}]
        with pytest.raises(StopAsyncIteration):
            await updates.__anext__()


async def test_callback_exceptions_are_logged_and_the_client_goes_on(broker, tb_peer, caplog):
    async with new_client(broker) as client:
        got: asyncio.Queue = asyncio.Queue()

        def bad(result: Any, exc: Any) -> None:
            raise RuntimeError("boom")

        async def bad_async(result: Any, exc: Any) -> None:
            raise RuntimeError("async boom")

        client.subscribe_to_all_attributes(bad)
        client.subscribe_to_all_attributes(bad_async)
        client.subscribe_to_all_attributes(lambda r, e: got.put_nowait(r))
        with caplog.at_level(logging.ERROR, logger="thingsboard_sdk"):
            tb_peer.push_attributes({"a": 1})
            tb_peer.push_attributes({"a": 2})
            assert await asyncio.wait_for(got.get(), 10) == {"a": 1}
            assert await asyncio.wait_for(got.get(), 10) == {"a": 2}
            await asyncio.sleep(0)  # the failed task's done-callback runs
        assert "boom" in caplog.text and "async boom" in caplog.text


# -- connecting ---------------------------------------------------------------------------------


async def test_refused_connect_raises_connection_error_with_reason(tb_devserver):
    client = AsyncTBDeviceClient(tb_devserver.host, tb_devserver.port, access_token="wrong")
    with pytest.raises(ConnectionError, match="not authori"):
        async with client:
            pass
    assert not client.connected


async def test_unreachable_connect_raises(broker):
    from conftest import free_port

    client = AsyncTBDeviceClient("127.0.0.1", free_port(), access_token="x")
    with pytest.raises(ConnectionError):
        await client.connect(timeout=5)


async def test_connect_timeout_when_server_never_answers(fake_broker):
    fb = fake_broker(connack=None)
    client = AsyncTBDeviceClient("127.0.0.1", fb.port, access_token="x")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        await client.connect(timeout=0.5)
    assert loop.time() - t0 < 5
    assert not client.connected


async def test_reconnect_after_disconnect_and_many_clients_on_the_devserver(tb_devserver):
    tokens = [f"T{i}" for i in range(20)]
    for i, t in enumerate(tokens):
        tb_devserver.add_device(f"d{i}", t)
    clients = [
        AsyncTBDeviceClient(tb_devserver.host, tb_devserver.port, access_token=t) for t in tokens
    ]

    def clean_disconnects() -> int:
        events = tb_devserver.connection_events()
        return sum(
            1 for e in events if e.kind == "disconnected" and e.reason == "client DISCONNECT"
        )

    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.disconnect() for c in clients))
    # disconnect() returns once DISCONNECT is written; a connect() with the same client id that
    # reaches the server before it read that packet takes the old session over instead (as on
    # ThingsBoard), so the reconnect waits until the server has seen every DISCONNECT.
    await in_thread(tb_devserver.wait_for, lambda: clean_disconnects() >= 20, 10, "20 DISCONNECTs")
    await asyncio.gather(*(c.connect() for c in clients))
    hs = [await c.send_telemetry({"n": i}) for i, c in enumerate(clients)]
    assert await asyncio.gather(*(h.wait(10) for h in hs)) == [True] * 20
    await asyncio.gather(*(c.disconnect() for c in clients))

    def stored() -> bool:
        return all(tb_devserver.latest_telemetry(f"d{i}").get("n") == i for i in range(20))

    # acknowledged is not yet stored: the server stores after its PUBACK
    assert await in_thread(tb_devserver.wait_for, stored, 10, "every device's telemetry")

    # the server records a DISCONNECT once it read it, after the client wrote it
    await in_thread(tb_devserver.wait_for, lambda: clean_disconnects() >= 40, 10, "40 DISCONNECTs")
    assert clean_disconnects() == 40


# -- firmware -------------------------------------------------------------------------------------


async def test_firmware_update_with_progress_callbacks_and_iterator(tb_devserver, tmp_path):
    tb_devserver.add_device("fw", "FW")
    image = bytes(range(256)) * 1024  # 256 KiB
    progress: list = []
    updated: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_update(path: str, info: dict) -> None:
        updated.set_result((path, info))

    client = AsyncTBDeviceClient(
        tb_devserver.host,
        tb_devserver.port,
        access_token="FW",
        chunk_size=16384,
        firmware_dir=str(tmp_path),
        on_firmware_update=on_update,
        on_firmware_progress=lambda got, total: progress.append((got, total)),
    )
    async with client:
        events = client.firmware_updates()
        tb_devserver.set_firmware("fw", image, "lamp.bin", "2.0")
        path, info = await asyncio.wait_for(updated, 30)
        assert open(path, "rb").read() == image
        assert info["fw_title"] == "lamp.bin" and info["fw_version"] == "2.0"
        assert progress[-1] == (len(image), len(image))
        assert [p[0] for p in progress] == sorted(p[0] for p in progress)
        kinds = []
        async for ev in events:
            assert isinstance(ev, FirmwareEvent)
            kinds.append(ev.kind)
            if ev.kind == "updated":
                assert ev.path == path
                break
        assert kinds[0] == "started" and "progress" in kinds
        assert client.current_firmware_info["current_fw_version"] == "2.0"
        state = await in_thread(
            tb_devserver.wait_for,
            lambda: tb_devserver.latest_telemetry("fw").get("fw_state") == "UPDATED",
            10,
        )
        assert state


# -- provisioning and TLS -----------------------------------------------------------------------


async def test_provision_then_connect_with_the_credentials(tb_devserver):
    from thingsboard_sdk.tb_device_mqtt import ProvisionError, TBDeviceMqttClient

    tb_devserver.add_provision_profile("pk", "ps")
    request = TBDeviceMqttClient.get_provision_request("pk", "ps", device_name="aio-7")
    creds = await AsyncTBDeviceClient.provision(
        tb_devserver.host, tb_devserver.port, request, timeout=10
    )
    assert creds["status"] == "SUCCESS" and creds["credentialsType"] == "ACCESS_TOKEN"
    token = creds["credentialsValue"]
    async with AsyncTBDeviceClient(tb_devserver.host, tb_devserver.port, access_token=token) as c:
        assert await (await c.send_telemetry({"battery": 97}))
    stored = await in_thread(tb_devserver.wait_for, lambda: tb_devserver.latest_telemetry("aio-7"))
    assert stored == {"battery": 97}
    bad = TBDeviceMqttClient.get_provision_request("pk", "wrong", device_name="x")
    with pytest.raises(ProvisionError):
        await AsyncTBDeviceClient.provision(tb_devserver.host, tb_devserver.port, bad, timeout=10)


async def test_tls_with_the_right_ca_and_a_clear_error_with_the_wrong_one(tmp_path):
    import shutil

    if not shutil.which("openssl"):
        pytest.skip("needs the openssl CLI")
    from test_tls import SERVER_EXT, TLSMosquitto, make_ca, make_leaf

    make_ca(tmp_path, "ca")
    make_ca(tmp_path, "other-ca")
    make_leaf(tmp_path, "server", "ca", "127.0.0.1", SERVER_EXT)
    b = TLSMosquitto(tmp_path / "b", tmp_path)
    b.workdir.mkdir()
    with b:
        kw = dict(access_token="tok-tls", tls=True, reconnect=False)
        good = AsyncTBDeviceClient(b.host, b.port, ca_certs=str(tmp_path / "ca.crt"), **kw)
        async with good:
            assert await (await good.send_telemetry({"tls": 1})).wait(10)
        bad = AsyncTBDeviceClient(b.host, b.port, ca_certs=str(tmp_path / "other-ca.crt"), **kw)
        with pytest.raises(ConnectionError, match="TLS"):
            await bad.connect(timeout=10)
