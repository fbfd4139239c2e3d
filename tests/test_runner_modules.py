"""The runner's MicroPython module set: stand-ins for board built-ins and micropython-lib,
umqtt and urequests over real sockets, board modules without a stand-in, board figures.

Every script runs through ``python -m thingsboard_sdk run`` as a subprocess, against the dev
server, a mosquitto or an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from test_runner import run_runner, server_args, spawn_runner, write


def test_micropython_modules_under_both_names(tmp_path, run_py):
    script = write(
        tmp_path,
        "mods.py",
        """
        import time, json, re, random, hashlib, collections, io, errno, struct, socket
        import select, ssl, binascii, os, sys, asyncio, gc, zlib, heapq, array
        import utime, ujson, ure, urandom, uhashlib, ucollections, uio, uerrno, ustruct
        import usocket, uselect, ussl, ubinascii, uos, usys, uasyncio, uzlib, uheapq, uarray
        import ntptime, urequests, requests, framebuf, bluetooth, rp2, esp, esp32, deflate
        import dht, neopixel, onewire, ds18x20, machine, micropython, network, umachine
        from umqtt.simple import MQTTClient, MQTTException
        from umqtt.robust import MQTTClient as RobustClient
        assert issubclass(RobustClient, MQTTClient)
        # the plain names are MicroPython's modules for the script
        assert json is ujson and time is utime and sys is usys and re is ure
        assert requests is urequests and umachine is machine and gc.mem_free
        # MicroPython's behaviour where it differs from CPython's
        assert isinstance(time.time(), int) and len(time.localtime()) == 8
        assert time.mktime(time.localtime(1700000000)) == 1700000000
        assert sys.platform == "esp32" and sys.implementation.name == "micropython"
        assert not hasattr(re, "findall") and re.sub("a+", "b", "caaat") == "cbt"
        assert re.match(r"(\\d+)-(\\d+)", "12-34").groups() == ("12", "34")
        h = hashlib.sha256(b"abc")
        assert not hasattr(h, "hexdigest")
        assert binascii.hexlify(h.digest())[:8] == b"ba7816bf"
        try:
            h.update(b"more")
            raise AssertionError("update after digest")
        except ValueError:
            pass
        try:
            random.getrandbits(33)
            raise AssertionError("33 bits accepted")
        except ValueError:
            pass
        assert 0 <= random.getrandbits(32) < 2**32 and 1 <= random.randint(1, 3) <= 3
        try:
            collections.deque(())
            raise AssertionError("deque without maxlen")
        except TypeError:
            pass
        q = collections.deque((), 2)
        q.append(1); q.append(2); q.append(3)
        assert list(q) == [2, 3]
        assert json.dumps({"a": [1, 2]}) == '{"a": [1, 2]}'
        try:
            json.loads("{bad")
            raise AssertionError("bad JSON parsed")
        except ValueError:
            pass
        assert errno.errorcode[errno.ENOENT] == "ENOENT"
        packed = io.BytesIO()
        with deflate.DeflateIO(packed, deflate.ZLIB) as f:
            f.write(b"x" * 50)
        assert zlib.decompress(packed.getvalue()) == b"x" * 50
        assert deflate.DeflateIO(io.BytesIO(packed.getvalue())).read() == b"x" * 50
        packed = io.BytesIO()
        with deflate.DeflateIO(packed, deflate.ZLIB) as f:
            f.write(b"one\\ntwo\\n")
        z = zlib.DecompIO(io.BytesIO(packed.getvalue()))
        assert z.readline() == b"one\\n" and z.read(2) == b"tw" and z.read() == b"o\\n"
        d = deflate.DeflateIO(io.BytesIO(packed.getvalue()), deflate.ZLIB)
        buf = bytearray(5)
        assert d.readinto(buf) == 5 and buf == b"one\\nt" and d.readline() == b"wo\\n"
        assert asyncio.run(asyncio.wait_for_ms(asyncio.sleep_ms(1), 1000)) is None
        # peripherals
        fb = framebuf.FrameBuffer(bytearray(32), 16, 16, framebuf.MONO_HLSB)
        fb.line(0, 0, 15, 15, 1)
        assert fb.pixel(3, 3) == 1 and fb.pixel(3, 4) == 0
        @rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
        def blink():
            wrap_target()
            set(pins, 1) [31]
            set(pins, 0) [31]
            wrap()
        assert blink["instructions"][1] == "set pins 1 [31]"
        rp2.StateMachine(0, blink, freq=2000, set_base=machine.Pin(25)).active(1)
        assert esp.flash_size() > 0 and 30 < esp32.mcu_temperature() < 70
        ble = bluetooth.BLE()
        ble.active(True)
        ((h1,),) = ble.gatts_register_services(
            ((bluetooth.UUID(0x181A), ((bluetooth.UUID(0x2A6E), bluetooth.FLAG_READ),)),))
        ble.gatts_write(h1, b"\\x01")
        assert ble.gatts_read(h1) == b"\\x01"
        ntptime.settime()
        assert abs(ntptime.time() - time.time()) < 5
        os.mount(os.VfsFat(machine.SDCard(slot=2)), "/sd")
        with open("sd/log.txt", "w") as f:
            f.write("logged")
        assert open("sd/log.txt").read() == "logged" and "log.txt" in os.listdir("sd")
        assert machine.I2S(0, mode=machine.I2S.TX).write(bytearray(64)) == 64
        wlan = network.WLAN(network.STA_IF)
        wlan.config(pm=network.WLAN.PM_NONE)
        assert wlan.config("pm") == network.WLAN.PM_NONE
        print("MODULES-OK")
        """,
    )
    rc, out, err = run_runner(run_py, script)
    assert rc == 0, err
    assert "MODULES-OK" in out


def test_sensors_read_plausible_slowly_varying_values(tmp_path, run_py):
    script = write(
        tmp_path,
        "sensors.py",
        """
        import dht, ds18x20, machine, neopixel, onewire, time
        d = dht.DHT22(machine.Pin(4))
        d.measure()
        t1, h1 = d.temperature(), d.humidity()
        time.sleep_ms(200)
        d.measure()
        t2, h2 = d.temperature(), d.humidity()
        assert 15 < t1 < 30 and 20 < h1 < 80, (t1, h1)
        assert abs(t2 - t1) < 0.5 and abs(h2 - h1) < 1, (t1, t2, h1, h2)
        assert round(t1, 1) == t1
        small = dht.DHT11(machine.Pin(5))
        small.measure()
        assert isinstance(small.temperature(), int) and isinstance(small.humidity(), int)
        ow = onewire.OneWire(machine.Pin(12))
        sensor = ds18x20.DS18X20(ow)
        roms = sensor.scan()
        assert len(roms) == 1 and roms[0][0] == 0x28 and onewire.crc8(roms[0]) == 0
        sensor.convert_temp()
        time.sleep_ms(750)
        c = sensor.read_temp(roms[0])
        assert 15 < c < 30 and c * 16 == int(c * 16), c
        np = neopixel.NeoPixel(machine.Pin(13), 2)
        np[1] = (0, 0, 255)
        assert np[1] == (0, 0, 255) and np.buf == bytearray([0, 0, 0, 0, 0, 255])
        np.write()
        button = machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP)
        assert button.value() == 1
        print("SENSORS-OK")
        """,
    )
    rc, out, err = run_runner(run_py, script)
    assert rc == 0, err
    assert "SENSORS-OK" in out
    assert "[neopixel] NeoPixel(13) write [(0, 0, 0), (0, 0, 255)]" in err


def test_board_module_without_stand_in_is_named(tmp_path, run_py):
    script = write(tmp_path, "pyb_user.py", "import pyb\n")
    rc, out, err = run_runner(run_py, script)
    assert rc == 1
    assert "No module named 'pyb'" in err
    assert "a board module the host runner does not provide" in err
    assert "next to the script" in err
    script = write(tmp_path, "driver_user.py", "import ssd1306\n")
    rc, out, err = run_runner(run_py, script)
    assert rc == 1
    assert "hint: 'ssd1306' is neither a board built-in" in err, err
    # a driver next to the script is found, and gets the board's modules too
    write(tmp_path, "ssd1306.py", "import time\nSECONDS = type(time.time()).__name__\n")
    script = write(tmp_path, "driver_user2.py", "import ssd1306\nprint(ssd1306.SECONDS)\n")
    rc, out, err = run_runner(run_py, script)
    assert (rc, out.strip()) == (0, "int"), err


def test_gc_shows_the_boards_heap(tmp_path, run_py):
    script = write(
        tmp_path,
        "heap.py",
        """
        import gc, sys
        gc.collect()
        print(sys.platform, gc.mem_free() + gc.mem_alloc(), gc.mem_free() > gc.mem_alloc())
        """,
    )
    rc, out, err = run_runner(run_py, script, "--board", "esp8266")
    assert rc == 0, err
    platform, total, more_free = out.split()
    assert platform == "esp8266" and abs(int(total) - 37952) < 512 and more_free == "True"
    rc, out, err = run_runner(run_py, script, "--board", "picow", "--heap", "200000")
    assert rc == 0, err
    platform, total, _ = out.split()
    assert platform == "rp2" and abs(int(total) - 200_000) < 512


UMQTT_SCRIPT = """
import json, machine, time, ubinascii
from umqtt.simple import MQTTClient

CLIENT_ID = ubinascii.hexlify(machine.unique_id())
client = MQTTClient(CLIENT_ID, "YOUR_THINGSBOARD_HOST", port=1883, user="YOUR_TOKEN",
                    password="", keepalive=60)
replied = []

def on_message(topic, msg):
    request_id = topic.decode().rsplit("/", 1)[1]
    body = json.loads(msg)
    print("RPC", body["method"], body["params"])
    client.publish("v1/devices/me/rpc/response/" + request_id,
                   json.dumps({"echo": body["params"]}), qos=1)
    replied.append(request_id)

client.set_callback(on_message)
assert client.connect() == 0
client.subscribe(b"v1/devices/me/rpc/request/+", qos=1)
client.publish(b"v1/devices/me/telemetry", json.dumps({"temperature": 21.5}))
client.publish("v1/devices/me/attributes", b'{"fw": "v1.0"}', qos=1)
print("READY")
while not replied:
    client.wait_msg()
client.publish("v1/devices/me/telemetry", json.dumps({"done": True}), qos=1)
client.disconnect()
"""


def test_umqtt_simple_script_against_the_devserver(tmp_path, run_py, tb_devserver):
    token = tb_devserver.add_device("umqtt-device")
    script = write(tmp_path, "umqtt_device.py", UMQTT_SCRIPT)
    proc = spawn_runner(run_py, script, *server_args(tb_devserver, token))
    run_py.read_until(proc, "READY", timeout=30)
    call = tb_devserver.start_rpc("umqtt-device", "setLed", {"on": True}, expiry=20)
    done = tb_devserver.wait_for(lambda: call.poll()[0] and call, 20, "the RPC reply")
    assert done.poll() == (True, {"echo": {"on": True}})
    out, err = run_py.finish(proc, timeout=30)
    assert proc.returncode == 0, err
    assert "RPC setLed {'on': True}" in out
    assert tb_devserver.latest_telemetry("umqtt-device") == {"temperature": 21.5, "done": True}
    assert tb_devserver.client_attributes("umqtt-device") == {"fw": "v1.0"}
    kinds = [(e.kind, e.reason) for e in tb_devserver.connection_events("umqtt-device")]
    assert kinds[-1] == ("disconnected", "client DISCONNECT"), kinds


def test_umqtt_refusal_raises_mqttexception(tmp_path, run_py, tb_devserver):
    tb_devserver.add_device("known", "GOOD")
    script = write(
        tmp_path,
        "refused.py",
        """
        from umqtt.simple import MQTTClient, MQTTException
        try:
            MQTTClient("c1", "H", user="WRONG", password="").connect()
        except MQTTException as exc:
            print("refused", exc.args[0])
        """,
    )
    rc, out, err = run_runner(run_py, script, "--server", f"127.0.0.1:{tb_devserver.port}")
    assert rc == 0, err
    assert out.strip() in ("refused 4", "refused 5")


def test_umqtt_devserver_option_registers_the_user_token(tmp_path, run_py):
    script = write(
        tmp_path,
        "umqtt_dev.py",
        """
        from umqtt.simple import MQTTClient
        c = MQTTClient("c2", "YOUR_HOST", user="UMQTT_TOKEN", password="")
        c.connect()
        c.publish("v1/devices/me/telemetry", '{"x": 5}', qos=1)
        c.disconnect()
        """,
    )
    rc, out, err = run_runner(run_py, script, "--devserver")
    assert rc == 0, err
    assert "access token 'UMQTT_TOKEN'" in err
    assert "telemetry (latest): {'x': 5}" in err


def test_umqtt_robust_reconnects_after_a_broker_restart(tmp_path, run_py, restartable_broker):
    script = write(
        tmp_path,
        "robust.py",
        """
        from umqtt.robust import MQTTClient

        class Client(MQTTClient):
            DELAY = 0.2

            def reconnect(self):
                result = super().reconnect()
                print("RECONNECTED", flush=True)
                return result

        got = []
        c = Client("robust-1", "127.0.0.1", port=int(__import__("sys").argv[1]))
        c.set_callback(lambda topic, msg: got.append(msg) or print("GOT", msg.decode()))
        c.connect(clean_session=False)
        c.subscribe("cmd/robust", qos=1)
        print("READY", flush=True)
        while b"stop" not in got:
            c.wait_msg()
        c.disconnect()
        """,
    )
    port = str(restartable_broker.port)
    proc = spawn_runner(run_py, script, "--", port)
    run_py.read_until(proc, "READY", timeout=30)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="robust-pub")
    pub.connect("127.0.0.1", restartable_broker.port)
    pub.loop_start()
    pub.publish("cmd/robust", "first", qos=1).wait_for_publish(10)
    run_py.read_until(proc, "GOT first", timeout=30)
    pub.loop_stop()
    pub.disconnect()
    restartable_broker.stop()
    restartable_broker.start()
    run_py.read_until(proc, "RECONNECTED", timeout=30)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="robust-pub2")
    pub.connect("127.0.0.1", restartable_broker.port)
    pub.loop_start()
    pub.publish("cmd/robust", "stop", qos=1).wait_for_publish(10)
    out, err = run_py.finish(proc, timeout=30)
    pub.loop_stop()
    pub.disconnect()
    assert proc.returncode == 0, err
    assert "GOT stop" in out


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):  # noqa: N802
        self._answer(None)

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(body)

    def _answer(self, body):
        self.requests.append((self.command, self.path, dict(self.headers), body))
        data = json.dumps({"path": self.path, "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_urequests_does_real_http(tmp_path, run_py):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    _Recorder.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = write(
            tmp_path,
            "http_device.py",
            """
            import sys, urequests
            base = sys.argv[1]
            r = urequests.get(base + "/api/v1/TOKEN/attributes?sharedKeys=x")
            print(r.status_code, r.json()["path"])
            r.close()
            r = urequests.post(base + "/api/v1/TOKEN/telemetry", json={"t": 21.5},
                               headers={"X-Test": "1"})
            print(r.status_code, r.reason, r.text)
            """,
        )
        base = f"http://127.0.0.1:{server.server_address[1]}"
        rc, out, err = run_runner(run_py, script, "--", base)
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "200 /api/v1/TOKEN/attributes?sharedKeys=x"
    assert lines[1].startswith("200 b'OK'")
    method, path, headers, body = _Recorder.requests[1]
    assert (method, path, json.loads(body)) == ("POST", "/api/v1/TOKEN/telemetry", {"t": 21.5})
    assert headers["Content-Type"] == "application/json" and headers["X-Test"] == "1"


# ---- board inputs from outside (--scenario) and outputs (--outputs) ------------------------


def test_scenario_drives_inputs_and_outputs_file_shows_outputs(tmp_path, run_py):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps(
            {
                "board": "esp32",
                "steps": [
                    {"at": 0, "adc": {"34": 41000}, "dht": {"temperature": 27.5, "humidity": 61}},
                    {"at": 0.2, "pins": {"4": 0}},
                    {"at": 0.4, "pins": {"4": 1}},
                ],
            }
        )
    )
    script = write(
        tmp_path,
        "board.py",
        """
        import dht, machine, neopixel, time
        edges = []
        button = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
        button.irq(lambda p: edges.append(p.value()),
                   machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
        deadline = time.ticks_add(time.ticks_ms(), 20000)
        while len(edges) < 2 and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            time.sleep_ms(10)
        print("edges", edges)
        print("adc", machine.ADC(machine.Pin(34)).read_u16())
        sensor = dht.DHT22(machine.Pin(15))
        sensor.measure()
        print("dht", sensor.temperature(), sensor.humidity())
        machine.Pin(2, machine.Pin.OUT).on()
        machine.PWM(machine.Pin(5), freq=1000, duty_u16=16384)
        strip = neopixel.NeoPixel(machine.Pin(13), 2)
        strip.fill((10, 20, 30))
        strip.write()
        """,
    )
    outputs = tmp_path / "outputs.jsonl"
    rc, out, err = run_runner(
        run_py, script, "--scenario", str(scenario), "--outputs", str(outputs)
    )
    assert rc == 0, err
    assert out.splitlines() == ["edges [0, 1]", "adc 41000", "dht 27.5 61.0"]
    events = [json.loads(line) for line in outputs.read_text().splitlines()]
    shown = [(e["kind"], e["id"], e["value"]) for e in events]
    assert ("pin", "2", 1) in shown
    assert ("pwm", "5", {"freq": 1000, "duty_u16": 16384, "on": True}) in shown
    assert shown[-1] == ("neopixel", "13", [[10, 20, 30], [10, 20, 30]])
    assert all(e["t"] >= 0 for e in events)


def test_scenario_lines_from_stdin_apply_as_they_arrive(tmp_path, run_py):
    import subprocess
    import sys

    script = write(
        tmp_path,
        "live.py",
        """
        import machine, time
        door = machine.Pin(5, machine.Pin.IN)
        print("READY", door.value(), flush=True)
        while door.value() == 0:
            time.sleep_ms(10)
        print("door open, ds18x20 count", __import__("onewire").OneWire(machine.Pin(9)).scan())
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "thingsboard_sdk", "run", str(script), "--scenario", "-"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    run_py.procs.append(proc)
    assert run_py.read_until(proc, "READY", timeout=30)[-1].strip() == "READY 0"
    assert proc.stdin is not None
    proc.stdin.write(b'{"ds18x20": {"count": 0}}\n{"pins": {"5": 1}}\n')
    proc.stdin.flush()
    out, err = run_py.finish(proc, timeout=30)
    assert proc.returncode == 0, err
    assert "door open, ds18x20 count []" in out


def test_bad_scenario_is_a_usage_error(tmp_path, run_py):
    scenario = tmp_path / "bad.json"
    scenario.write_text('[{"at": 1, "pinz": {"4": 1}}]')
    script = write(tmp_path, "noop.py", "print('never')\n")
    rc, out, err = run_runner(run_py, script, "--scenario", str(scenario))
    assert rc == 2 and out == ""
    assert "--scenario: step 1: scenario: unknown input 'pinz'" in err, err


def test_machine_reset_restarts_the_script_with_restart_on_reset(tmp_path, run_py):
    script = write(
        tmp_path,
        "reboots.py",
        """
        import machine
        cause = machine.reset_cause()
        print("boot", cause)
        if cause == machine.PWRON_RESET:
            machine.reset()
        if cause == machine.HARD_RESET:
            machine.deepsleep(10)
        print("woke from deep sleep", cause == machine.DEEPSLEEP_RESET)
        """,
    )
    rc, out, err = run_runner(run_py, script, "--restart-on-reset")
    assert rc == 0, err
    assert out.splitlines() == ["boot 1", "boot 2", "boot 4", "woke from deep sleep True"]
    assert "machine.reset(): restarting the script (boot 2)" in err
    assert "machine.deepsleep(10): sleeping 10 ms, then the board restarts" in err


def test_board_panel_on_the_devservers_page(tmp_path, run_py):
    """With --devserver, the board shows as server attributes of the script's device (what
    the dev server's page shows and edits); editing an in.* attribute drives the input."""
    import re

    from conftest import wait_until
    from thingsboard_sdk._restcli import Rest

    script = write(
        tmp_path,
        "panel.py",
        """
        import machine, neopixel, time
        from tb_device_mqtt import TBDeviceMqttClient
        client = TBDeviceMqttClient("YOUR_HOST", port=1883, access_token="PANEL_TOKEN")
        client.connect()
        machine.Pin(2, machine.Pin.OUT).on()
        machine.PWM(machine.Pin(5), freq=1000, duty_u16=16384)
        strip = neopixel.NeoPixel(machine.Pin(13), 2)
        strip.fill((1, 2, 3))
        strip.write()
        door = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
        print("READY", door.value(), flush=True)
        while door.value() == 1:
            time.sleep_ms(20)
        print("door closed")
        client.disconnect()
        """,
    )
    proc = spawn_runner(run_py, script, "--devserver", "--http-port", "0")
    banner = "".join(run_py.read_until(proc, "web page and REST API:", stderr=True))
    url = re.search(r"web page and REST API: (http://127\.0\.0\.1:\d+)", banner).group(1)
    run_py.read_until(proc, "READY 1", timeout=30)
    rest = Rest(url, "tenant@thingsboard.org", "tenant")
    device_id = rest.device_id("panel")
    path = f"/api/plugins/telemetry/DEVICE/{device_id}"

    def server_attributes() -> dict:
        rows = rest.call("GET", f"{path}/values/attributes/SERVER_SCOPE")
        return {row["key"]: row["value"] for row in rows}

    expected = {
        "out.pin.2": 1,
        "out.pwm.5": {"freq": 1000, "duty_u16": 16384, "on": True},
        "out.neopixel.13": [[1, 2, 3], [1, 2, 3]],
        "in.pin.4": 1,
    }
    wait_until(lambda: server_attributes() == expected, 30, "the board's attributes")
    rest.call("POST", f"{path}/SERVER_SCOPE", {"in.pin.4": 0})
    out, err = run_py.finish(proc, timeout=30)
    assert proc.returncode == 0, err
    assert "door closed" in out
    assert "[panel] board panel: in.pin.4 = 0" in err
