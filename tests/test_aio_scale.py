"""The asyncio client under faults and at scale: nothing lost, 1,000 clients in one loop.

The device talks to mosquitto through ``faults.FaultProxy`` (reset, cut mid-packet, outage,
blackhole, broker restart); the subscriber (a persistent ThingsBoard peer) talks to mosquitto
directly, so every gap in the numbers is the client's. Figures print with ``-s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid

import pytest
from faults import FaultScript, LinkWatch, numbers, tally
from thingsboard_sdk.aio import AsyncTBDeviceClient

pytestmark = pytest.mark.asyncio


async def test_qos1_from_a_coroutine_survives_link_faults_and_broker_restart(
    restartable_broker, proxy, peer_factory
):
    """20 msg/s for 16 s through a reset, a cut mid-packet, an outage, a blackhole and a
    broker restart: every number arrives."""
    b = restartable_broker
    peer = peer_factory(b, persistent=True)
    rate, seconds = 20, 16
    total = rate * seconds
    client = AsyncTBDeviceClient(
        proxy.host,
        proxy.port,
        access_token="tok-" + uuid.uuid4().hex[:8],
        client_id="aio-faults-" + uuid.uuid4().hex[:8],
        keepalive=1,  # a blackholed link is noticed after about 2 keepalives
    )
    await client.connect(timeout=10)
    watch = LinkWatch(client)
    start = time.monotonic()
    script = FaultScript(
        proxy,
        b,
        watch,
        start,
        reset=1.5,
        cut=4.0,
        outage=(6.0, 7.5),
        blackhole=(8.5, 11.5),
        restart=12.5,
    )
    loop = asyncio.get_running_loop()
    handles = []
    try:
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing, not synchronisation
            handles.append(await client.send_telemetry({"i": i}))
        await loop.run_in_executor(None, script.join, 40)
        assert await client.flush(timeout=30) is True
        assert all(await asyncio.gather(*(h.wait(10) for h in handles)))
        await loop.run_in_executor(None, peer.wait_subscribed)
        await loop.run_in_executor(
            None,
            lambda: peer.wait_for_predicate(
                lambda _m: set(numbers(peer)) >= set(range(total)), timeout=30
            ),
        )
    finally:
        watch.stop()
        await client.disconnect()
    lost, dups = tally(numbers(peer), total)
    print(
        f"\naio faults: sent {total}, lost {len(lost)}, duplicates {sum(dups.values())}, "
        f"drops {watch.downs()}"
    )
    for what, secs in script.reconnects.items():
        print(f"aio faults: reconnected {secs * 1000:.0f} ms after {what}")
    assert lost == [], f"lost {len(lost)}: {lost[:20]}"
    assert watch.downs() >= 5, watch.transitions


async def test_full_queue_waits_for_room_instead_of_raising(
    restartable_broker, proxy, peer_factory
):
    """Blackholed with ``max_queued_messages=20``: the 21st send waits (it neither raises nor
    drops) until the link is back; then all 30 arrive."""
    peer = peer_factory(restartable_broker, persistent=True)
    client = AsyncTBDeviceClient(
        proxy.host,
        proxy.port,
        access_token="t",
        client_id="aio-qf-" + uuid.uuid4().hex[:8],
        max_queued_messages=20,
    )
    await client.connect(timeout=10)
    try:
        proxy.blackhole()
        for i in range(20):
            await client.send_telemetry({"i": i})

        async def rest() -> None:
            for i in range(20, 30):
                await client.send_telemetry({"i": i})

        task = asyncio.ensure_future(rest())
        done, _ = await asyncio.wait({task}, timeout=0.5)
        assert not done, "send_telemetry returned while the queue was full"
        assert client.queued == 20
        proxy.restore()
        await asyncio.wait_for(task, 30)
        assert await client.flush(timeout=30) is True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None,
            lambda: peer.wait_for_predicate(
                lambda _m: set(numbers(peer)) >= set(range(30)), timeout=30
            ),
        )
    finally:
        await client.disconnect()


async def test_thousand_clients_in_one_loop(broker, tb_peer):
    """1,000 clients connect together from one loop, each sends one message, all arrive."""
    n = 1000
    run = uuid.uuid4().hex[:8]
    clients = [
        AsyncTBDeviceClient(
            broker.host, broker.port, access_token=f"k{i}", client_id=f"aio-{run}-{i}"
        )
        for i in range(n)
    ]
    await clients[0].connect()  # starts the engine's IO threads if no test did yet
    threads0 = len(os.listdir("/proc/self/task"))
    t0 = time.monotonic()
    await asyncio.gather(*(c.connect(timeout=60) for c in clients[1:]))
    connected = time.monotonic() - t0
    assert all(c.connected for c in clients)
    assert len(os.listdir("/proc/self/task")) == threads0, "threads grew with the clients"
    mark = tb_peer.mark()
    handles = [await c.send_telemetry({"run": run, "dev": i}) for i, c in enumerate(clients)]
    assert await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 60) == [True] * n
    loop = asyncio.get_running_loop()

    def mine() -> set:
        out = set()
        for m in tb_peer.matching("v1/devices/me/telemetry", since=mark):
            body = json.loads(m.payload)
            if body.get("run") == run:
                out.add(body["dev"])
        return out

    await loop.run_in_executor(
        None, lambda: tb_peer.wait_for_predicate(lambda _m: len(mine()) == n, timeout=60)
    )
    t1 = time.monotonic()
    await asyncio.gather(*(c.disconnect() for c in clients))
    print(
        f"\naio: {n} clients connected in {connected:.2f} s, "
        f"disconnected in {time.monotonic() - t1:.2f} s"
    )
    assert mine() == set(range(n))
    assert not any(c.connected for c in clients)
