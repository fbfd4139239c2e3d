"""The dev server's REST API (issue 12), driven by the official client and by raw HTTP.

The official client is PyPI ``tb-rest-client`` (its ``RestClient``), as a user would point it
at a real ThingsBoard; the device side is this SDK's ``TBDeviceMqttClient`` over real sockets,
so each REST operation is checked by what the device sees. Raw ``urllib`` requests check the
error shapes and codes ThingsBoard gives (shared/spec/thingsboard-rest.md, 3.2, 9).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import PyRunner, free_port, spawn_cli
from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

rest_client = pytest.importorskip("tb_rest_client.rest_client")
models = pytest.importorskip("tb_rest_client.models")
ApiException = pytest.importorskip("tb_rest_client.rest").ApiException

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0
USER, PASSWORD = "tenant@thingsboard.org", "tenant"


@pytest.fixture
def server():
    s = DevServer("127.0.0.1", 0, http_port=0)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def rest(server):
    c = rest_client.RestClient(server.url.rstrip("/"))
    c.login(USER, PASSWORD)
    return c


class Device:
    """A connected TBDeviceMqttClient whose callbacks land in queues, polled by a thread."""

    def __init__(self, server: DevServer, name: str, token: Optional[str] = None, **kw: Any):
        self.token = token or server.add_device(name)
        self.attrs: queue.Queue[Any] = queue.Queue()
        self.rpcs: queue.Queue[tuple[int, Any]] = queue.Queue()
        self.replies: dict[str, Any] = {}
        self.client = TBDeviceMqttClient(server.host, server.port, access_token=self.token, **kw)
        self.client.set_server_side_rpc_request_handler(self._on_rpc)
        assert self.client.connect(timeout=TIMEOUT) is not None, self.client.last_error
        self.client.subscribe_to_all_attributes(lambda value, *_: self.attrs.put(value))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _on_rpc(self, request_id: Any, body: Any) -> None:
        self.rpcs.put((request_id, body))
        method = body.get("method")
        if method in self.replies:
            self.client.send_rpc_reply(request_id, self.replies[method])

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.wait_for_msg(timeout=0.2)
            except OSError:
                pass

    def next_attrs(self) -> Any:
        try:
            return self.attrs.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError("no attribute push within the timeout") from None

    def close(self) -> None:
        self._stop.set()
        self._poller.join(TIMEOUT)
        self.client.disconnect()


@pytest.fixture
def device(server):
    made: list[Device] = []

    def make(name: str = "lamp", **kw: Any) -> Device:
        d = Device(server, name, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def http(server: DevServer, method: str, path: str, body: Any = None, token: str = "") -> tuple:
    """(status, decoded JSON or text or b'') of one raw request."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(server.url + path.lstrip("/"), data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def login(server: DevServer) -> str:
    status, pair = http(server, "POST", "/api/auth/login", {"username": USER, "password": PASSWORD})
    assert status == 200
    return pair["token"]


# ---- tb-rest-client: every operation of the issue ----------------------------------------------


def test_official_client_lists_finds_creates_and_deletes_devices(server, rest):
    server.add_device("thermostat", "THERMO_TOKEN")
    page = rest.get_tenant_devices(page_size=10, page=0)
    assert [d.name for d in page.data] == ["thermostat"]
    dev = rest.get_tenant_device("thermostat")
    assert dev.name == "thermostat"
    assert rest.get_device_by_id(dev.id).name == "thermostat"
    creds = rest.get_device_credentials_by_device_id(dev.id)
    assert (creds.credentials_type, creds.credentials_id) == ("ACCESS_TOKEN", "THERMO_TOKEN")

    new = rest.save_device(models.Device(name="lamp", type="default"), access_token="LAMP_TOKEN")
    assert new.id.id and new.name == "lamp"
    assert "lamp" in server.devices()
    client = TBDeviceMqttClient(server.host, server.port, access_token="LAMP_TOKEN")
    assert client.connect(timeout=TIMEOUT) is not None, "a device created over REST connects"
    client.disconnect()
    generated = rest.save_device(models.Device(name="auto", type="default"))
    token = rest.get_device_credentials_by_device_id(generated.id).credentials_id
    assert len(token) == 20 and token.isalnum()

    with pytest.raises(ApiException) as e:
        rest.save_device(models.Device(name="lamp", type="default"))
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == "Device with such name already exists!"
    rest.delete_device(new.id)
    assert "lamp" not in server.devices()
    with pytest.raises(ApiException) as e:
        rest.get_tenant_device("lamp")
    assert (e.value.status, json.loads(e.value.body)["errorCode"]) == (404, 32)


def test_official_client_sees_a_sub_devices_type_and_last_connected_gateway(server, rest):
    # thingsboard-gateway.md A.3/A.4 through REST (spec 4.1/4.2): the type the gateway's connect
    # named, the type filter, additionalInfo.lastConnectedGateway = the gateway's id and
    # additionalInfo.gateway on the gateway itself. Relations have no REST endpoint here
    # (thingsboard-rest.md leaves them out): GET /api/relations is a 404.
    from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient

    gw = TBGatewayMqttClient(
        server.host, server.port, username=server.add_device("GW", gateway=True)
    )
    assert gw.connect(timeout=TIMEOUT) is not None
    try:
        assert gw.gw_connect_device("Sub R", "meter").wait(TIMEOUT)
        assert gw.gw_send_telemetry("Plain", {"t": 1}).wait(TIMEOUT)
    finally:
        gw.disconnect()
    gw_dev = rest.get_tenant_device("GW")
    sub = rest.get_tenant_device("Sub R")
    assert sub.type == "meter"
    assert sub.additional_info["lastConnectedGateway"] == gw_dev.id.id
    assert gw_dev.additional_info["gateway"] is True
    assert rest.get_tenant_device("Plain").type == "default"
    meters = rest.get_tenant_devices(page_size=10, page=0, type="meter")
    assert [d.name for d in meters.data] == ["Sub R"]
    token = login(server)
    status, page = http(server, "GET", "/api/tenant/deviceInfos?pageSize=10&page=0", token=token)
    assert status == 200
    profiles = {d["name"]: (d["type"], d["deviceProfileName"]) for d in page["data"]}
    assert profiles["Sub R"] == ("meter", "meter") and profiles["GW"] == ("default", "default")
    status, made = http(server, "POST", "/api/device", {"name": "By hand", "type": "pump"}, token)
    assert (status, made["type"]) == (200, "pump")
    assert server.device_info("By hand")["type"] == "pump"
    sub.type = "meter v2"  # an update may change the type (thingsboard-rest.md 4.5)
    assert rest.save_device(sub).type == "meter v2"
    assert server.device_info("Sub R")["type"] == "meter v2"
    assert (
        http(server, "GET", f"/api/relations?fromId={gw_dev.id.id}&fromType=DEVICE", token=token)[0]
        == 404
    )
    # The page uploads firmware with the device's deviceProfileId: a typed device's works.
    profile = {
        "entityType": "DEVICE_PROFILE",
        "id": rest.get_device_by_id(sub.id).device_profile_id.id,
    }
    package = {"title": "fw", "version": "1", "type": "FIRMWARE", "deviceProfileId": profile}
    assert http(server, "POST", "/api/otaPackage", package, token)[0] == 200


def test_official_client_reads_latest_and_historical_telemetry(server, rest, device):
    d = device("meter")
    now = int(time.time() * 1000)
    for i, (t, n) in enumerate([(21.5, 1), (22.0, 2), (23.25, 3)]):
        d.client.send_telemetry({"ts": now - 3000 + i * 1000, "values": {"temp": t, "n": n}})
    server.wait_for(lambda: len(server.telemetry("meter", "temp")) == 3)
    dev = rest.get_tenant_device("meter")
    latest = rest.get_latest_timeseries(dev.id, keys="temp,n")
    assert latest["temp"][0].value == "23.25"  # text, as ThingsBoard answers by default
    assert latest["n"][0].ts == now - 1000
    history = rest.get_timeseries(dev.id, start_ts=now - 3000, end_ts=now - 1000, keys="temp")
    assert [p.value for p in history["temp"]] == ["22.0", "21.5"]  # newest first
    keys = rest.get_timeseries_keys_v1(dev.id)
    assert sorted(keys) == ["n", "temp"]


def test_official_client_shared_attributes_reach_the_device_and_scopes_read_back(
    server, rest, device
):
    d = device("lamp")
    d.client.send_attributes({"model": "A1", "rev": 3})
    server.wait_for(lambda: server.client_attributes("lamp").get("rev") == 3)
    dev = rest.get_tenant_device("lamp")
    rest.save_device_attributes(dev.id, "SHARED_SCOPE", {"blinkPeriod": 500, "color": "red"})
    assert d.next_attrs() == {"blinkPeriod": 500, "color": "red"}
    rest.save_device_attributes(dev.id, "SERVER_SCOPE", {"installed": True})
    client_attrs = rest.get_attributes_by_scope(dev.id, "CLIENT_SCOPE")
    assert {a.key: a.value for a in client_attrs} == {"model": "A1", "rev": 3}
    shared = {a.key: a.value for a in rest.get_attributes_by_scope(dev.id, "SHARED_SCOPE")}
    assert shared == {"blinkPeriod": 500, "color": "red"}
    server_scope = rest.get_attributes_by_scope(dev.id, "SERVER_SCOPE")
    assert [(a.key, a.value) for a in server_scope] == [("installed", True)]
    assert server.shared_attributes("lamp") == {"blinkPeriod": 500, "color": "red"}
    rest.delete_device_attributes(dev.id, "SHARED_SCOPE", keys="color")
    assert d.next_attrs() == {"deleted": ["color"]}
    assert server.shared_attributes("lamp") == {"blinkPeriod": 500}
    assert d.attrs.empty(), "the server-scope write must never reach the device"


def test_official_client_rpc_two_way_one_way_and_timeout(server, rest, device):
    d = device("lamp")
    d.replies["getTemp"] = {"temp": 21.5}
    dev = rest.get_tenant_device("lamp")
    # v1 path (handle_two_way_device_rpc_request) and v2 path (..._v1 in the client's naming).
    reply = rest.handle_two_way_device_rpc_request(dev.id, {"method": "getTemp", "params": {}})
    assert reply == {"temp": 21.5}
    reply = rest.handle_two_way_device_rpc_request_v1(
        dev.id, {"method": "getTemp", "params": {"unit": "C"}}
    )
    assert reply == {"temp": 21.5}
    rest.handle_one_way_device_rpc_request_v1(dev.id, {"method": "blink", "params": 3})
    seen = [d.rpcs.get(timeout=TIMEOUT)[1] for _ in range(3)]
    assert seen[1] == {"method": "getTemp", "params": {"unit": "C"}}
    assert seen[2] == {"method": "blink", "params": 3}
    # No reply in time: ThingsBoard's 504 on the v2 path, 408 on v1 (delivered, unanswered).
    expires = int(time.time() * 1000) + 1500
    with pytest.raises(ApiException) as e:
        rest.handle_two_way_device_rpc_request_v1(
            dev.id, {"method": "silent", "params": None, "expirationTime": expires}
        )
    assert e.value.status == 504
    expires = int(time.time() * 1000) + 1500
    with pytest.raises(ApiException) as e:
        rest.handle_two_way_device_rpc_request(
            dev.id, {"method": "silent", "params": None, "expirationTime": expires}
        )
    assert e.value.status == 408


def test_official_client_ota_upload_and_assignment_updates_the_device(
    server, rest, device, tmp_path
):
    data = os.urandom(40_000)
    updated: queue.Queue[tuple[str, dict]] = queue.Queue()
    d = device(
        "lamp",
        firmware_dir=str(tmp_path),
        chunk_size=16384,
        on_firmware_update=lambda path, info: updated.put((path, info)),
    )
    dev = rest.get_tenant_device("lamp")
    info = rest.save_ota_package_info(
        models.SaveOtaPackageInfoRequest(
            title="lamp-fw",
            version="1.1",
            type="FIRMWARE",
            device_profile_id=dev.device_profile_id,
            uses_url=False,
        )
    )
    image = tmp_path / "lamp.bin"
    image.write_bytes(data)
    info = rest.save_ota_package_data(
        info.id, checksum_algorithm="SHA256", file=str(image), checksum=""
    )
    assert info.has_data and info.data_size == len(data)
    assert info.checksum == hashlib.sha256(data).hexdigest()
    dev.firmware_id = info.id
    rest.save_device(dev)
    offer = d.next_attrs()
    assert offer["fw_title"] == "lamp-fw" and offer["fw_version"] == "1.1"
    assert offer["fw_size"] == len(data) and offer["fw_checksum_algorithm"] == "SHA256"
    path, _ = updated.get(timeout=60)
    assert Path(path).read_bytes() == data
    server.wait_for(
        lambda: [p.value for p in server.telemetry("lamp", "fw_state")][-1] == "UPDATED",
        what="fw_state UPDATED",
    )
    assert server.telemetry("lamp", "fw_state")[0].value == "INITIATED"
    assert rest.get_device_by_id(dev.id).firmware_id.id == info.id.id


# ---- raw HTTP: auth and errors -----------------------------------------------------------------


def test_every_api_call_needs_a_token_and_errors_have_thingsboard_shapes(server):
    status, body = http(server, "GET", "/api/tenant/devices?pageSize=1&page=0")
    assert status == 401
    assert (body["status"], body["errorCode"], body["message"]) == (
        401,
        10,
        "Authentication failed",
    )
    status, body = http(server, "POST", "/api/auth/login", {"username": USER, "password": "x"})
    assert (status, body["message"]) == (401, "Invalid username or password")
    token = login(server)
    bad = "/api/plugins/telemetry/DEVICE/5a3f0c1e-7c0e-11ee-b962-0242ac120002/SHARED_SCOPE"
    # Malformed JSON is a 400 even for an unknown device (ThingsBoard's order of checks).
    assert http(server, "POST", bad, b'{"a":', token) == (400, "Invalid JSON")
    assert http(server, "POST", bad, {"a": 1}, token) == (
        404,
        "Device with requested id wasn't found!",
    )
    status, body = http(server, "GET", "/api/device/not-a-uuid", token=token)
    assert status == 400 and body["errorCode"] == 31
    status, body = http(server, "POST", "/api/rpc/twoway/nope", b"not json", token)
    assert status == 400 and body["message"] == "Invalid request body"


def test_oversized_and_hostile_bodies_are_refused_and_the_server_goes_on(server):
    token = login(server)
    server.add_device("lamp")
    dev_id = http(server, "GET", "/api/tenant/device?deviceName=lamp", token=token)[1]["id"]["id"]
    path = f"/api/plugins/telemetry/DEVICE/{dev_id}/SHARED_SCOPE"
    status, _ = http(server, "POST", path, b'{"a":"' + b"x" * (2 << 20) + b'"}', token)
    assert status == 413
    for junk in (b"\xff\xfe\x00", b"[" * 10000, b'{"a":}', b""):
        status, _ = http(server, "POST", path, junk, token)
        assert status == 400, junk[:10]
    assert http(server, "POST", path, {"ok": 1}, token)[0] == 200
    assert server.shared_attributes("lamp") == {"ok": 1}


def test_no_password_or_token_in_the_server_log(server):
    stream = server.log_stream()
    token = login(server)
    http(server, "POST", "/api/auth/login", {"username": USER, "password": "wrong-secret"})
    http(server, "GET", "/api/tenant/devices?pageSize=1&page=0", token=token)
    lines = []
    while (line := stream.try_recv()) is not None:
        lines.append(line)
    text = "\n".join(lines)
    assert "REST login" in text
    assert PASSWORD not in text.replace(USER, "") and "wrong-secret" not in text
    assert token not in text and token[:20] not in text


# ---- the CLI drives `run --devserver` from a second process ------------------------------------


def test_cli_rpc_drives_a_script_run_with_devserver(tmp_path):
    """The issue's first paragraph: `run examples/rpc_led.py --devserver` waits for an RPC; a
    second process sends it with the CLI and prints the script's reply."""
    run = spawn_cli("run", str(ROOT / "examples" / "rpc_led.py"), "--devserver",
                    "--http-port", "0", cwd=tmp_path)  # fmt: skip
    try:
        lines = PyRunner.read_until(run, "web page and REST API: ", 60, stderr=True)
        url = lines[-1].split("web page and REST API: ")[1].split()[0]
        assert "login tenant@thingsboard.org / tenant" in "".join(lines)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "thingsboard_sdk", *args, "--url", url],
                capture_output=True,
                text=True,
                timeout=60,
            )

        # The script connects once the dev server is up: wait for it over REST.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            shown = cli("show")
            if "online" in shown.stdout.split("rpc_led")[0]:
                break
            time.sleep(0.2)  # polling another process's state; no event to await here
        assert "online" in shown.stdout, shown.stdout + shown.stderr
        out = cli("rpc", "rpc_led", "setLed", "true")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"led": 1}
        out = cli("rpc", "rpc_led", "getLed")
        assert json.loads(out.stdout) == {"led": 1, "brightness": 0}
        out = cli("shared", "set", "rpc_led", "color=red", "period=500")
        assert out.returncode == 0, out.stderr
        out = cli("show", "rpc_led", "--json")
        shared = {
            a["key"]: a["value"] for a in json.loads(out.stdout)["attributes"]["SHARED_SCOPE"]
        }
        assert shared == {"color": "red", "period": 500}
        out = cli("rpc", "nosuch", "x")
        assert out.returncode == 1 and "no device named 'nosuch'" in out.stderr
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()


def test_cli_commands_explain_themselves_and_fail_clearly_without_a_server():
    for cmd in ("rpc", "shared", "show", "follow", "firmware"):
        out = subprocess.run(
            [sys.executable, "-m", "thingsboard_sdk", cmd, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and "examples:" in out.stdout, cmd
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "thingsboard_sdk",
            "show",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "cannot reach" in out.stderr


def test_cli_follow_prints_live_telemetry_and_firmware_assigns_an_image(server, device, tmp_path):
    d = device("meter", firmware_dir=str(tmp_path))  # the offer below starts a download
    url = server.url
    follow = spawn_cli("follow", "meter", "--url", url, cwd=tmp_path)
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline().decode()
        assert first.startswith("following 'meter'"), first
        # The line is printed just before the stream opens: send distinct values until one
        # comes out (each send is also the wait), and check it is one that was sent.
        sent = []
        got = ""
        for i in range(50):
            d.client.send_telemetry({"temp": 20 + i})
            sent.append(f"temp={20 + i}")
            ready, _, _ = select.select([follow.stdout], [], [], 0.2)
            if ready:
                got = follow.stdout.readline().decode()
                break
        assert got.split()[-1] in sent, got
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=30)
    assert follow.returncode == 0

    image = tmp_path / "meter.bin"
    image.write_bytes(b"\x01\x02" * 5000)
    out = subprocess.run(
        [sys.executable, "-m", "thingsboard_sdk", "firmware", "meter", str(image),
         "--title", "meter-fw", "--version", "2.0", "--algorithm", "crc32", "--url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "assigned to 'meter'" in out.stdout
    offer = d.next_attrs()
    assert (offer["fw_title"], offer["fw_version"], offer["fw_size"]) == ("meter-fw", "2.0", 10000)
    assert offer["fw_checksum_algorithm"] == "CRC32"
