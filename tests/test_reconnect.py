"""Automatic reconnect, resend of unacknowledged QoS 1 messages, and the outgoing queue bound.

Each test owns a mosquitto on a fixed port that it stops and starts. The broker keeps the
peer's persistent session across restarts, so a missing number is the client's fault.
"""

from __future__ import annotations

import time

import pytest
from conftest import Mosquitto, pump_until, wait_until
from thingsboard_sdk.exceptions import QueueFullError
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

TELEMETRY = "v1/devices/me/telemetry"


def make(b: Mosquitto, token: str, **kw) -> TBDeviceMqttClient:
    kw.setdefault("client_id", "dev-" + token)
    return TBDeviceMqttClient(b.host, b.port, access_token=token, **kw)


def numbers(peer) -> set[int]:
    out = set()
    for m in peer.matching(TELEMETRY):
        try:
            out.add(m.json()["i"])
        except (ValueError, KeyError, TypeError):
            pass
    return out


def raises_oserror(client) -> bool:
    try:
        client.check_for_msg()
    except OSError:
        return True
    return False


def test_every_qos1_message_survives_a_broker_restart(restartable_broker, peer_factory, token):
    b = restartable_broker
    peer = peer_factory(b, persistent=True)
    client = make(b, token)
    try:
        assert client.connect() == 0
        total = 600
        for i in range(total):
            client.send_telemetry({"i": i})
            if i == 200:
                b.stop()
                wait_until(lambda: not client.connected, 10, "connected to go False")
                with pytest.raises(OSError):
                    client.check_for_msg()
            if i == 400:
                b.start()
        wait_until(lambda: client.connected, 15, "reconnect")
        assert client.flush(timeout=30) is True
        peer.wait_subscribed()
        peer.wait_for_predicate(lambda _msgs: numbers(peer) >= set(range(total)), timeout=30)
        assert numbers(peer) == set(range(total))  # duplicates allowed, none lost
    finally:
        client.disconnect()


def test_connected_false_while_down_then_true(restartable_broker, peer_factory, token):
    b = restartable_broker
    client = make(b, token)
    try:
        assert client.connect() == 0
        b.stop()
        wait_until(lambda: not client.connected, 10, "connected to go False")
        assert raises_oserror(client)
        assert client.last_error  # why the link dropped
        h = client.send_telemetry({"while": "down"})
        assert h.wait(timeout=0.3) is False  # not acknowledged while the broker is away
        assert client.flush(timeout=0.3) is False
        b.start()
        wait_until(lambda: client.connected, 15, "reconnect")
        assert h.wait(timeout=10) is True
        assert client.flush(timeout=10) is True
        client.check_for_msg()  # no OSError once back
    finally:
        client.disconnect()


def test_subscriptions_restored_after_reconnect(restartable_broker, peer_factory, token):
    b = restartable_broker
    peer = peer_factory(b)
    client = make(b, token)
    got = []
    client.subscribe_to_attribute("k", lambda r, *a: got.append(r))
    try:
        assert client.connect() == 0
        b.stop()
        wait_until(lambda: not client.connected, 10, "connected to go False")
        b.start()
        wait_until(lambda: client.connected, 15, "reconnect")
        peer.wait_subscribed()
        # the device's SUBSCRIBE may still be in flight right after CONNACK: retry the push
        deadline = time.monotonic() + 15
        n = 0
        while not got and time.monotonic() < deadline:
            n += 1
            peer.push_attributes({"k": n})
            try:
                pump_until(client, lambda: got, timeout=0.5)
            except AssertionError:
                pass
        assert got and "k" in got[0]
    finally:
        client.disconnect()


def test_reconnect_disabled_stays_down(restartable_broker, token):
    b = restartable_broker
    client = make(b, token, reconnect=False)
    try:
        assert client.connect() == 0
        b.stop()
        wait_until(lambda: not client.connected, 10, "connected to go False")
        b.start()
        with pytest.raises(AssertionError):
            wait_until(lambda: client.connected, 2, "no reconnect expected")
        assert client.connect() == 0  # an explicit connect still works
    finally:
        client.disconnect()


def test_queue_bound_raises_queue_full(restartable_broker, peer_factory, token):
    b = restartable_broker
    peer = peer_factory(b, persistent=True)
    client = make(b, token, max_queued_messages=10)
    try:
        assert client.connect() == 0
        b.stop()
        wait_until(lambda: not client.connected, 10, "connected to go False")
        t0 = time.monotonic()
        for i in range(10):
            client.send_telemetry({"i": i})
        with pytest.raises(QueueFullError) as info:
            client.send_telemetry({"i": 10})
        assert time.monotonic() - t0 < 2, "send_* blocked instead of raising"
        assert isinstance(info.value, RuntimeError)
        assert str(info.value)
        b.start()
        wait_until(lambda: client.connected, 15, "reconnect")
        assert client.flush(timeout=15) is True
        peer.wait_subscribed()
        peer.wait_for_predicate(lambda _m: numbers(peer) >= set(range(10)), timeout=15)
        assert 10 not in numbers(peer)
        client.send_telemetry({"i": 11})  # room again once acknowledged
    finally:
        client.disconnect()


def test_disconnect_while_down_is_bounded(restartable_broker, token):
    b = restartable_broker
    client = make(b, token)
    assert client.connect() == 0
    b.stop()
    wait_until(lambda: not client.connected, 10, "connected to go False")
    client.send_telemetry({"lost": "maybe"})
    t0 = time.monotonic()
    client.disconnect()
    assert time.monotonic() - t0 < 30
    assert client.connected is False
