"""A backlog of gateway uploads leaves in fewer PUBLISHes (several devices per message,
thingsboard-gateway.md A.6/A.7), and light traffic keeps one PUBLISH per call.

The backlog is built the plain way: uploads accepted before ``connect()`` wait in the queue; the
first packets fill the in-flight window, and once it reopens the rest leave merged. What arrives
is checked by parsing every payload (a paho subscriber on mosquitto; the dev server's store).
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient

N = 300


def sent_by_device(msgs) -> dict:
    """{device: [entry, ...]} over every v1/gateway/telemetry payload, in arrival order."""
    out: dict = {}
    for m in msgs:
        for device, entries in json.loads(m.payload).items():
            out.setdefault(device, []).extend(entries)
    return out


def test_a_backlog_reaches_mosquitto_in_fewer_publishes_and_complete(broker, tb_peer):
    gw = TBGatewayMqttClient(
        broker.host, broker.port, username="gw-" + uuid.uuid4().hex[:8], max_inflight=8
    )
    try:
        handles = [gw.gw_send_telemetry(f"dev-{i:03d}", {"i": i, "k": "v"}) for i in range(N)]
        mark = tb_peer.mark()
        assert gw.connect(timeout=10) is not None
        assert all(h.wait(20) for h in handles)
        msgs = [m for m in tb_peer.barrier(gw, 20)[mark:] if m.topic == "v1/gateway/telemetry"]
    finally:
        gw.disconnect()
    # The first ones fill the window one per call; what waited behind them leaves merged.
    assert len(msgs) < N // 4, len(msgs)
    assert json.loads(msgs[0].payload) == {"dev-000": [{"i": 0, "k": "v"}]}
    assert any(len(json.loads(m.payload)) > 1 for m in msgs)
    assert sent_by_device(msgs) == {f"dev-{i:03d}": [{"i": i, "k": "v"}] for i in range(N)}


def test_a_repeated_device_starts_a_new_publish(broker, tb_peer):
    gw = TBGatewayMqttClient(
        broker.host, broker.port, username="gw-" + uuid.uuid4().hex[:8], max_inflight=1
    )
    try:
        # Three rounds over five devices, queued before connecting.
        for r in range(3):
            for d in range(5):
                gw.gw_send_telemetry(f"d{d}", {"r": r})
        mark = tb_peer.mark()
        assert gw.connect(timeout=10) is not None
        assert gw.flush(20)
        msgs = [m for m in tb_peer.barrier(gw, 20)[mark:] if m.topic == "v1/gateway/telemetry"]
    finally:
        gw.disconnect()
    for m in msgs:
        names = [name for name, _ in json.loads(m.payload, object_pairs_hook=list)]
        assert len(names) == len(set(names)), f"a device twice in one message: {m.payload!r}"
    # Every round of every device, in the order sent.
    assert sent_by_device(msgs) == {f"d{d}": [{"r": r} for r in range(3)] for d in range(5)}
    assert len(msgs) < 15


def test_light_traffic_keeps_one_publish_per_call_with_its_bytes(broker, tb_peer):
    gw = TBGatewayMqttClient(broker.host, broker.port, username="gw-" + uuid.uuid4().hex[:8])
    try:
        assert gw.connect(timeout=10) is not None
        mark = tb_peer.mark()
        handles = [gw.gw_send_telemetry(f"L{i}", {"t": i}) for i in range(5)]
        handles += [gw.gw_send_attributes(f"L{i}", {"a": i}) for i in range(3)]
        assert all(h.wait(10) for h in handles)
        # The gateway's own getSessionLimits request may reach the peer after the mark.
        got = [
            (m.topic, m.payload)
            for m in tb_peer.barrier(gw)[mark:]
            if m.topic.startswith("v1/gateway/")
        ]
    finally:
        gw.disconnect()
    want = [("v1/gateway/telemetry", b'{"L%d":[{"t":%d}]}' % (i, i)) for i in range(5)]
    want += [("v1/gateway/attributes", b'{"L%d":{"a":%d}}' % (i, i)) for i in range(3)]
    assert got == want


@pytest.fixture
def server():
    with DevServer(http_port=None) as s:
        yield s


def test_the_dev_server_stores_every_data_point_of_a_merged_backlog(server):
    token = server.add_device("GW", gateway=True)
    gw = TBGatewayMqttClient(server.host, server.port, username=token, max_inflight=4)
    devices, rounds = 100, 3
    try:
        handles = [
            gw.gw_send_telemetry(
                f"sub-{d:03d}", [{"ts": 1_700_000_000_000 + r, "values": {"a": d, "b": r}}]
            )
            for r in range(rounds)
            for d in range(devices)
        ]
        handles.append(gw.gw_send_attributes("sub-000", {"model": "M"}))
        handles.append(gw.gw_send_attributes("sub-001", {"model": "N"}))
        assert gw.connect(timeout=10) is not None
        assert all(h.wait(20) for h in handles)
    finally:
        gw.disconnect()
    for d in range(devices):
        name = f"sub-{d:03d}"
        a = [(p.ts, p.value) for p in server.telemetry(name, "a")]
        b = [(p.ts, p.value) for p in server.telemetry(name, "b")]
        assert sorted(a) == [(1_700_000_000_000 + r, d) for r in range(rounds)], name
        assert sorted(b) == [(1_700_000_000_000 + r, r) for r in range(rounds)], name
    assert server.client_attributes("sub-000") == {"model": "M"}
    assert server.client_attributes("sub-001") == {"model": "N"}


def test_a_durable_queue_keeps_each_message_and_forgets_a_merged_packets_all(
    broker, tb_peer, tmp_path
):
    kw = dict(username="gw-" + uuid.uuid4().hex[:8], client_id="merge-dq", max_inflight=2)
    gw = TBGatewayMqttClient(broker.host, broker.port, queue_dir=str(tmp_path), **kw)
    for i in range(50):
        gw.gw_send_telemetry(f"q{i}", {"i": i})
    gw.disconnect()  # never connected: the 50 stay in the folder
    gw = TBGatewayMqttClient(broker.host, broker.port, queue_dir=str(tmp_path), **kw)
    try:
        assert gw._engine.queued == 50
        mark = tb_peer.mark()
        assert gw.connect(timeout=10) is not None
        assert gw.flush(20)
        msgs = [m for m in tb_peer.barrier(gw, 20)[mark:] if m.topic == "v1/gateway/telemetry"]
    finally:
        gw.disconnect()
    assert len(msgs) < 50
    assert sent_by_device(msgs) == {f"q{i}": [{"i": i}] for i in range(50)}
    # A new process with the same folder finds nothing left to send.
    again = TBGatewayMqttClient(broker.host, broker.port, queue_dir=str(tmp_path), **kw)
    try:
        assert again._engine.queued == 0
    finally:
        again.disconnect()


def test_a_dropped_connection_mid_backlog_loses_nothing(server):
    token = server.add_device("GW", gateway=True)
    gw = TBGatewayMqttClient(server.host, server.port, username=token, max_inflight=2)
    devices, rounds = 200, 5
    try:
        handles = [
            gw.gw_send_telemetry(f"cut-{d:03d}", {"v": r * 1000 + d})
            for r in range(rounds)
            for d in range(devices)
        ]
        assert gw.connect(timeout=10) is not None
        # Cut the gateway's session while the backlog (merged packets) is in flight.
        assert server.disconnect_device("GW")
        assert all(h.wait(30) for h in handles)
        assert gw._engine.sessions >= 2
    finally:
        gw.disconnect()
    for d in range(devices):
        name = f"cut-{d:03d}"
        stored = {p.value for p in server.telemetry(name, "v")}
        # Resent after the cut: duplicates are allowed, losses are not.
        assert stored == {r * 1000 + d for r in range(rounds)}, name


def test_merged_packets_stay_within_the_servers_data_point_limit():
    # The dev server closes a gateway whose relayed data points exceed 40 per second (A.11).
    # A burst fills the window of 2, so what follows is merged: each merged packet must count,
    # for pacing, as one upload with the sum of its data points.
    limits = dict(
        gateway_telemetry_rate_limits="1000:1", gateway_telemetry_data_point_rate_limits="40:1"
    )
    with DevServer(http_port=None, **limits) as server:
        token = server.add_device("GW", gateway=True)
        gw = TBGatewayMqttClient(server.host, server.port, username=token, max_inflight=2)
        try:
            assert gw.connect(timeout=10) is not None
            # Answered in order: once this reply is here, the client's own getSessionLimits
            # (sent right after connecting) was answered too, and pacing is in force.
            answered = threading.Event()
            gw.request_service_configuration(lambda *_: answered.set())
            assert answered.wait(10)
            handles = [gw.gw_send_telemetry(f"lim-{i:03d}", {"i": i}) for i in range(100)]
            assert all(h.wait(30) for h in handles)
            assert gw.connected
            assert gw._engine.sessions == 1, "the server closed the gateway"
        finally:
            gw.disconnect()
        for i in range(100):
            assert [p.value for p in server.telemetry(f"lim-{i:03d}", "i")] == [i]
