"""Dev server persistence (``DevServer(data=...)``, ``devserver --data``): what one server
stored comes back when another starts on the same folder, including after ``kill -9``.

The durability point under test: a device's QoS 1 message is acknowledged only once it is
committed, so everything a device saw acknowledged must be there after the process is killed.
"""

from __future__ import annotations

import json
import queue
import signal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import HOST, devserver_cli, listening_port, pump_until, stop_cli
from paho.mqtt.enums import CallbackAPIVersion
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

TIMEOUT = 15.0


def connect(server: DevServer, token: str, client_id: str) -> TBDeviceMqttClient:
    client = TBDeviceMqttClient(
        server.host, server.port, access_token=token, quality_of_service=1, client_id=client_id
    )
    assert client.connect(timeout=TIMEOUT) is not None, client.last_error
    return client


def paho_device(port: int, token: str) -> tuple[mqtt.Client, queue.Queue]:
    """A raw paho device subscribed to attributes and RPC; its messages land in the queue."""
    inbox: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-{token}")
    c.username_pw_set(token)
    c.on_message = lambda _c, _u, m: inbox.put((m.topic, m.payload))
    c.connect(HOST, port)
    c.loop_start()
    for topic in ("v1/devices/me/rpc/request/+", "v2/fw/response/+/chunk/+"):
        result, _ = c.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
    return c, inbox


def next_message(inbox: queue.Queue, prefix: str) -> tuple[str, bytes]:
    while True:
        topic, payload = inbox.get(timeout=TIMEOUT)
        if topic.startswith(prefix):
            return topic, payload


def test_restart_keeps_devices_data_and_records(tmp_path: Path):
    data = tmp_path / "data"
    image = bytes(range(256)) * 40
    with DevServer(data=data) as first:
        assert first.data == str(data)
        first.add_device("Thermo", "THERMO_TOKEN")
        first.add_device("Basic", client_id="basic-cid", username="basic-user", password="pw")
        first.add_device("Offline", "OFFLINE_TOKEN")
        first.add_provision_profile("pk", "ps")
        first.add_provision_profile("pre", "pre-s", strategy="CHECK_PRE_PROVISIONED_DEVICES")
        first.set_shared_attributes("Thermo", {"target": 21.5, "mode": "eco"})
        first.set_shared_attributes("Thermo", {"gone": 1})
        first.delete_shared_attributes("Thermo", ["gone"])
        first.set_firmware("Thermo", image, "lamp", "1.1", "MD5")
        first.set_client_rpc_reply("getTime", {"time": 42})

        client = connect(first, "THERMO_TOKEN", "thermo")
        try:
            points = [{"ts": 1_000 + i, "values": {"n": i, "f": i / 2}} for i in range(50)]
            assert client.send_telemetry(points).wait(TIMEOUT)
            assert client.send_telemetry({"ts": 500, "values": {"n": -1}}).wait(TIMEOUT)
            assert client.send_attributes({"fwVersion": "1.0", "cfg": {"a": [1, 2]}}).wait(TIMEOUT)
            assert client.claim_device("secret", 60_000).wait(TIMEOUT)
            replies: list = []
            client.send_rpc_call("getTime", {}, lambda *a: replies.append(a), timeout=TIMEOUT)
            pump_until(client, lambda: replies, TIMEOUT, "client RPC reply")
            assert replies[0][1] == {"time": 42}
            client.set_server_side_rpc_request_handler(
                lambda rid, body: client.send_rpc_reply(rid, {"echo": body["params"]})
            )
            client.subscribe_to_all_attributes(lambda *a: None)
            pending = first.start_rpc("Thermo", "echo", {"x": 1}, expiry=30.0)
            pump_until(client, lambda: first.rpc_records("Thermo")[-1].reply, TIMEOUT, "reply")
            assert pending.wait(TIMEOUT) == {"echo": {"x": 1}}
        finally:
            client.disconnect()
        # Queued for a device that is not connected: delivered after the restart.
        queued = first.start_rpc("Offline", "blink", {"times": 3}, expiry=120.0, oneway=True)
        assert queued.id == 0

        before = {
            "devices": first.devices(),
            "telemetry": first.telemetry("Thermo"),
            "latest": first.latest_telemetry("Thermo", typed=True),
            "client": first.client_attributes("Thermo", typed=True),
            "shared": first.shared_attributes("Thermo", typed=True),
            "claims": first.claims("Thermo"),
            "rpcs": first.rpc_records("Thermo"),
            "client_rpcs": first.client_rpc_requests("Thermo"),
            "offline_rpcs": first.rpc_records("Offline"),
        }
    assert len(before["telemetry"]) == 102  # with fw_state INITIATED
    assert (before["latest"]["n"].ts, before["latest"]["n"].value) == (1049, 49)

    with DevServer(data=data) as second:
        assert second.devices() == before["devices"] == ["Basic", "Offline", "Thermo"]
        assert second.telemetry("Thermo") == before["telemetry"]
        assert second.latest_telemetry("Thermo", typed=True) == before["latest"]
        assert second.client_attributes("Thermo", typed=True) == before["client"]
        assert second.shared_attributes("Thermo", typed=True) == before["shared"]
        assert "gone" not in before["shared"]
        assert second.claims("Thermo") == before["claims"]
        assert second.rpc_records("Thermo") == before["rpcs"]
        assert second.client_rpc_requests("Thermo") == before["client_rpcs"]
        assert second.rpc_records("Offline") == before["offline_rpcs"]
        assert [r.status for r in before["offline_rpcs"]] == ["QUEUED"]

        # Credentials work after the restart.
        client = connect(second, "THERMO_TOKEN", "thermo-2")
        client.disconnect()
        basic = TBDeviceMqttClient(
            second.host, second.port, client_id="basic-cid", username="basic-user", password="pw"
        )
        assert basic.connect(timeout=TIMEOUT) is not None, basic.last_error
        basic.disconnect()
        stranger = TBDeviceMqttClient(second.host, second.port, access_token="UNKNOWN")
        assert stranger.connect(timeout=TIMEOUT) is None

        # New server RPC ids continue after the stored ones.
        assert second.start_rpc("Thermo", "x", None, expiry=1.0, oneway=True).id == 1

        # The queued RPC goes out once the device subscribes; the firmware image is served.
        dev, inbox = paho_device(second.port, "OFFLINE_TOKEN")
        try:
            topic, payload = next_message(inbox, "v1/devices/me/rpc/request/")
            assert topic == "v1/devices/me/rpc/request/0"
            assert json.loads(payload) == {"method": "blink", "params": {"times": 3}}
        finally:
            dev.disconnect()
            dev.loop_stop()
        dev, inbox = paho_device(second.port, "THERMO_TOKEN")
        try:
            dev.publish("v2/fw/request/7/chunk/0", str(len(image)), qos=1)
            _, payload = next_message(inbox, "v2/fw/response/7/chunk/0")
            assert payload == image
        finally:
            dev.disconnect()
            dev.loop_stop()

        # Provisioning profiles are back: the pre-provisioned strategy finds nothing to hand
        # out, the create-new one makes a device that is kept in turn.
        request = TBDeviceMqttClient.get_provision_request(
            "pk", "ps", device_name="New One", access_token="NEW_TOKEN"
        )
        prov = TBDeviceMqttClient.provision(second.host, second.port, request)
        assert prov["credentialsValue"] == "NEW_TOKEN"
        assert second.sync(TIMEOUT)
    with DevServer(data=data) as third:
        assert "New One" in third.devices()
        assert [p.name for p in third.provisioned_devices()] == ["New One"]


def test_second_server_on_the_same_folder_is_refused(tmp_path: Path):
    with DevServer(data=tmp_path) as first:
        first.add_device("A", "A_TOKEN")
        with pytest.raises(OSError, match="in use by another dev server"):
            DevServer(data=tmp_path)
    with DevServer(data=tmp_path) as again:
        assert again.devices() == ["A"]


def test_not_a_database_is_refused(tmp_path: Path):
    (tmp_path / "devserver.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OSError, match="not a dev server database"):
        DevServer(data=tmp_path)


def test_without_data_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with DevServer() as server:
        assert server.data is None
        server.add_device("A", "A_TOKEN")
        assert server.sync(0.0)
    assert list(tmp_path.iterdir()) == []


def test_acknowledged_telemetry_survives_kill_9(tmp_path: Path):
    """A child runs ``devserver --data``; a device streams QoS 1 telemetry and the child is
    killed with SIGKILL mid-stream. Every message the device saw acknowledged is stored."""
    data = tmp_path / "data"
    with devserver_cli(
        "--port", "0", "--quiet", "--data", str(data), "--device", "K9:K9_TOKEN", cwd=tmp_path
    ) as (proc, lines):
        port = listening_port(lines)
        assert any(f"data in {data}" in line for line in lines), lines
        client = TBDeviceMqttClient(
            HOST, port, access_token="K9_TOKEN", quality_of_service=1, reconnect=False
        )
        assert client.connect(timeout=TIMEOUT) is not None, client.last_error
        handles = [
            client.send_telemetry({"ts": 10_000 + i, "values": {"i": i}}) for i in range(4000)
        ]
        # Kill once a good part is acknowledged, with the rest still in flight.
        assert handles[1500].wait(60.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        acked = [i for i, h in enumerate(handles) if h.done]
        client.disconnect()
    assert len(acked) >= 1501
    with DevServer(data=data) as server:
        assert server.devices() == ["K9"]
        stored = {p.value for p in server.telemetry("K9", "i")}
    missing = sorted(set(acked) - stored)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:10]}"


def test_cli_restart_keeps_devices_and_skips_known_ones(tmp_path: Path):
    data = tmp_path / "data"
    args = ["--port", "0", "--data", str(data), "--device", "Lab:LAB_TOKEN"]
    for run in range(2):
        with devserver_cli(*args, cwd=tmp_path) as (proc, lines):
            assert any(f"data in {data} (1 devices)" in line for line in lines), lines
            port = listening_port(lines)
            client = TBDeviceMqttClient(HOST, port, access_token="LAB_TOKEN", quality_of_service=1)
            assert client.connect(timeout=TIMEOUT) is not None, client.last_error
            assert client.send_telemetry({"ts": 1000 + run, "values": {"run": run}}).wait(TIMEOUT)
            client.disconnect()
            stop_cli(proc)
    with DevServer(data=data) as server:
        assert [p.value for p in server.telemetry("Lab", "run")] == [0, 1]


def test_cli_restart_without_device_keeps_the_store_as_it_is(tmp_path: Path):
    """``devserver --data D`` with no ``--device`` adds the demo device to a new store only:
    a folder whose store already has devices gets nothing added (QA finding 8)."""
    data = tmp_path / "data"
    for args, expected in (
        (["--device", "Lab:LAB_TOKEN"], "(1 devices)"),
        ([], "(1 devices)"),
    ):
        cli = ["--port", "0", "--data", str(data), *args]
        with devserver_cli(*cli, cwd=tmp_path) as (proc, lines):
            assert any(f"data in {data} {expected}" in line for line in lines), lines
            out, _err = stop_cli(proc)
            assert "Demo Device" not in out
    with DevServer(data=data) as server:
        assert server.devices() == ["Lab"]


def test_rest_writes_answered_ok_survive_kill_9(tmp_path: Path):
    """REST writes (shared attributes) are answered only once committed, as MQTT PUBACKs
    are: the child ``devserver --data`` is killed with SIGKILL while four writers keep
    posting, and every key whose POST got 200 is stored."""
    import threading
    import urllib.request

    data = tmp_path / "data"
    acked: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    with devserver_cli(
        "--port", "0", "--http-port", "0", "--quiet", "--data", str(data),
        "--device", "R9:R9_TOKEN", cwd=tmp_path,
    ) as (proc, lines):  # fmt: skip
        url = next(
            word.rstrip("/") for line in lines for word in line.split() if word.startswith("http")
        )

        def call(method: str, path: str, body: object, token: str = "") -> object:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["X-Authorization"] = f"Bearer {token}"
            req = urllib.request.Request(
                url + path, json.dumps(body).encode(), headers, method=method
            )
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                assert r.status == 200
                raw = r.read()
                return json.loads(raw) if raw else None

        login = {"username": "tenant@thingsboard.org", "password": "tenant"}
        token = call("POST", "/api/auth/login", login)["token"]  # type: ignore[index]
        dev = call("GET", "/api/tenant/devices?deviceName=R9", None, token)
        dev_id = dev["id"]["id"]  # type: ignore[index]

        def writer(w: int) -> None:
            for i in range(100_000):
                key = f"w{w}_{i}"
                try:
                    call("POST", f"/api/plugins/telemetry/{dev_id}/SHARED_SCOPE", {key: i}, token)
                except OSError:  # the server was killed
                    return
                with lock:
                    acked.append(key)
                    if len(acked) >= 400:
                        enough.set()

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
        for t in threads:
            t.start()
        assert enough.wait(120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for t in threads:
            t.join(TIMEOUT)
    with lock:
        answered = list(acked)
    with DevServer(data=data) as server:
        stored = server.shared_attributes("R9")
    missing = [k for k in answered if k not in stored]
    assert not missing, f"{len(missing)} of {len(answered)} answered writes lost: {missing[:10]}"
