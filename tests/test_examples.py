"""Every script in examples/ runs unchanged through the runner against a dev server; each test
checks what the server stored or what the device replied. Looping examples end with Ctrl-C,
which must disconnect the client cleanly and exit 130."""

from __future__ import annotations

import json
import re
from typing import Any

from test_runner import EXAMPLES, interrupt, run_runner, server_args, spawn_runner


def assert_clean_stop(server: Any, device: str, proc_rc: int, err: str) -> None:
    assert proc_rc == 130, err
    assert "run: interrupted (Ctrl-C)" in err
    assert "Traceback" not in err, err
    events = [e for e in server.connection_events(device) if e.kind == "disconnected"]
    assert [e.reason for e in events] == ["client DISCONNECT"]


def test_every_example_has_a_test():
    names = {p.stem for p in EXAMPLES.glob("*.py")}
    tested = {n[len("test_") :] for n in globals() if n.startswith("test_")}
    assert names and names <= tested, names - tested


def test_wifi_connect(run_py, tb_devserver):
    token = tb_devserver.add_device("wifi")
    rc, out, err = run_runner(
        run_py, EXAMPLES / "wifi_connect.py", *server_args(tb_devserver, token)
    )
    assert rc == 0, err
    assert "Wi-Fi connected:" in out and out.rstrip().endswith("Done")
    attrs = tb_devserver.client_attributes("wifi")
    assert attrs["wifiConnected"] is True
    assert re.fullmatch(r"[0-9a-f]{12}", attrs["mac"]) and attrs["ip"].count(".") == 3


def test_telemetry_loop(run_py, tb_devserver):
    token = tb_devserver.add_device("loop")
    proc = spawn_runner(run_py, EXAMPLES / "telemetry_loop.py", *server_args(tb_devserver, token))
    tb_devserver.wait_for(lambda: len(tb_devserver.telemetry("loop", "count")) >= 2, 30)
    rc, out, err = interrupt(run_py, proc)
    counts = [p.value for p in tb_devserver.telemetry("loop", "count")]
    assert counts == list(range(1, len(counts) + 1))
    latest = tb_devserver.latest_telemetry("loop")
    assert latest["voltage"] == 1.65 and latest["memFree"] > 0
    uptimes = [p.value for p in tb_devserver.telemetry("loop", "uptimeMs")]
    assert uptimes[1] - uptimes[0] >= 900  # sleep_ms(1000) between sends
    assert_clean_stop(tb_devserver, "loop", rc, err)


def test_attributes(run_py, tb_devserver):
    token = tb_devserver.add_device("attrs")
    tb_devserver.set_shared_attributes("attrs", {"targetTemperature": 21.5})
    rc, out, err = run_runner(run_py, EXAMPLES / "attributes.py", *server_args(tb_devserver, token))
    assert rc == 0, err
    assert tb_devserver.client_attributes("attrs") == {
        "firmwareVersion": "1.0.0",
        "model": "ESP32-DevKitC",
    }
    expected = {
        "client": {"firmwareVersion": "1.0.0", "model": "ESP32-DevKitC"},
        "shared": {"targetTemperature": 21.5},
    }
    assert f"Attributes: {expected!r}" in out, out


def test_attribute_subscription(run_py, tb_devserver):
    token = tb_devserver.add_device("sub")
    script = EXAMPLES / "attribute_subscription.py"
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    run_py.read_until(proc, "Waiting for attribute updates", timeout=30)
    tb_devserver.set_shared_attributes("sub", {"blinkPeriodMs": 250})
    tb_devserver.wait_for(
        lambda: tb_devserver.client_attributes("sub").get("appliedBlinkPeriodMs") == 250, 15
    )
    tb_devserver.set_shared_attributes("sub", {"colour": "red"})
    lines = run_py.read_until(proc, "'colour': 'red'", timeout=15)
    rc, out, err = interrupt(run_py, proc)
    assert "New blink period: 250" in "".join(lines)
    assert tb_devserver.client_attributes("sub") == {"appliedBlinkPeriodMs": 250}
    assert_clean_stop(tb_devserver, "sub", rc, err)


def test_rpc_blocking(run_py, tb_devserver):
    token = tb_devserver.add_device("rpcb")
    proc = spawn_runner(run_py, EXAMPLES / "rpc_blocking.py", *server_args(tb_devserver, token))
    run_py.read_until(proc, "Waiting for RPC", timeout=30)
    assert tb_devserver.send_rpc("rpcb", "echo", {"x": [1, 2]}, timeout=10) == {
        "echo": {"x": [1, 2]}
    }
    assert tb_devserver.send_rpc("rpcb", "getMemFree", timeout=10)["memFree"] > 0
    assert "unknown method" in tb_devserver.send_rpc("rpcb", "nope", timeout=10)["error"]
    rc, out, err = interrupt(run_py, proc)  # while blocked in wait_for_msg()
    assert [r.status for r in tb_devserver.rpc_records("rpcb")] == ["SUCCESSFUL"] * 3
    assert_clean_stop(tb_devserver, "rpcb", rc, err)


def test_rpc_nonblocking(run_py, tb_devserver):
    token = tb_devserver.add_device("rpcn")
    script = EXAMPLES / "rpc_nonblocking.py"
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    run_py.read_until(proc, "Polling for RPC", timeout=30)
    reply = tb_devserver.send_rpc("rpcn", "setReportPeriod", 100, timeout=10)
    assert reply == {"reportPeriodMs": 100}
    tb_devserver.wait_for(
        lambda: tb_devserver.latest_telemetry("rpcn").get("reportPeriodMs") == 100, 15
    )
    assert tb_devserver.send_rpc("rpcn", "getLoops", timeout=10)["loops"] > 0
    rc, out, err = interrupt(run_py, proc)
    assert_clean_stop(tb_devserver, "rpcn", rc, err)


def test_rpc_led(run_py, tb_devserver):
    token = tb_devserver.add_device("led")
    proc = spawn_runner(run_py, EXAMPLES / "rpc_led.py", *server_args(tb_devserver, token))
    run_py.read_until(proc, "LED ready", timeout=30)
    assert tb_devserver.send_rpc("led", "setLed", True, timeout=10) == {"led": 1}
    # the reply is deferred until the fade in the main loop is done
    assert tb_devserver.send_rpc("led", "setBrightness", 50, timeout=15) == {"brightness": 50}
    # the telemetry follows the reply
    latest = tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("led"), 10, "telemetry")
    assert latest == {"brightness": 50}
    assert tb_devserver.send_rpc("led", "getLed", timeout=10) == {"led": 1, "brightness": 50}
    rc, out, err = interrupt(run_py, proc)
    assert "[machine] Pin(2) value 1" in err
    duties = re.findall(r"\[machine\] PWM\(4\) duty_u16 (\d+)", err)
    assert [int(d) for d in duties] == [0] + [p * 65535 // 100 for p in (10, 20, 30, 40, 50)]
    assert_clean_stop(tb_devserver, "led", rc, err)


def test_claiming(run_py, tb_devserver):
    token = tb_devserver.add_device("claimer")
    rc, out, err = run_runner(run_py, EXAMPLES / "claiming.py", *server_args(tb_devserver, token))
    assert rc == 0, err
    claims = tb_devserver.claims("claimer")
    assert [(c.secret_key, c.duration_ms) for c in claims] == [("my-claim-secret", 120000)]


def test_provisioning(run_py, tb_devserver):
    tb_devserver.add_provision_profile("YOUR_PROVISION_DEVICE_KEY", "YOUR_PROVISION_DEVICE_SECRET")
    where = ["--server", f"{tb_devserver.host}:{tb_devserver.port}"]
    rc, out, err = run_runner(run_py, EXAMPLES / "provisioning.py", *where)
    assert rc == 0, err
    [device] = tb_devserver.provisioned_devices()
    assert re.fullmatch(r"sensor-[0-9a-f]{12}", device.name)
    saved = json.loads((run_py.workdir / "tb_credentials.json").read_text())
    assert saved == {"accessToken": device.credentials["token"]}
    assert tb_devserver.latest_telemetry(device.name) == {
        "provisioned": True,
        "deviceName": device.name,
    }
    # the second boot uses the saved credentials instead of provisioning again
    rc, out, err = run_runner(run_py, EXAMPLES / "provisioning.py", *where)
    assert rc == 0 and "Using saved credentials" in out, err
    assert len(tb_devserver.provisioned_devices()) == 1
    connected = [e for e in tb_devserver.connection_events(device.name) if e.kind == "connected"]
    assert len(connected) == 2
