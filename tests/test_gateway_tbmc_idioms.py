"""What tb-mqtt-client's gateway examples rely on, with only the import changed: the
``stopped`` flag that their main loops poll, the handle's ``rc()``/``mid()``/``get()``, the
``TBPublishInfo`` codes, and the constructor's positional order.

spec: thingsboard-gateway.md B.1 (constructor, methods), B.2 (``TBPublishInfo``).
"""

from __future__ import annotations

import threading

import pytest
from conftest import free_port
from thingsboard_sdk.devserver import DevServer, write_self_signed
from thingsboard_sdk.tb_device_mqtt import TBPublishInfo
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient


@pytest.fixture
def server():
    with DevServer("127.0.0.1", 0, http_port=None) as srv:
        yield srv


def test_an_rpc_handler_that_stops_the_gateway_ends_the_scripts_loop(server):
    token = server.add_device("gw", gateway=True)
    gateway = TBGatewayMqttClient("127.0.0.1", server.port, token)
    assert gateway.stopped is False
    stopped = threading.Event()

    def on_rpc(client, request):
        client.gw_send_rpc_reply(request["device"], request["data"]["id"], {"pong": True})
        client.stop()
        stopped.set()

    assert gateway.connect() is not None
    gateway.gw_set_server_side_rpc_request_handler(on_rpc)
    info = gateway.gw_connect_device("Sub A", "sensor")
    # tb-mqtt-client's claiming example: ``if info.rc() == 0: print("sent")`` at once.
    assert info.rc() == TBPublishInfo.TB_ERR_SUCCESS
    assert info.wait(10)
    assert info.get() == TBPublishInfo.TB_ERR_SUCCESS
    other = gateway.gw_send_telemetry("Sub A", {"t": 1})
    assert isinstance(info.mid(), int) and other.mid() != info.mid()
    assert server.send_rpc("Sub A", "ping", {}, timeout=15) == {"pong": True}
    assert stopped.wait(10)
    # The examples' main loop: ``while not gateway.stopped: time.sleep(1)``.
    assert gateway.stopped is True
    assert not gateway.is_connected()
    assert server.latest_telemetry("Sub A") == {"t": 1}


def test_an_attribute_request_returns_what_get_and_rc_can_be_called_on(server):
    # tb-mqtt-client returns a TBPublishInfo here; ours is the request id with its calls.
    token = server.add_device("gw", gateway=True)
    gateway = TBGatewayMqttClient("127.0.0.1", server.port, token)
    assert gateway.connect() is not None
    try:
        assert gateway.gw_connect_device("Sub B").wait(10)
        server.set_shared_attributes("Sub B", {"sp": 7})
        got: list = []
        answered = threading.Event()
        info = gateway.gw_request_shared_attributes(
            "Sub B", ["sp"], lambda result, exc: (got.append(result), answered.set())
        )
        assert info.rc() == TBPublishInfo.TB_ERR_SUCCESS
        assert info.get() == TBPublishInfo.TB_ERR_SUCCESS
        assert answered.wait(10)
        assert got == [{"id": info.mid(), "device": "Sub B", "value": 7}]
        assert got[0]["id"] == info
        # The gateway's own attributes (tb-mqtt-client: a TBPublishInfo too).
        own: list = []
        info = gateway.request_attributes(None, ["sp"], lambda result, exc: own.append(result))
        assert info.get() == TBPublishInfo.TB_ERR_SUCCESS and int(info) >= 1
    finally:
        gateway.disconnect()


def test_connect_calls_both_of_tb_mqtt_clients_callback_forms(server):
    token = server.add_device("gw", gateway=True)
    calls: list = []

    def plain(client, userdata, flags, rc):
        calls.append(("plain", client, rc))

    def with_client(client, userdata, flags, rc, properties, tb_client=None):
        calls.append(("tb_client", tb_client, rc))

    for callback in (plain, with_client):
        gateway = TBGatewayMqttClient("127.0.0.1", server.port, token)
        try:
            assert gateway.connect(callback) is not None
        finally:
            gateway.disconnect()
        assert calls[-1] == (calls[-1][0], gateway, 0)
    assert [c[0] for c in calls] == ["plain", "tb_client"]


def test_a_refused_connect_calls_the_callback_with_the_connack_code(server):
    # tb-mqtt-client's _on_connect calls the callback on every CONNACK, refusals included
    # (rc != 0), in both of its forms.
    calls: list = []

    def plain(client, userdata, flags, rc):
        calls.append(("plain", client, rc))

    def with_client(client, userdata, flags, rc, properties, tb_client=None):
        calls.append(("tb_client", tb_client, rc))

    for callback in (plain, with_client):
        gateway = TBGatewayMqttClient("127.0.0.1", server.port, "not-a-token")
        try:
            assert gateway.connect(callback) is None
        finally:
            gateway.disconnect()  # also stops the callback thread: no late second call
        assert calls[-1][1] is gateway
    assert [(form, rc) for form, _, rc in calls] == [("plain", 5), ("tb_client", 5)]
    rc = calls[0][2]
    assert rc != 0 and rc.value == 5 and rc.getName() == "Not authorized"


def test_gw_claim_sends_tb_mqtt_clients_claiming_request(server):
    token = server.add_device("gw", gateway=True)
    gateway = TBGatewayMqttClient("127.0.0.1", server.port, token)
    assert gateway.connect() is not None
    try:
        request = {
            "Sub C": {"secretKey": "k-c", "durationMs": "30000"},
            "Sub D": {"secretKey": "k-d", "durationMs": 60000},
        }
        assert gateway.gw_claim(None, None, None, claiming_request=request).wait(10)
        got = {d: [(c.secret_key, c.duration_ms) for c in server.claims(d)] for d in request}
        assert got == {"Sub C": [("k-c", 30000)], "Sub D": [("k-d", 60000)]}
        with pytest.raises(TypeError, match="claiming_request"):
            gateway.gw_claim(None, None, None, claiming_request={"Sub E": "k-e"})
        with pytest.raises(ValueError, match="durationMs"):
            gateway.gw_claim(None, None, None, claiming_request={"Sub E": {"durationMs": "x"}})
    finally:
        gateway.disconnect()


def test_callbacks_are_served_when_the_server_comes_up_after_connect():
    # connect() failed (returned None) and the engine went on trying; the script, as
    # tb-mqtt-client's, only sets a handler and sleeps.
    port = free_port()
    gateway = TBGatewayMqttClient("127.0.0.1", port, "GW-LATE")
    assert gateway.connect(timeout=1) is None
    gateway.gw_set_server_side_rpc_request_handler(
        lambda client, rpc: client.gw_send_rpc_reply(rpc["device"], rpc["data"]["id"], "pong")
    )
    gateway.gw_connect_device("Late")
    try:
        with DevServer("127.0.0.1", port, http_port=None) as srv:
            srv.add_device("gw", token="GW-LATE", gateway=True)
            srv.wait_for(lambda: "Late" in srv.devices(), timeout=15, what="the sub-device")
            assert srv.send_rpc("Late", "ping", {}, timeout=15) == "pong"
    finally:
        gateway.disconnect()


def test_tls_given_to_connect_is_used_as_tb_mqtt_client_does(tmp_path):
    # tb-mqtt-client's tls_connect example: TLS arguments go to connect(), not the constructor.
    certs = write_self_signed(tmp_path / "certs")
    with DevServer(
        "127.0.0.1", 0, http_port=None, tls_cert=certs["server_cert"], tls_key=certs["server_key"]
    ) as srv:
        token = srv.add_device("gw", gateway=True)
        gateway = TBGatewayMqttClient("127.0.0.1", srv.tls_port, token)
        handler_calls: list = []
        gateway.gw_set_server_side_rpc_request_handler(
            lambda client, rpc: handler_calls.append(rpc)
        )
        try:
            assert gateway.connect(tls=True, ca_certs=certs["ca_cert"], keepalive=30) == 0
            assert gateway.gw_send_telemetry("Sub T", {"over": "tls"}).wait(10)
            assert srv.latest_telemetry("Sub T") == {"over": "tls"}
            # The handler set before connect() is kept.
            assert gateway.devices_server_side_rpc_request_handler is not None
        finally:
            gateway.disconnect()
        # Too late once the client was used: ignored with a warning, the session is unchanged.
        assert gateway.connect(tls=True, ca_certs="/nonexistent.pem") == 0
        gateway.disconnect()


def test_uploads_take_tb_mqtt_clients_quality_of_service_values(server):
    token = server.add_device("gw", gateway=True)
    gateway = TBGatewayMqttClient("127.0.0.1", server.port, token, quality_of_service=0)
    assert gateway.connect() is not None
    try:
        # None: the session's QoS, as tb-mqtt-client's _publish_data.
        assert gateway.gw_send_telemetry("Sub Q", {"a": 1}, quality_of_service=None).wait(10)
        assert gateway.gw_send_attributes("Sub Q", {"b": 2}, None).wait(10)
        for bad in ("1", 2, 1.0):
            with pytest.raises(ValueError, match=f"quality_of_service must be 0 or 1, got {bad!r}"):
                gateway.gw_send_telemetry("Sub Q", {"a": 1}, quality_of_service=bad)
        # QoS 0: a handle completes once written; wait for the server to have stored both.
        server.wait_for(
            lambda: (
                "Sub Q" in server.devices()
                and server.latest_telemetry("Sub Q")
                and server.client_attributes("Sub Q")
            ),
            timeout=10,
        )
        assert server.latest_telemetry("Sub Q") == {"a": 1}
        assert server.client_attributes("Sub Q") == {"b": 2}
    finally:
        gateway.disconnect()


def test_the_connect_callback_runs_again_after_each_reconnect():
    # tb-mqtt-client's connect callback is paho's on_connect: called on every (re)connect,
    # including the first one that succeeds in the background after connect() failed.
    port = free_port()
    gateway = TBGatewayMqttClient("127.0.0.1", port, "GW-AGAIN")
    calls = threading.Semaphore(0)
    assert gateway.connect(lambda client, userdata, flags, rc: calls.release(), timeout=1) is None
    try:
        for _ in range(2):
            with DevServer("127.0.0.1", port, http_port=None) as srv:
                srv.add_device("gw", token="GW-AGAIN", gateway=True)
                assert calls.acquire(timeout=15), "the connect callback was not called"
        assert not calls.acquire(timeout=0.5), "called more often than connected"
    finally:
        gateway.disconnect()


def test_a_refused_reconnect_calls_the_callback_with_its_rc():
    # The token stops being valid while the gateway runs (the server came back without the
    # device): each refused reconnect calls the callback with rc 5, as paho's on_connect
    # does there; once the device exists again, rc 0.
    port = free_port()
    codes: list = []
    seen = threading.Condition()

    def on_connect(client, userdata, flags, rc):
        with seen:
            codes.append(int(rc))
            seen.notify_all()

    def wait_for(pred) -> None:
        with seen:
            assert seen.wait_for(pred, timeout=15), f"connect callback codes: {codes}"

    gateway = TBGatewayMqttClient("127.0.0.1", port, "GW-REVOKED")
    try:
        with DevServer("127.0.0.1", port, http_port=None) as srv:
            srv.add_device("gw", token="GW-REVOKED", gateway=True)
            assert gateway.connect(on_connect) is not None
            assert codes == [0]
        with DevServer("127.0.0.1", port, http_port=None) as srv:
            wait_for(lambda: 5 in codes)
            srv.add_device("gw", token="GW-REVOKED", gateway=True)
            wait_for(lambda: codes[-1] == 0 and len(codes) > 2)
        assert set(codes[1:-1]) == {5}
    finally:
        gateway.disconnect()


def test_provision_takes_tb_mqtt_clients_arguments(server, caplog):
    server.add_provision_profile("pk", "ps")
    creds = TBGatewayMqttClient.provision(
        "127.0.0.1", "pk", "ps", server.port, device_name="GW New", gateway=True
    )
    assert creds is not None and creds["status"] == "SUCCESS"
    assert creds["credentialsType"] == "ACCESS_TOKEN" and creds["credentialsValue"]
    assert "GW New" in server.devices()
    # Failure: None and an ERROR, as tb-mqtt-client (no exception).
    assert TBGatewayMqttClient.provision("127.0.0.1", "pk", "wrong", server.port) is None
    assert any(r.levelname == "ERROR" and "provision" in r.getMessage() for r in caplog.records)
    # TBDeviceMqttClient's own form still works on the gateway class.
    request = {"provisionDeviceKey": "pk", "provisionDeviceSecret": "ps", "deviceName": "GW 2"}
    assert TBGatewayMqttClient.provision("127.0.0.1", server.port, request)["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        # host, port, username, password, gateway, quality_of_service, client_id, then the
        # gateway's own three limits and the three for its sub-devices, as tb-mqtt-client.
        (("bad",), {}, "messages_rate_limit"),
        ((None, None, "bad"), {}, "telemetry_dp_rate_limit"),
        ((None, None, None, "bad"), {}, "device_messages_rate_limit"),
        ((), {"rate_limit": "bad"}, "messages_rate_limit"),
        ((), {"dp_rate_limit": "bad"}, "telemetry_dp_rate_limit"),
    ],
)
def test_rate_limits_take_tb_mqtt_clients_positions_and_legacy_names(args, kwargs, named):
    with pytest.raises(ValueError, match=f"^{named}: "):
        TBGatewayMqttClient("127.0.0.1", 1883, "token", None, None, 1, "", *args, **kwargs)


def test_requests_wait_20_seconds_as_tb_mqtt_client():
    assert TBGatewayMqttClient("127.0.0.1", 1883, "token")._request_timeout == 20.0
    given = TBGatewayMqttClient("127.0.0.1", 1883, "token", request_timeout=3)
    assert given._request_timeout == 3.0


def test_default_placeholders_count_as_not_set():
    gateway = TBGatewayMqttClient(
        "127.0.0.1",
        1883,
        "token",
        None,
        None,
        1,
        "",
        "DEFAULT_MESSAGES_RATE_LIMIT",
        "DEFAULT_TELEMETRY_RATE_LIMIT",
        "DEFAULT_TELEMETRY_DP_RATE_LIMIT",
        rate_limit="DEFAULT_RATE_LIMIT",
    )
    assert gateway.stopped is False


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda g: g.gw_send_telemetry(123, {"a": 1}), TypeError, "device must be a str"),
        (lambda g: g.gw_connect_device("S", 5), TypeError, "device_type must be a str"),
        (lambda g: g.gw_disconnect_device(None), TypeError, "device_name must be a str"),
        (lambda g: g.gw_send_rpc_reply("S", "abc", 1), TypeError, "req_id must be"),
        (lambda g: g.gw_request_shared_attributes("S", 5, None), TypeError, "keys must be"),
        (lambda g: g.gw_request_client_attributes("S", [1], None), TypeError, "every key"),
        (lambda g: g.gw_claim("S", "k", -1), ValueError, "duration must be whole"),
        (lambda g: g.gw_claim("S", 5, 1000), TypeError, "secret_key must be a str"),
        (lambda g: g.gw_subscribe_to_attribute("*", 5, print), TypeError, "attribute must be"),
    ],
)
def test_bad_arguments_name_what_was_wrong(call, error, names):
    # Before: PyO3's "argument 'duration_ms': ..." or a bare "invalid literal for int()".
    gateway = TBGatewayMqttClient("127.0.0.1", 1, "token")
    with pytest.raises(error, match=names):
        call(gateway)
    assert gateway._engine.queued == 0
