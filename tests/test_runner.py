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


def run_cli(run_py: Any, *args: str, timeout: float = 60) -> tuple:
    """Runs ``python -m thingsboard_sdk ARGS`` in the test's folder to its end; returns
    ``(returncode, stdout, stderr)``."""
    proc = spawn_cli(*args, cwd=run_py.workdir)
    run_py.procs.append(proc)
    out, err = run_py.finish(proc, timeout=timeout)
    return proc.returncode, out, err


def run_runner(run_py: Any, script: Path, *options: str, timeout: float = 60) -> tuple:
    """Runs the script to its end; returns ``(returncode, stdout, stderr)``."""
    return run_cli(run_py, "run", str(script), *options, timeout=timeout)


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
    from thingsboard_sdk.__main__ import parse_args

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
    args = parse_args(["run", str(script), "--", "--count", "3"])
    from thingsboard_sdk._runner import run

    assert run(args) == 0
    out, err = capsys.readouterr()
    assert "INSIDE-OK" in out, err
    assert "[machine] Pin(5) value 1" in err
    assert "[machine] PWM(5) duty_u16 1000" in err
    for name in ("network", "machine", "utime", "mip", "sdk_core", "micropython", "tb_device_mqtt"):
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


# ---- the copied SDK's import path, signals, options -------------------------------------------


def test_copied_sdk_modules_import_at_top_level(tmp_path, run_py, tb_devserver):
    """Projects copy tb_device_mqtt.py onto the board and import it from the top."""
    token = tb_devserver.add_device("copied")
    script = write(
        tmp_path,
        "copied.py",
        """
        from tb_device_mqtt import TBDeviceMqttClient
        from provision_client import ProvisionClient
        import thingsboard_sdk.tb_device_mqtt as real
        assert TBDeviceMqttClient is real.TBDeviceMqttClient
        client = TBDeviceMqttClient("YOUR_HOST", port="YOUR_PORT", access_token="T")
        client.connect()
        client.send_telemetry({"copied": 1}).wait(10)
        client.disconnect()
        """,
    )
    rc, out, err = run_runner(run_py, script, *server_args(tb_devserver, token))
    assert rc == 0, err
    assert tb_devserver.latest_telemetry("copied") == {"copied": 1}


LOOP_SCRIPT = """
import time
from tb_device_mqtt import TBDeviceMqttClient
client = TBDeviceMqttClient("YOUR_HOST", port=1883, access_token="T")
client.connect()
client.send_telemetry({"n": 1})
print("READY")
while True:
    time.sleep_ms(20)
"""


def test_sigterm_to_process_and_group_like_timeout(tmp_path, run_py, tb_devserver):
    """``timeout`` signals the child, then its whole group: two SIGTERMs at once."""
    import os

    token = tb_devserver.add_device("twice")
    script = write(tmp_path, "twice.py", LOOP_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "thingsboard_sdk", "run", str(script)]
        + server_args(tb_devserver, token),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )
    run_py.procs.append(proc)
    run_py.read_until(proc, "READY", timeout=30)
    os.kill(proc.pid, signal.SIGTERM)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = run_py.finish(proc, timeout=30)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    assert "interrupted (SIGTERM)" in err
    assert [e.kind for e in tb_devserver.connection_events("twice")] == [
        "connected",
        "disconnected",
    ]


def test_signals_during_cleanup_show_no_runner_traceback(tmp_path, run_py):
    """The server never acknowledges, so the final flush waits its full bound; every SIGTERM
    and Ctrl-C sent meanwhile is noted, none cuts the cleanup with a traceback."""
    import socket as socketlib
    import threading

    from conftest import encode_packet, read_packet

    listener = socketlib.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    conns = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conns.append(conn)
        try:
            while True:
                ptype, _flags, body = read_packet(conn)
                if ptype == 1:
                    conn.sendall(encode_packet(2, 0, b"\x00\x00"))
                elif ptype == 8:
                    conn.sendall(encode_packet(9, 0, body[:2] + b"\x01" * 4))
                # PUBLISH: never acknowledged
        except (OSError, ConnectionError, AssertionError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        script = write(tmp_path, "stall.py", LOOP_SCRIPT.replace('{"n": 1}', '{"n": 2}'))
        proc = spawn_runner(run_py, script, "--server", f"127.0.0.1:{listener.getsockname()[1]}")
        run_py.read_until(proc, "READY", timeout=30)
        proc.send_signal(signal.SIGTERM)
        run_py.read_until(proc, "interrupted (SIGTERM)", stderr=True)
        sent = 0
        while proc.poll() is None and sent < 20:
            proc.send_signal(signal.SIGTERM if sent % 2 else signal.SIGINT)
            sent += 1
            try:
                proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        out, err = run_py.finish(proc, timeout=30)
    finally:
        listener.close()
        for c in conns:
            c.close()
    assert sent >= 2, "the cleanup ended before any signal could reach it"
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "_runner" not in err, err


def test_misspelt_options_are_errors_with_a_suggestion(tmp_path, run_py):
    script = write(tmp_path, "args.py", "import sys\nprint(sys.argv[1:])\n")
    rc, out, err = run_runner(run_py, script, "--sever", "127.0.0.1:1")
    assert rc == 2 and out == ""
    assert "unknown option --sever (did you mean --server?)" in err, err
    assert "options for the script go after --" in err
    rc, out, err = run_cli(run_py, "run", "--dev-server", str(script))
    assert rc == 2 and "did you mean --devserver?" in err, err
    rc, out, err = run_runner(run_py, script, "word", "--", "--sever", "-v")
    assert rc == 0, err
    assert out.strip() == "['word', '--sever', '-v']"


def test_server_without_port_means_1883():
    import argparse

    from thingsboard_sdk._runner._options import host_port

    assert host_port("broker.local") == ("broker.local", 1883)
    assert host_port("10.0.0.2:8883") == ("10.0.0.2", 8883)
    assert host_port("[::1]:1884") == ("::1", 1884)
    assert host_port("::1") == ("::1", 1883)
    for bad in ("host:0", "host:x", ":1883", "host:70000"):
        try:
            host_port(bad)
        except argparse.ArgumentTypeError as exc:
            assert repr(bad) in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_version_option(run_py):
    import thingsboard_sdk

    rc, out, err = run_cli(run_py, "--version")
    assert rc == 0
    assert out.strip() == f"python -m thingsboard_sdk {thingsboard_sdk.__version__}"


# ---- what the client does on the wire (-v), reconnects at the default level ------------------


def test_verbose_shows_every_packet_both_ways(tmp_path, run_py, tb_devserver):
    token = tb_devserver.add_device("wire")
    script = write(
        tmp_path,
        "wire.py",
        """
        from tb_device_mqtt import TBDeviceMqttClient
        from umqtt.simple import MQTTClient
        client = TBDeviceMqttClient("YOUR_HOST", port=1883, access_token="T")
        client.connect()
        client.send_telemetry({"temperature": 21.5}).wait(10)
        client.disconnect()
        u = MQTTClient("umqtt-wire", "YOUR_HOST", user="T", password="")
        u.connect()
        u.publish("v1/devices/me/attributes", '{"fw": "v2"}', qos=1)
        u.disconnect()
        """,
    )
    rc, out, err = run_runner(run_py, script, "-v", *server_args(tb_devserver, token))
    assert rc == 0, err
    wire = [line for line in err.splitlines() if line.startswith("[wire]")]
    text = "\n".join(wire)
    assert re.search(
        rf"#1 -> CONNECT client_id='\w+' keepalive=120 clean=1 username='{token}'", text
    )
    assert "#1 <- CONNACK session_present=0 rc=0" in text
    assert "#1 -> SUBSCRIBE id=1 v1/devices/me/attributes qos=1" in text
    sent = re.search(
        r'#1 -> PUBLISH v1/devices/me/telemetry qos=1 id=(\d+) {"temperature":21.5}', text
    )
    assert sent, text
    assert f"#1 <- PUBACK id={sent.group(1)}" in text
    assert "#1 -> DISCONNECT" in text
    assert "#2 -> CONNECT client_id='umqtt-wire' keepalive=0 clean=1" in text
    assert '#2 -> PUBLISH v1/devices/me/attributes qos=1 id=1 {"fw": "v2"}' in text
    assert "#2 <- PUBACK id=1" in text
    assert tb_devserver.latest_telemetry("wire") == {"temperature": 21.5}


def test_reconnected_is_shown_once_lost_was(tmp_path, run_py, restartable_broker):
    script = write(
        tmp_path,
        "survivor.py",
        """
        import time
        from tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("127.0.0.1", port=int(__import__("sys").argv[1]),
                                    access_token="T")
        client.connect()
        print("READY")
        while True:
            time.sleep_ms(20)
        """,
    )
    proc = spawn_runner(run_py, script, "--", str(restartable_broker.port))
    run_py.read_until(proc, "READY", timeout=30)
    restartable_broker.stop()
    run_py.read_until(proc, " lost ", stderr=True)
    restartable_broker.start()
    run_py.read_until(proc, "reconnected to the server", stderr=True)
    rc, out, err = interrupt(run_py, proc)
    assert rc == 130, err


def test_examples_ship_in_the_package_and_run_by_name(run_py):
    import thingsboard_sdk

    shipped = Path(thingsboard_sdk.__file__).parent / "examples"
    names = sorted(p.stem for p in shipped.glob("*.py"))
    assert "telemetry_loop" in names
    rc, out, err = run_cli(run_py, "run", "--list-examples")
    assert rc == 0, err
    assert [line.split()[0] for line in out.splitlines()] == names
    assert "Send telemetry every second" in out
    rc, out, err = run_cli(run_py, "run", "--example", "attributes", "--devserver")
    assert rc == 0, err
    assert "client attributes: {'firmwareVersion': '1.0.0', 'model': 'ESP32-DevKitC'}" in err
    rc, out, err = run_cli(run_py, "run", "--example", "atributes")
    assert rc == 2 and "did you mean attributes?" in err, err
