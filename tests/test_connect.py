"""connect() / disconnect(): contract section 3 rows 1-2, issue 3 "connect" bullets."""

from __future__ import annotations

import logging
import select
import socket
import time

import pytest
from conftest import FakeBroker, compact, free_port, pump_until
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

SDK_LOGGER = "thingsboard_sdk"


def sdk_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith(SDK_LOGGER) and r.levelno >= logging.ERROR
    ]


def test_connect_returns_session_present_zero_and_sets_connected(make_client, tb_peer):
    client = make_client(connect=False)
    assert client.connected is False
    assert client.connect() == 0  # mosquitto, clean session: session-present 0
    assert client.connected is True


def test_connect_with_explicit_timeout(make_client, tb_peer):
    client = make_client(connect=False)
    result = client.connect(timeout=20)
    assert result == 0
    assert client.connected


def test_connect_returns_session_present_flag_from_connack(fake_broker):
    fb: FakeBroker = fake_broker(connack=(1, 0))
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="t", client_id="sp1")
    try:
        assert client.connect(timeout=5) == 1
        assert client.connected is True
    finally:
        client.disconnect()


def test_connect_subscribes_to_the_four_device_topics_at_qos(fake_broker):
    for qos in (0, 1):
        fb: FakeBroker = fake_broker()
        client = TBDeviceMqttClient(
            fb.host, fb.port, access_token="t", client_id=f"subs{qos}", quality_of_service=qos
        )
        try:
            assert client.connect(timeout=5) == 0
            wanted = {
                "v1/devices/me/attributes",
                "v1/devices/me/attributes/response/+",
                "v1/devices/me/rpc/request/+",
                "v1/devices/me/rpc/response/+",
            }
            fb.wait(lambda w=wanted, f=fb: w <= {t for t, _ in f.subscriptions})
            subs = dict(fb.subscriptions)
            for topic in wanted:
                assert subs[topic] == qos, (topic, subs)
            # ThingsBoard rejects wildcard filters it does not know (thingsboard-mqtt.md 2.11)
            assert "v1/devices/me/#" not in subs
        finally:
            client.disconnect()


def test_connect_sends_token_as_username_and_keepalive_120(fake_broker):
    fb: FakeBroker = fake_broker()
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="A1B2C3", client_id="cid-x")
    try:
        assert client.connect(timeout=5) == 0
        info = fb.connects[0]
        assert info.username == "A1B2C3"
        assert info.client_id == "cid-x"
        assert info.keepalive == 120
    finally:
        client.disconnect()


def test_default_client_id_is_stable_and_non_empty(fake_broker):
    fb: FakeBroker = fake_broker()
    ids = []
    for _ in range(2):
        client = TBDeviceMqttClient(fb.host, fb.port, access_token="t")
        try:
            assert client.connect(timeout=5) is not None
        finally:
            client.disconnect()
        ids.append(fb.connects[-1].client_id)
    assert ids[0] and ids[0] == ids[1]


def test_access_token_none_is_allowed(fake_broker):
    fb: FakeBroker = fake_broker()
    client = TBDeviceMqttClient(fb.host, fb.port, client_id="anon")
    try:
        assert client.connect(timeout=5) == 0
    finally:
        client.disconnect()


def test_construction_does_no_network_io():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        TBDeviceMqttClient("127.0.0.1", listener.getsockname()[1], access_token="t")
        readable, _, _ = select.select([listener], [], [], 0.3)
        assert not readable, "the constructor opened a connection"
    finally:
        listener.close()


def test_subscriptions_made_at_connect_deliver_shared_attribute_updates(client, tb_peer):
    got = []
    client.subscribe_to_attribute("frequency", lambda result, *args: got.append(result))
    tb_peer.push_attributes({"frequency": 5})
    pump_until(client, lambda: got, what="attribute update")
    assert got == [{"frequency": 5}]


def test_refused_connect_returns_none_logs_error_and_sets_last_error(fake_broker, caplog):
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)
    fb: FakeBroker = fake_broker(connack=(0, 5))  # 5: not authorised, as ThingsBoard says
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="SECRET-TOKEN-123", client_id="r")
    try:
        assert client.connect(timeout=5) is None
        assert client.connected is False
        assert isinstance(client.last_error, str) and client.last_error
        assert sdk_errors(caplog), caplog.text
        assert "SECRET-TOKEN-123" not in caplog.text, "token leaked into the logs"
    finally:
        client.disconnect()


def test_unreachable_connect_returns_none_and_logs(caplog):
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)
    port = free_port()  # nothing listens there: connection refused
    client = TBDeviceMqttClient("127.0.0.1", port, access_token="t", client_id="u")
    t0 = time.monotonic()
    assert client.connect(timeout=3) is None
    assert time.monotonic() - t0 < 5
    assert client.connected is False
    assert isinstance(client.last_error, str) and client.last_error
    assert sdk_errors(caplog), caplog.text
    client.disconnect()


def test_connect_timeout_when_server_never_answers(fake_broker, caplog):
    caplog.set_level(logging.DEBUG, logger=SDK_LOGGER)
    fb: FakeBroker = fake_broker(connack=None)
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="t", client_id="hang")
    t0 = time.monotonic()
    assert client.connect(timeout=1) is None
    elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 4, elapsed
    assert client.connected is False
    assert client.last_error
    assert sdk_errors(caplog)
    client.disconnect()


def test_last_error_none_after_successful_connect(make_client, tb_peer):
    client = make_client()
    assert client.last_error is None


def test_disconnect_sets_connected_false_and_is_idempotent(make_client, tb_peer):
    client = make_client()
    client.disconnect()
    assert client.connected is False
    client.disconnect()
    assert client.connected is False


def test_disconnect_without_connect_is_safe(make_client):
    client = make_client(connect=False)
    client.disconnect()
    client.disconnect()
    assert client.connected is False


def test_reconnect_after_disconnect(make_client, tb_peer):
    client = make_client()
    client.disconnect()
    assert client.connect() == 0
    assert client.connected
    mark = tb_peer.mark()
    client.send_telemetry({"again": 1})
    assert tb_peer.wait_for("v1/devices/me/telemetry", since=mark).payload == compact({"again": 1})


def test_disconnect_flushes_queued_qos1_messages(make_client, tb_peer):
    client = make_client()
    mark = tb_peer.mark()
    for i in range(200):
        client.send_telemetry({"n": i})
    client.disconnect()
    msgs = tb_peer.wait_count("v1/devices/me/telemetry", 200, timeout=10, since=mark)
    assert {m.json()["n"] for m in msgs} == set(range(200))


def test_username_password_and_keepalive_extras(fake_broker):
    fb: FakeBroker = fake_broker()
    client = TBDeviceMqttClient(
        fb.host, fb.port, client_id="basic", username="user1", password="pw1", keepalive=30
    )
    try:
        assert client.connect(timeout=5) == 0
        info = fb.connects[0]
        assert (info.username, info.password, info.keepalive) == ("user1", b"pw1", 30)
    finally:
        client.disconnect()


def test_extras_are_keyword_only():
    with pytest.raises(TypeError):
        TBDeviceMqttClient("127.0.0.1", 1883, "tok", None, None, 0, "user")  # type: ignore[misc]


def test_connect_returns_only_after_the_subscriptions_are_acknowledged(fake_broker):
    """Otherwise an update or RPC the server sends right after connect() returns can be lost."""
    import threading

    fb: FakeBroker = fake_broker()
    fb.release_suback.clear()
    client = TBDeviceMqttClient(fb.host, fb.port, access_token="t", client_id="suback")
    result = []
    worker = threading.Thread(target=lambda: result.append(client.connect(timeout=5)))
    worker.start()
    try:
        fb.wait(lambda: bool(fb.subscriptions))
        worker.join(0.5)
        returned_early = not worker.is_alive()
    finally:
        fb.release_suback.set()
        worker.join(10)
        client.disconnect()
    assert not returned_early, "connect() returned before the SUBACK"
    assert result == [0]
