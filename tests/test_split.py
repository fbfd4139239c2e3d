"""Telemetry and attributes bigger than one packet are split into messages that each fit.

spec: thingsboard-gateway.md B.4 (the reference splits too); thingsboard-mqtt.md 2.5 (ThingsBoard
closes the connection on a packet over 65536 bytes of remaining length).
"""

from __future__ import annotations

TOPIC = "v1/devices/me/telemetry"


def _big(n: int, size: int) -> dict:
    return {f"key{i:04d}": "v" * size for i in range(n)}


def test_big_telemetry_is_split_and_one_handle_covers_every_part(client, tb_peer):
    data = _big(40, 3000)  # about 120 KB of JSON
    mark = tb_peer.mark()
    handle = client.send_telemetry(data)
    assert handle.wait(10) is True
    parts = tb_peer.barrier(client)[mark:]
    assert len(parts) >= 2
    got: dict = {}
    for m in parts:
        assert m.topic == TOPIC
        # remaining length = 2 + topic + packet id + payload
        assert 2 + len(TOPIC) + 2 + len(m.payload) <= 65536
        for entry in m.json():
            assert not set(entry) & set(got), "a key was sent twice"
            got.update(entry)
    assert got == data


def test_timestamped_lists_keep_their_ts_in_every_part(client, tb_peer):
    data = [
        {"ts": 1700000000000 + i, "values": {f"k{j}": "x" * 2000 for j in range(20)}}
        for i in range(3)
    ]
    mark = tb_peer.mark()
    assert client.send_telemetry(data).wait(10) is True
    parts = tb_peer.barrier(client)[mark:]
    assert len(parts) >= 2
    by_ts: dict = {}
    for m in parts:
        for entry in m.json():
            assert set(entry) == {"ts", "values"}
            by_ts.setdefault(entry["ts"], {}).update(entry["values"])
    assert by_ts == {e["ts"]: e["values"] for e in data}


def test_big_attributes_are_split_into_flat_objects(client, tb_peer):
    data = _big(30, 3000)
    mark = tb_peer.mark()
    assert client.send_attributes(data).wait(10) is True
    parts = [m for m in tb_peer.barrier(client)[mark:] if m.topic == "v1/devices/me/attributes"]
    assert len(parts) >= 2
    merged: dict = {}
    for m in parts:
        obj = m.json()
        assert isinstance(obj, dict)
        merged.update(obj)
    assert merged == data
