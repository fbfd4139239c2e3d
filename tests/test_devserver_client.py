"""The client's key flows against the embedded dev server (``thingsboard_sdk.devserver``).

The ``tb_devserver`` fixture comes from the package's pytest plugin (entry point ``pytest11``).
Waits are on the server's change counter (``wait_for``) or the client's ``wait_for_msg``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import uuid
from typing import Any, Callable, Iterator

import pytest
from conftest import HOST, pump_until
from thingsboard_sdk.devserver import (
    Claim,
    ConnectionEvent,
    DevServer,
    TelemetryPoint,
)
from thingsboard_sdk.tb_device_mqtt import ProvisionError, TBDeviceMqttClient

DEVICE = "Thermostat A1"


@pytest.fixture
def connect(tb_devserver: DevServer) -> Iterator[Callable[..., TBDeviceMqttClient]]:
    """``connect(token=..., **kwargs)``: a connected client of the dev server."""
    made: list[TBDeviceMqttClient] = []

    def make(token: str | None = None, **kwargs: Any) -> TBDeviceMqttClient:
        kwargs.setdefault("client_id", "dev-" + uuid.uuid4().hex[:12])
        client = TBDeviceMqttClient(
            tb_devserver.host, tb_devserver.port, access_token=token, **kwargs
        )
        made.append(client)
        assert client.connect(timeout=10) is not None, client.last_error
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            client.disconnect()


@pytest.fixture
def client(tb_devserver: DevServer, connect: Callable[..., TBDeviceMqttClient]):
    token = tb_devserver.add_device(DEVICE)
    return connect(token)


# -- server object ------------------------------------------------------------------------------


def test_port_zero_reports_the_chosen_port(tb_devserver):
    assert tb_devserver.host == HOST
    assert tb_devserver.port > 0
    with socket.create_connection((HOST, tb_devserver.port), timeout=5):
        pass


def test_port_in_use_raises_oserror_with_errno():
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(OSError) as info:
            DevServer(HOST, port)
    assert info.value.errno == errno.EADDRINUSE
    assert str(port) in str(info.value)


def test_context_manager_stops_and_data_stays_readable():
    with DevServer() as server:
        server.add_device("d", "tok")
        port = server.port
        assert server.running
    assert not server.running
    assert server.devices() == ["d"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5).close()


def test_usage_errors_are_python_exceptions(tb_devserver):
    tb_devserver.add_device("d", "tok")
    with pytest.raises(ValueError, match="exists"):
        tb_devserver.add_device("d", "other")
    with pytest.raises(ValueError, match="used by another device"):
        tb_devserver.add_device("e", "tok")
    with pytest.raises(KeyError, match="nobody"):
        tb_devserver.telemetry("nobody")
    with pytest.raises(ValueError, match="JSON object"):
        tb_devserver.set_shared_attributes("d", "[1, 2]")
    with pytest.raises(ValueError, match="strategy"):
        tb_devserver.add_provision_profile("k", "s", strategy="MAYBE")
    with pytest.raises(TypeError, match="JSON"):
        tb_devserver.start_rpc("d", "m", {1, 2})


def test_add_device_without_credentials_makes_a_token(tb_devserver, connect):
    token = tb_devserver.add_device("fresh")
    assert token
    connect(token).send_telemetry({"x": 1}).wait(5)
    assert tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("fresh")) == {"x": 1}


def test_wait_for_times_out(tb_devserver):
    with pytest.raises(TimeoutError, match="nothing"):
        tb_devserver.wait_for(lambda: False, timeout=0.2, what="nothing")


# -- telemetry and attributes ------------------------------------------------------------------


def test_telemetry_is_stored_and_typed(tb_devserver, client):
    data = {
        "temperature": 25.5,
        "humidity": 60,
        "heating": True,
        "mode": "eco",
        "location": {"room": "lab", "floor": [1, 2]},
        "serial": "0042",
    }
    assert client.send_telemetry(data).wait(5)
    latest = tb_devserver.wait_for(lambda: len(tb_devserver.latest_telemetry(DEVICE)) == 6)
    assert latest
    typed = tb_devserver.latest_telemetry(DEVICE, typed=True)
    assert {k: (p.type, p.value) for k, p in typed.items()} == {
        "temperature": ("DOUBLE", 25.5),
        "humidity": ("LONG", 60),
        "heating": ("BOOLEAN", True),
        "mode": ("STRING", "eco"),
        "location": ("JSON", {"room": "lab", "floor": [1, 2]}),
        # ThingsBoard casts numeric strings (transport.json.type_cast_enabled)
        "serial": ("LONG", 42),
    }
    assert tb_devserver.latest_telemetry(DEVICE)["temperature"] == 25.5


def test_telemetry_with_timestamps_keeps_them_in_order(tb_devserver, client):
    client.send_telemetry(
        [
            {"ts": 1451649600512, "values": {"t": 1}},
            {"ts": 1451649600513, "values": {"t": 2.0}},
        ]
    ).wait(5)
    points = tb_devserver.wait_for(lambda: tb_devserver.telemetry(DEVICE, "t"))
    assert points == [
        TelemetryPoint(1451649600512, "t", 1, "LONG"),
        TelemetryPoint(1451649600513, "t", 2.0, "DOUBLE"),
    ]


def test_client_attributes_are_stored(tb_devserver, client):
    assert client.send_attributes({"model": "TH-100", "version": 3}).wait(5)
    attrs = tb_devserver.wait_for(lambda: tb_devserver.client_attributes(DEVICE))
    assert attrs == {"model": "TH-100", "version": 3}
    assert tb_devserver.client_attributes(DEVICE, typed=True)["version"] == ("LONG", 3)


def test_attribute_request_gets_client_and_shared(tb_devserver, client):
    client.send_attributes({"model": "TH-100"}).wait(5)
    tb_devserver.set_shared_attributes(DEVICE, {"targetTemperature": 21.5, "unused": 1})
    got: list = []
    client.request_attributes(
        client_keys=["model"],
        shared_keys=["targetTemperature"],
        callback=lambda result, exc: got.append((result, exc)),
        timeout=5,
    )
    assert got == [({"client": {"model": "TH-100"}, "shared": {"targetTemperature": 21.5}}, None)]


def test_shared_attribute_push_reaches_subscription(tb_devserver, client):
    one: list = []
    every: list = []
    client.subscribe_to_attribute("targetTemperature", lambda result, exc: one.append(result))
    client.subscribe_to_all_attributes(lambda result, exc: every.append(result))
    tb_devserver.set_shared_attributes(DEVICE, {"targetTemperature": 23.0})
    pump_until(client, lambda: one and every, timeout=10, what="shared attribute push")
    assert one == [{"targetTemperature": 23.0}]
    tb_devserver.delete_shared_attributes(DEVICE, ["targetTemperature"])
    pump_until(client, lambda: len(every) == 2, timeout=10, what="deletion push")
    assert every[1] == {"deleted": ["targetTemperature"]}
    assert tb_devserver.shared_attributes(DEVICE) == {}


# -- RPC ------------------------------------------------------------------------------------------


def test_server_rpc_round_trip(tb_devserver, client):
    requests: list = []

    def handler(request_id, body):
        requests.append((request_id, body))
        client.send_rpc_reply(request_id, {"temperature": 22.4})

    client.set_server_side_rpc_request_handler(handler)
    call = tb_devserver.start_rpc(DEVICE, "getTemperature", {"unit": "C"}, expiry=10)
    pump_until(client, lambda: call.poll()[0], timeout=10, what="RPC reply")
    assert call.wait(1) == {"temperature": 22.4}
    assert requests == [(str(call.id), {"method": "getTemperature", "params": {"unit": "C"}})]
    (record,) = tb_devserver.rpc_records(DEVICE)
    assert (record.method, record.params, record.status) == (
        "getTemperature",
        {"unit": "C"},
        "SUCCESSFUL",
    )
    assert record.reply == {"temperature": 22.4}


def test_blocking_send_rpc_from_another_thread(tb_devserver, client):
    """send_rpc blocks with the GIL released, so this thread keeps dispatching meanwhile."""
    client.set_server_side_rpc_request_handler(
        lambda rid, body: client.send_rpc_reply(rid, {"echo": body["params"]})
    )
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(tb_devserver.send_rpc(DEVICE, "echo", [1, 2], timeout=10))
    )
    worker.start()
    try:
        pump_until(client, lambda: result, timeout=15, what="send_rpc in the worker")
    finally:
        worker.join(15)
    assert result == [{"echo": [1, 2]}]


def test_server_rpc_without_reply_times_out(tb_devserver, client):
    with pytest.raises(TimeoutError):
        tb_devserver.send_rpc(DEVICE, "ignored", timeout=0.3)
    (record,) = tb_devserver.rpc_records(DEVICE)
    assert record.status == "EXPIRED"


def test_client_rpc_scripted_reply(tb_devserver, client):
    tb_devserver.set_client_rpc_reply("getCurrentTime", {"time": 1700000000000})
    got: list = []
    rid = client.send_rpc_call(
        "getCurrentTime", {"tz": "UTC"}, lambda *args: got.append(args), timeout=5
    )
    assert got == [(rid, {"time": 1700000000000}, None)]
    (record,) = tb_devserver.client_rpc_requests(DEVICE)
    assert (record.id, record.method, record.params) == (rid, "getCurrentTime", {"tz": "UTC"})
    assert record.reply == {"time": 1700000000000}


def test_client_rpc_handler(tb_devserver, client):
    seen: list = []

    def handler(device, method, params):
        seen.append((device, method, params))
        return {"sum": sum(params)}

    tb_devserver.set_client_rpc_handler(handler)
    got: list = []
    rid = client.send_rpc_call("add", [1, 2, 3], lambda *args: got.append(args), timeout=5)
    assert got == [(rid, {"sum": 6}, None)]
    assert seen == [(DEVICE, "add", [1, 2, 3])]


# -- claiming, provisioning, credentials -------------------------------------------------------


def test_claim_is_recorded(tb_devserver, client):
    assert client.claim_device("s3cret", 60000).wait(5)
    claims = tb_devserver.wait_for(lambda: tb_devserver.claims(DEVICE))
    assert len(claims) == 1
    assert isinstance(claims[0], Claim)
    assert (claims[0].secret_key, claims[0].duration_ms) == ("s3cret", 60000)


def test_provisioning_creates_a_device_that_can_connect(tb_devserver, connect):
    tb_devserver.add_provision_profile("pk", "ps")
    request = TBDeviceMqttClient.get_provision_request("pk", "ps", device_name="sensor-7")
    creds = TBDeviceMqttClient.provision(tb_devserver.host, tb_devserver.port, request, timeout=10)
    assert creds["status"] == "SUCCESS"
    assert creds["credentialsType"] == "ACCESS_TOKEN"
    (made,) = tb_devserver.provisioned_devices()
    assert (made.name, made.profile_key) == ("sensor-7", "pk")
    assert made.credentials == {"type": "ACCESS_TOKEN", "token": creds["credentialsValue"]}
    assert "sensor-7" in tb_devserver.devices()
    connect(creds["credentialsValue"]).send_telemetry({"battery": 97}).wait(5)
    assert tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("sensor-7")) == {
        "battery": 97
    }


def test_provisioning_with_a_wrong_secret_is_refused(tb_devserver):
    tb_devserver.add_provision_profile("pk", "ps")
    request = TBDeviceMqttClient.get_provision_request("pk", "wrong", device_name="x")
    with pytest.raises(ProvisionError) as info:
        TBDeviceMqttClient.provision(tb_devserver.host, tb_devserver.port, request, timeout=10)
    assert info.value.status == "NOT_FOUND"
    assert tb_devserver.provisioned_devices() == []


def test_mqtt_basic_credentials(tb_devserver, connect):
    tb_devserver.add_device("basic", username="user1", password="pw1")
    client = connect(username="user1", password="pw1")
    client.send_telemetry({"ok": True}).wait(5)
    assert tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("basic")) == {"ok": True}


def test_connection_events_and_refusal(tb_devserver, client):
    bad = TBDeviceMqttClient(
        tb_devserver.host, tb_devserver.port, access_token="nope", reconnect=False
    )
    assert bad.connect(timeout=10) is None
    assert tb_devserver.is_connected(DEVICE)
    client.disconnect()
    events = tb_devserver.wait_for(
        lambda: [e for e in tb_devserver.connection_events(DEVICE) if e.kind == "disconnected"]
    )
    assert events[0].reason == "client DISCONNECT"
    kinds = [e.kind for e in tb_devserver.connection_events()]
    assert kinds.count("connected") == 1
    assert "refused" in kinds
    first = tb_devserver.connection_events(DEVICE)[0]
    assert isinstance(first, ConnectionEvent)
    assert (first.kind, first.version, first.return_code) == ("connected", "3.1.1", 0)
    assert not tb_devserver.is_connected(DEVICE)


def test_log_stream_has_a_line_per_upload(tb_devserver, client):
    stream = tb_devserver.log_stream()
    client.send_telemetry({"temperature": 1}).wait(5)
    lines = []
    while not any("telemetry" in line for line in lines):
        line = stream.recv(10)
        assert line is not None, f"no telemetry log line; got {lines}"
        lines.append(line)
    assert DEVICE in lines[-1]
    tb_devserver.stop()
    rest = []
    while (line := stream.recv(5)) is not None:
        rest.append(line)
    assert rest[-1] == "dev server stopped"


def test_server_lines_reach_python_logging_only_when_info_is_on(tb_devserver, client, caplog):
    # One check per batch decides whether the lines go to Python: on, each line is a record
    # of logger thingsboard_sdk.devserver; off, none is (and the log stream still has them).
    stream = tb_devserver.log_stream()

    def upload(value: int) -> None:
        client.send_telemetry({"logged": value}).wait(5)
        needle = f'"logged":{value}'
        while (line := stream.recv(10)) is None or needle not in line:
            assert line is not None, f"no log line for upload {value}"

    with caplog.at_level(logging.WARNING, logger="thingsboard_sdk.devserver"):
        upload(1)
    assert not [r for r in caplog.records if r.name == "thingsboard_sdk.devserver"]
    with caplog.at_level(logging.INFO, logger="thingsboard_sdk.devserver"):
        upload(2)
        ours = [r for r in caplog.records if r.name == "thingsboard_sdk.devserver"]
        assert any('"logged":2' in r.getMessage() for r in ours), [r.getMessage() for r in ours]
    assert all(r.levelno == logging.INFO for r in ours)


def test_readers_on_many_threads_while_a_device_sends(tb_devserver, client):
    stop = threading.Event()
    errors: list = []

    def reader():
        try:
            while not stop.is_set():
                tb_devserver.telemetry(DEVICE)
                tb_devserver.connection_events()
                tb_devserver.wait_for_change(tb_devserver.generation(), 0.05)
        except BaseException as exc:  # recorded, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(200):
            client.send_telemetry({"i": i})
        assert client.flush(10)
        tb_devserver.wait_for(lambda: len(tb_devserver.telemetry(DEVICE)) == 200)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert [p.value for p in tb_devserver.telemetry(DEVICE)] == list(range(200))
