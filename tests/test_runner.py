"""``python -m thingsboard_sdk run``: stand-ins, redirection, tracebacks, exit codes.

Scripts run as subprocesses through the runner against a dev server on 127.0.0.1; one test
runs the runner in-process to check that nothing of the stand-ins outlives the run.
"""

from __future__ import annotations

import gc
import importlib.util
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from conftest import spawn_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def spawn_runner(run_py: Any, script: Path, *options: str) -> subprocess.Popen[bytes]:
    """Starts ``python -m thingsboard_sdk run SCRIPT OPTIONS`` in the test's folder; the
    ``run_py`` fixture kills it if the test fails."""
    proc = spawn_cli("run", str(script), *options, cwd=run_py.workdir)
    run_py.procs.append(proc)
    return proc


def run_runner(run_py: Any, script: Path, *options: str, timeout: float = 60) -> tuple:
    """Runs the script to its end; returns ``(returncode, stdout, stderr)``."""
    proc = spawn_runner(run_py, script, *options)
    out, err = run_py.finish(proc, timeout=timeout)
    return proc.returncode, out, err


def interrupt(run_py: Any, proc: subprocess.Popen[bytes]) -> tuple:
    """Sends Ctrl-C (SIGINT); returns ``(returncode, stdout, stderr)``."""
    proc.send_signal(signal.SIGINT)
    out, err = run_py.finish(proc, timeout=30)
    return proc.returncode, out, err


def server_args(server: Any, token: str) -> list[str]:
    # --token=... : a generated token may start with "-"
    return ["--server", f"{server.host}:{server.port}", f"--token={token}"]


def write(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def test_stand_ins_exist_only_while_the_script_runs(tmp_path, capsys):
    from thingsboard_sdk.__main__ import build_parser

    script = write(
        tmp_path,
        "inside.py",
        """
        import gc, sys, time
        import machine, micropython, mip, network, ubinascii, ujson, uos, uselect, usocket
        import ustruct, utime
        from sdk_core.device_mqtt import TBDeviceMqttClientBase
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        assert TBDeviceMqttClientBase is TBDeviceMqttClient
        assert micropython.const(7) == 7
        assert ujson.loads(ujson.dumps({"a": [1]})) == {"a": [1]}
        assert ustruct.pack(">H", 258) == b"\\x01\\x02"
        assert utime.ticks_diff(3, (1 << 30) - 2) == 5  # across the wrap
        assert time.ticks_add((1 << 30) - 1, 2) == 1
        assert time.ticks_diff(time.ticks_ms(), 0) < 60_000  # counts from the run's start
        assert gc.mem_free() > 0 and gc.mem_alloc() > 0
        assert machine.unique_id() == machine.unique_id() and len(machine.unique_id()) == 6
        wlan = network.WLAN(network.STA_IF)
        assert not wlan.isconnected() and wlan is network.WLAN(network.STA_IF)
        wlan.active(True)
        wlan.connect("ssid", "password")
        assert wlan.isconnected() and wlan.status() == network.STAT_GOT_IP == 3
        assert len(wlan.ifconfig()) == 4
        pin = machine.Pin(5, machine.Pin.OUT)
        pin.on()
        assert pin.value() == 1
        pin.toggle()
        assert pin() == 0
        assert machine.Pin(6, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1
        pwm = machine.PWM(pin, freq=500, duty_u16=1000)
        assert (pwm.freq(), pwm.duty_u16()) == (500, 1000)
        assert machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21)).scan() == []
        assert machine.UART(1, 115200).write(b"hi") == 2
        assert machine.ADC(machine.Pin(26)).read_u16() == 32768
        ticks = []
        timer = machine.Timer(-1)
        timer.init(period=5, mode=machine.Timer.PERIODIC, callback=lambda t: ticks.append(t))
        deadline = time.ticks_add(time.ticks_ms(), 10_000)
        while len(ticks) < 3 and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            time.sleep_ms(5)
        assert len(ticks) >= 3, ticks
        mip.install("github:thingsboard/thingsboard-micropython-client-sdk")
        assert sys.argv[1:] == ["--count", "3"], sys.argv
        print("INSIDE-OK")
        """,
    )
    meta_path = list(sys.meta_path)
    args = build_parser().parse_args(["run", str(script), "--", "--count", "3"])
    from thingsboard_sdk._runner import run

    assert run(args) == 0
    out, err = capsys.readouterr()
    assert "INSIDE-OK" in out, err
    assert "[machine] Pin(5) value 1" in err
    assert "[machine] PWM(5) duty_u16 1000" in err
    for name in ("network", "machine", "utime", "mip", "sdk_core", "micropython", "ujson"):
        assert name not in sys.modules
        assert importlib.util.find_spec(name) is None, name
    assert not hasattr(time, "sleep_ms") and not hasattr(time, "ticks_diff")
    assert not hasattr(gc, "mem_free")
    assert sys.meta_path == meta_path


def test_traceback_points_at_the_script_line(tmp_path, run_py):
    script = write(tmp_path, "broken.py", "import machine\nx = 1\nraise ValueError('boom')\n")
    rc, out, err = run_runner(run_py, script)
    assert rc == 1, err
    assert f'File "{script}", line 3, in <module>' in err
    assert "ValueError: boom" in err
    assert "_runner" not in err and "runpy" not in err, err


def test_syntax_error_names_the_script(tmp_path, run_py):
    script = write(tmp_path, "syntax.py", "x = 1\nwhile True:\n    # nothing\n")
    rc, out, err = run_runner(run_py, script)
    assert rc == 1
    assert f'File "{script}", line 3' in err and "IndentationError" in err, err


def test_exit_code_is_the_scripts(tmp_path, run_py):
    script = write(tmp_path, "exits.py", "import sys\nprint('bye')\nsys.exit(7)\n")
    rc, out, err = run_runner(run_py, script)
    assert (rc, out.strip()) == (7, "bye")


def test_machine_reset_ends_the_run_and_disconnects(tmp_path, run_py, tb_devserver):
    token = tb_devserver.add_device("resetter")
    script = write(
        tmp_path,
        "reset.py",
        """
        import machine
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("YOUR_HOST", port=1883, access_token="YOUR_TOKEN")
        client.connect()
        client.send_telemetry({"beforeReset": 1})
        try:
            machine.reset()
        except Exception:
            print("a reset must not be caught as an Exception")
        print("after reset")
        """,
    )
    rc, out, err = run_runner(run_py, script, *server_args(tb_devserver, token))
    assert rc == 3, err
    assert "machine.reset() called" in err and "after reset" not in out
    assert tb_devserver.latest_telemetry("resetter") == {"beforeReset": 1}
    events = tb_devserver.wait_for(
        lambda: [e for e in tb_devserver.connection_events("resetter") if e.kind == "disconnected"]
    )
    assert events[0].reason == "client DISCONNECT"


def test_placeholder_port_and_provisioning_are_redirected(tmp_path, run_py, tb_devserver):
    tb_devserver.add_provision_profile("KEY", "SECRET")
    script = write(
        tmp_path,
        "placeholders.py",
        """
        from thingsboard_sdk.provision_client import ProvisionClient
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        request = TBDeviceMqttClient.get_provision_request("KEY", "SECRET", device_name="p1")
        creds = TBDeviceMqttClient.provision("YOUR_HOST", "YOUR_PORT", request)
        request2 = TBDeviceMqttClient.get_provision_request("KEY", "SECRET", device_name="p2")
        assert ProvisionClient("YOUR_HOST", "YOUR_PORT", request2).provision() is not None
        client = TBDeviceMqttClient("YOUR_HOST", port="YOUR_PORT",
                                    access_token=creds["credentialsValue"])
        assert client.connect() is not None, client.last_error
        client.send_telemetry({"redirected": True})
        client.disconnect()
        """,
    )
    # --token must not replace credentials obtained by provisioning during the run
    rc, out, err = run_runner(run_py, script, *server_args(tb_devserver, "UNUSED-TOKEN"))
    assert rc == 0, err
    assert sorted(d.name for d in tb_devserver.provisioned_devices()) == ["p1", "p2"]
    assert tb_devserver.latest_telemetry("p1") == {"redirected": True}


def test_placeholder_port_without_server_gets_a_hint(tmp_path, run_py):
    script = write(
        tmp_path,
        "noserver.py",
        """
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("YOUR_HOST", port="YOUR_PORT", access_token="T")
        """,
    )
    rc, out, err = run_runner(run_py, script)
    assert rc == 1
    assert f'File "{script}", line 3' in err and "--server HOST:PORT" in err, err


def test_mip_install_of_another_package_is_a_clear_error(tmp_path, run_py):
    script = write(tmp_path, "mipper.py", "import mip\nmip.install('umqtt.simple')\n")
    rc, out, err = run_runner(run_py, script)
    assert rc == 1
    assert "ImportError: mip.install('umqtt.simple')" in err, err


def test_devserver_option_registers_the_token_and_reports(run_py):
    rc, out, err = run_runner(run_py, EXAMPLES / "claiming.py", "--devserver")
    assert rc == 0, err
    assert "run: dev server device 'claiming' with access token 'YOUR_ACCESS_TOKEN'" in err
    assert "claim: secret 'my-claim-secret', 120000 ms" in err, err


def test_sigterm_disconnects_like_ctrl_c(tmp_path, run_py, tb_devserver):
    token = tb_devserver.add_device("termed")
    script = write(
        tmp_path,
        "loop.py",
        """
        import time
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("H", port=1883, access_token="T")
        client.connect()
        print("READY")
        while True:
            time.sleep_ms(20)
        """,
    )
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    run_py.read_until(proc, "READY", timeout=30)
    proc.terminate()
    out, err = run_py.finish(proc, timeout=30)
    assert proc.returncode == 143, err
    assert re.search(r"interrupted \(SIGTERM\) at loop\.py line [678]\b", err), err
    kinds = [e.kind for e in tb_devserver.connection_events("termed")]
    assert kinds == ["connected", "disconnected"]


def test_ticks_are_monotonic_within_a_run():
    from thingsboard_sdk._runner import _mptime

    a = _mptime.ticks_us()
    b = _mptime.ticks_us()
    assert _mptime.ticks_diff(b, a) >= 0
    assert _mptime.ticks_diff(_mptime.ticks_add(a, -10), a) == -10
    assert time.monotonic() > 0


def test_firmware_update_shows_progress_and_the_saved_file(tmp_path, run_py, tb_devserver):
    token = tb_devserver.add_device("ota-script")
    image = bytes(range(256)) * 1024  # 256 KiB
    script = write(
        tmp_path,
        "ota.py",
        """
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("YOUR_HOST", port="YOUR_PORT", access_token="TOKEN",
                                    chunk_size=16384)
        client.connect()
        print("connected")
        while client.current_firmware_info.get("fw_state") != "UPDATED":
            client.wait_for_msg()
        print("now running", client.current_firmware_info["current_fw_version"])
        client.disconnect()
        """,
    )
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    assert proc.stdout is not None
    assert proc.stdout.readline().decode().strip() == "connected"
    tb_devserver.set_firmware("ota-script", image, "app.bin", "7.1")
    out, err = run_py.finish(proc, timeout=60)
    assert proc.returncode == 0, err
    assert "now running 7.1" in out
    assert "firmware [" in err and "100% 256.0 KiB of 256.0 KiB" in err
    assert f"saved to {run_py.workdir / 'app.bin'}" in err
    assert (run_py.workdir / "app.bin").read_bytes() == image
