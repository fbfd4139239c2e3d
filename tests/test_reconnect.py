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


def test_first_connect_that_fails_keeps_trying_in_the_background(caplog):
    """connect() returns None when nothing listens (the contract), but with reconnect on the
    client keeps trying: a server started 3 s later gets the connection and what was queued."""
    import logging

    from conftest import free_port
    from thingsboard_sdk.devserver import DevServer

    caplog.set_level(logging.INFO, logger="thingsboard_sdk")
    port = free_port()
    client = TBDeviceMqttClient("127.0.0.1", port, access_token="late-tok", client_id="late")
    server = None
    try:
        assert client.connect(timeout=2) is None
        assert client.connected is False
        assert client.last_error
        for i in range(10):
            client.send_telemetry({"i": i})
        time.sleep(3.0)  # the scenario: the server comes up 3 s later
        server = DevServer(port=port, http_port=None)
        server.add_device("late", "late-tok")
        wait_until(lambda: client.connected, 15, "the background retry to connect")
        assert client.flush(timeout=15) is True
        got = sorted(p.value for p in server.telemetry("late", "i"))
        assert got == list(range(10))
    finally:
        client.disconnect()
        if server is not None:
            server.stop()


def test_disconnect_with_unacknowledged_messages_warns_and_keeps_them(
    restartable_broker, peer_factory, token, caplog
):
    """disconnect() while the broker is away: a WARNING names the count; the messages stay in
    the client, and a later connect() on the same client delivers them."""
    import logging

    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")
    b = restartable_broker
    peer = peer_factory(b, persistent=True)
    peer.wait_subscribed()
    client = make(b, token)
    try:
        assert client.connect() == 0
        b.stop()
        wait_until(lambda: not client.connected, 10, "connected to go False")
        for i in range(7):
            client.send_telemetry({"i": i})
        client.disconnect()
        warned = [r.getMessage() for r in caplog.records if "disconnect()" in r.getMessage()]
        assert warned and "7 message(s)" in warned[-1], warned
        b.start()
        assert client.connect() == 0
        assert client.flush(timeout=15) is True
        peer.wait_for_predicate(lambda _m: numbers(peer) >= set(range(7)), timeout=15)
    finally:
        client.disconnect()


def test_interpreter_exit_with_unacknowledged_messages_warns(tmp_path):
    """A script that exits with messages the broker never acknowledged: one WARNING with the
    count (nothing vanishes without a word)."""
    import subprocess
    import sys
    import textwrap

    from conftest import _child_env, free_port

    script = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.WARNING)
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        c = TBDeviceMqttClient("127.0.0.1", {free_port()}, access_token="t", client_id="gone")
        c.connect(timeout=1)
        for i in range(5):
            c.send_telemetry({{"i": i}})
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "exiting with 5 message(s)" in r.stderr, r.stderr[-2000:]
