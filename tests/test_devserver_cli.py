"""``python -m thingsboard_sdk``: devserver, demo, the command table and the console script."""

from __future__ import annotations

import importlib.metadata
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST, PyRunner, _child_env, devserver_cli, listening_port, stop_cli
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient


def run_cli(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingsboard_sdk", *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- devserver ------------------------------------------------------------------------------------


def test_devserver_port_in_use_exits_2(tmp_path):
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("devserver", "--port", str(port), cwd=tmp_path)
    assert r.returncode == 2, r
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "in use" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("bad", ["nocolon", ":token", "name:", ""])
def test_devserver_malformed_device_exits_2(tmp_path, bad):
    r = run_cli("devserver", "--port", "0", "--device", bad, cwd=tmp_path)
    assert r.returncode == 2, r
    assert "NAME:TOKEN" in r.stderr
    assert "Traceback" not in r.stderr


def test_devserver_malformed_provision_exits_2(tmp_path):
    r = run_cli("devserver", "--port", "0", "--provision", "keyonly", cwd=tmp_path)
    assert r.returncode == 2, r
    assert "KEY:SECRET" in r.stderr


def test_devserver_duplicate_token_exits_2(tmp_path):
    r = run_cli("devserver", "--port", "0", "--device", "a:T", "--device", "b:T", cwd=tmp_path)
    assert r.returncode == 2, r
    assert "used by another device" in r.stderr


def test_devserver_serves_logs_and_stops_on_ctrl_c(tmp_path):
    args = ["--port", "0", "--device", "Lab Sensor:LAB_TOKEN", "--provision", "pk:ps"]
    with devserver_cli(*args, cwd=tmp_path) as (proc, lines):
        port = listening_port(lines)
        assert any("'Lab Sensor': access token LAB_TOKEN" in line for line in lines)
        assert any("provisioning profile: key 'pk'" in line for line in lines)

        client = TBDeviceMqttClient(HOST, port, access_token="LAB_TOKEN", client_id="lab-1")
        assert client.connect(timeout=10) is not None, client.last_error
        try:
            assert client.send_telemetry({"temperature": 21}).wait(5)
            PyRunner.read_until(proc, '"Lab Sensor" telemetry')
        finally:
            client.disconnect()
        PyRunner.read_until(proc, "disconnected")

        out, _err = stop_cli(proc, signal.SIGINT)
    assert "dev server stopped" in out
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=5).close()


def test_devserver_default_demo_device_and_quiet(tmp_path):
    with devserver_cli("--port", "0", "--quiet", cwd=tmp_path) as (proc, lines):
        port = listening_port(lines)
        assert any("'Demo Device': access token DEMO_DEVICE_TOKEN" in line for line in lines)
        client = TBDeviceMqttClient(HOST, port, access_token="DEMO_DEVICE_TOKEN", client_id="d-1")
        assert client.connect(timeout=10) is not None, client.last_error
        client.send_telemetry({"x": 1}).wait(5)
        client.disconnect()
        out, _err = stop_cli(proc)
    assert "telemetry" not in out  # --quiet: no per-message lines
    assert out.rstrip().endswith("dev server stopped")


# -- demo ------------------------------------------------------------------------


def test_demo_exits_0_and_prints_stored_data(tmp_path):
    r = run_cli("demo", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "== what the server stored" in out
    assert "telemetry  temperature = 22.4 (DOUBLE" in out
    assert "telemetry  humidity = 48 (LONG" in out
    assert "client attribute  model = 'TH-100' (STRING)" in out
    assert "shared attribute  targetTemperature = 23.0 (DOUBLE)" in out
    assert "device got {'targetTemperature': 23.0}" in out
    assert re.search(r"server RPC 0 getTemperature\(.*\) SUCCESSFUL", out)
    assert "provisioned 'demo-sensor' with profile 'demo-provision-key'" in out
    assert "demo finished" in out


def test_no_command_is_a_usage_error(tmp_path):
    r = run_cli(cwd=tmp_path)
    assert r.returncode == 2
    assert "devserver" in r.stderr or "COMMAND" in r.stderr


# -- console script -------------------------------------------------------------------------------


def test_console_script_is_installed(tmp_path):
    (ep,) = [
        e
        for e in importlib.metadata.entry_points(group="console_scripts")
        if e.name == "thingsboard-devserver"
    ]
    assert ep.value == "thingsboard_sdk.__main__:devserver_main"
    script = Path(sys.executable).parent / "thingsboard-devserver"
    if not script.exists():
        pytest.skip(f"{script} not on this interpreter's bin directory")
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        r = subprocess.run(
            [str(script), "--port", str(s.getsockname()[1])],
            cwd=tmp_path,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    assert "cannot listen" in r.stderr
