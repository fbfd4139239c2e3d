"""Many clients in one process: connect_all, DeviceGroup, no thread per client."""

from __future__ import annotations

import os
import socket
import threading
import time

from conftest import compact
from thingsboard_sdk.fleet import DeviceGroup, connect_all
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

N = 200


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_connect_all_connects_every_client_without_a_thread_each(broker, token):
    before = _os_threads()
    clients = [
        TBDeviceMqttClient(broker.host, broker.port, access_token=f"{token}-{i}") for i in range(N)
    ]
    try:
        assert connect_all(clients, timeout=30) == N
        assert all(c.connected for c in clients)
        # The engine's IO threads are created once per process (at most 2 here), never per client.
        assert _os_threads() - before <= 2
        handles = [c.send_telemetry({"i": i}) for i, c in enumerate(clients)]
        assert all(h.wait(10) for h in handles)
    finally:
        for c in clients:
            c.disconnect()


def test_connect_all_reports_failures_without_raising(token):
    # Nothing listens on this port: every attempt fails, none raises.
    from conftest import free_port

    port = free_port()
    clients = [TBDeviceMqttClient("127.0.0.1", port, access_token=f"{token}-{i}") for i in range(3)]
    assert connect_all(clients, timeout=5) == 0
    assert all(c.last_error for c in clients)


def test_attempts_whose_syns_are_dropped_do_not_hold_up_other_connects(broker, token):
    # A listener whose one-place accept queue is taken and never served: the kernel drops
    # every SYN sent to it, as a loaded broker's full listen backlog does.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(0)
    filler = socket.create_connection(black_hole.getsockname(), timeout=5)
    host, port = black_hole.getsockname()
    # As many attempts as the engine lets run at once (100): each waits for a SYN-ACK that
    # never comes, and each attempt may last two minutes.
    stuck = [TBDeviceMqttClient(host, port, access_token=f"{token}-s{i}") for i in range(100)]
    healthy = TBDeviceMqttClient(broker.host, broker.port, access_token=token)
    try:
        for c in stuck:
            c._engine.connect(120, wait=False)  # what connect_all does: start, do not wait
        # A handshake that gets no answer soon is given up and tried again behind the
        # others, so this connect is not held for the stuck attempts' two minutes.
        assert healthy.connect(timeout=30) == 0
        assert not any(c.connected for c in stuck)
    finally:
        healthy.disconnect()
        for c in stuck:
            c.disconnect()
        filler.close()
        black_hole.close()


def test_device_group_serves_every_client_on_the_calling_thread(broker, tb_peer, token):
    clients = [
        TBDeviceMqttClient(broker.host, broker.port, access_token=f"{token}-{i}") for i in range(N)
    ]
    seen: dict[int, list] = {}
    threads = set()

    def make_cb(i):
        def cb(result, *args):
            threads.add(threading.get_ident())
            seen.setdefault(i, []).append(result)

        return cb

    try:
        assert connect_all(clients, timeout=30) == N
        for i, c in enumerate(clients):
            c.subscribe_to_attribute("frequency", make_cb(i))
        group = DeviceGroup(clients)
        assert len(group) == N
        # On mosquitto every device subscribes to the same filter, so one push reaches all.
        tb_peer.publish("v1/devices/me/attributes", compact({"frequency": 7}))
        deadline = time.monotonic() + 15
        while len(seen) < N and time.monotonic() < deadline:
            group.wait_for_msg(timeout=1.0)
        assert len(seen) == N
        assert all(v == [{"frequency": 7}] for v in seen.values())
        assert threads == {threading.get_ident()}
        # Nothing else is pending: a short wait processes nothing.
        assert group.wait_for_msg(timeout=0.2) == 0
    finally:
        for c in clients:
            c.disconnect()


def test_device_group_answers_a_distinct_rpc_per_device(tb_devserver):
    # Each device gets its own request here (on mosquitto one push reaches all), and clients
    # join the group one by one with add().
    n = 50
    tokens = [tb_devserver.add_device(f"fleet-{i}") for i in range(n)]
    clients = [
        TBDeviceMqttClient(tb_devserver.host, tb_devserver.port, access_token=t) for t in tokens
    ]
    group = DeviceGroup()
    for i, c in enumerate(clients):

        def on_rpc(request_id, body, c=c, i=i):
            c.send_rpc_reply(request_id, {"device": i, "n": body["params"]["n"]})

        c.set_server_side_rpc_request_handler(on_rpc)
        group.add(c)
    assert len(group) == n
    try:
        assert connect_all(clients, timeout=30) == n
        calls = [tb_devserver.start_rpc(f"fleet-{i}", "echo", {"n": i * 7}) for i in range(n)]
        deadline = time.monotonic() + 15
        replies: dict[int, object] = {}
        while len(replies) < n and time.monotonic() < deadline:
            group.wait_for_msg(timeout=0.5)
            for i, call in enumerate(calls):
                done, value = call.poll()
                if done:
                    replies[i] = value
        assert replies == {i: {"device": i, "n": i * 7} for i in range(n)}
    finally:
        for c in clients:
            c.disconnect()


def test_device_group_remove_stops_serving_that_client(tb_devserver):
    tokens = [tb_devserver.add_device(f"rm-{i}") for i in range(2)]
    clients = [
        TBDeviceMqttClient(tb_devserver.host, tb_devserver.port, access_token=t) for t in tokens
    ]
    seen: list[int] = []
    for i, c in enumerate(clients):
        c.set_server_side_rpc_request_handler(
            lambda rid, body, c=c, i=i: (seen.append(i), c.send_rpc_reply(rid, {"i": i}))
        )
    group = DeviceGroup(clients)
    group.remove(clients[1])
    group.remove(clients[1])  # not a member any more: ignored
    assert len(group) == 1
    try:
        assert connect_all(clients, timeout=30) == 2
        kept = tb_devserver.start_rpc("rm-0", "ping", {})
        dropped = tb_devserver.start_rpc("rm-1", "ping", {})
        deadline = time.monotonic() + 10
        while not kept.poll()[0] and time.monotonic() < deadline:
            group.wait_for_msg(timeout=0.5)
        assert kept.poll() == (True, {"i": 0})
        group.check_for_msg()
        assert seen == [0] and dropped.poll()[0] is False
        # The removed client is served by polling it directly.
        clients[1].wait_for_msg(timeout=5)
        assert seen == [0, 1]
    finally:
        for c in clients:
            c.disconnect()
