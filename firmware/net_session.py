#!/usr/bin/env python3
"""Runs the networked firmware under qemu against the dev server and checks both sides.

Usage: net_session.py ELF   (``firmware/run --net`` calls it after building ELF)

It starts :class:`thingsboard_sdk.devserver.DevServer` on a free port of 127.0.0.1, registers
the device, and boots qemu's ``lm3s6965evb`` with the Stellaris Ethernet on a user-mode
network that reaches nothing but that port (``restrict=on``; ``guestfwd`` maps
``10.0.2.100:1883`` to it). The access token goes to the firmware on its semihosting command
line. Then it plays ThingsBoard's side of ``src/net/scenario.rs``, step by step, acting when
the firmware's ``stage`` telemetry (or the data it stored) says the device is ready, and checks
what the server stored. Every wait has a deadline; qemu is killed if it outlives its own.

Exit status 0 only if every check here passed and the firmware exited 0 (its own checks).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

try:
    from thingsboard_sdk.devserver import DevServer
except ImportError as e:  # pragma: no cover - an environment problem, said plainly
    sys.exit(
        f"net_session.py: cannot import thingsboard_sdk ({e}); install the package first "
        "(`pip install .` or `maturin develop`)"
    )

DEVICE = "qemu-lm3s6965"
SUB1, SUB2, SUB2_TS = "qemu-sensor-1", "qemu-sensor-2", 1767225600000  # as in scenario.rs
FW_TITLE, FW_VERSION, FW_SIZE = "net-demo", "1.1.0", 5000  # as in src/net/scenario.rs
RPC_TIME = 1767225600000  # the scripted reply to the firmware's getCurrentTime
QEMU_LIMIT_S = 240.0  # the firmware's own deadline is 150 s of its clock
STEP_S = 60.0  # a bound per step, not a pause: steps end as soon as the data is there


def fw_byte(i: int) -> int:
    """Byte ``i`` of the image (``fw_byte`` in scenario.rs)."""
    return ((i * 2654435761) & 0xFFFFFFFF) >> 24


class Failed(Exception):
    """A check or a wait failed; the message says which."""


class Session:
    """qemu's process and output, and the checks made so far."""

    def __init__(self, server: DevServer, elf: str, token: str):
        self.server = server
        self.lines: list[str] = []
        self.passed = 0
        self.failed = 0
        # One relay process per guest connection (`cmd:`), not a `tcp:` chardev: a chardev is
        # one host connection opened when qemu starts, and slirp neither closes the guest's
        # socket when the server closes it nor opens a new host connection for the guest's
        # next one, so a reconnect could not happen.
        self.control = tempfile.mkdtemp(prefix="tb-net-")
        relay = f"{sys.executable} {os.path.abspath(__file__)} --relay {server.port} {self.control}"
        if "," in relay:
            raise Failed(f"qemu options cannot carry a comma: {relay!r}")
        fwd = f"guestfwd=tcp:10.0.2.100:1883-cmd:{relay}"
        cmd = [
            "qemu-system-arm",
            "-machine", "lm3s6965evb",
            "-cpu", "cortex-m3",
            "-nographic",
            "-monitor", "none",
            "-serial", "none",
            "-semihosting-config", f"enable=on,target=native,arg=tb-firmware-net,arg={token}",
            "-nic", f"user,model=stellaris,restrict=on,{fwd}",
            "-kernel", elf,
        ]  # fmt: skip
        print("net_session: " + " ".join(cmd).replace(token, "<token>"), flush=True)
        self.qemu = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # The run's hard bound, whatever hangs (qemu, the firmware, a wait here).
        self.watchdog = threading.Timer(QEMU_LIMIT_S, self.qemu.kill)
        self.watchdog.daemon = True
        self.watchdog.start()

    def _read(self) -> None:
        assert self.qemu.stdout is not None
        for line in self.qemu.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            print(f"  fw| {line}", flush=True)

    def check(self, what: str, got: Any, want: Any) -> None:
        if got == want:
            self.passed += 1
        else:
            self.failed += 1
            print(f"net_session: FAIL {what}: got {got!r}, want {want!r}", flush=True)

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = STEP_S) -> Any:
        """Waits until ``predicate()`` is truthy, re-checking on every change to the store.

        Raises:
            Failed: qemu exited first, or ``timeout`` seconds passed.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.server.generation()
            value = predicate()
            if value:
                return value
            if self.qemu.poll() is not None:
                raise Failed(f"qemu exited ({self.qemu.returncode}) while waiting for {what}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{what}: not within {timeout:.0f} s")
            # Wakes on the next store change; the short slice only re-checks qemu's exit.
            self.server.wait_for_change(seen, min(left, 0.5))

    def fault(self, sig: signal.Signals) -> None:
        """Has the relay of the current guest connection inject a fault (see `relay`)."""
        with open(os.path.join(self.control, "relay.pid")) as f:
            os.kill(int(f.read()), sig)

    def disconnects(self) -> int:
        return sum(e.kind == "disconnected" for e in self.server.connection_events(DEVICE))

    def stage(self, name: str) -> bool:
        return self.server.latest_telemetry(DEVICE).get("stage") == name

    def finish(self) -> int:
        try:
            rc = self.qemu.wait(timeout=STEP_S)
        except subprocess.TimeoutExpired:
            self.qemu.kill()
            rc = self.qemu.wait()
            print("net_session: FAIL qemu did not exit after the session", flush=True)
            self.failed += 1
        self.watchdog.cancel()
        self.reader.join(timeout=5)
        shutil.rmtree(self.control, ignore_errors=True)
        self.check("firmware exit status", rc, 0)
        self.check("firmware said PASS", "PASS" in self.lines, True)
        return rc


def run(server: DevServer, s: Session, log: Any) -> None:
    dev = DEVICE
    # 1-2. Connect with the token and the four subscriptions; what was queued at boot.
    s.wait(lambda: s.server.is_connected(dev), "the device's MQTT session", timeout=90)
    s.wait(lambda: s.stage("ready"), "stage ready (SUBACK, attribute and RPC responses)")
    connected = [e for e in server.connection_events(dev) if e.kind == "connected"]
    s.check("CONNECT protocol", connected[0].version, "3.1.1")
    s.check("CONNECT client id", connected[0].client_id, "qemu-lm3s6965")
    latest = server.latest_telemetry(dev, typed=True)
    s.check(
        "telemetry types",
        {k: (p.type, p.value) for k, p in latest.items() if k != "stage"},
        {
            "temperature": ("DOUBLE", 25.5),
            "humidity": ("LONG", 60),
            "active": ("BOOLEAN", True),
            "label": ("STRING", "qemu"),
        },
    )
    s.check(
        "client attribute types",
        server.client_attributes(dev, typed=True),
        {
            "model": ("STRING", "lm3s6965"),
            "flash_kib": ("LONG", 256),
            "ratio": ("DOUBLE", 0.25),
            "debug": ("BOOLEAN", False),
            "limits": ("JSON", {"min": 1, "max": 9}),
        },
    )
    calls = server.client_rpc_requests(dev)
    s.check(
        "client RPC stored and answered",
        [(c.method, c.params, c.reply) for c in calls],
        [("getCurrentTime", {}, {"time": RPC_TIME})],
    )

    # 3. Shared-attribute push.
    server.set_shared_attributes(dev, {"targetTemp": 23.5})
    applied = s.wait(
        lambda: server.client_attributes(dev, typed=True).get("applied_targetTemp"),
        "applied_targetTemp",
    )
    s.check("applied_targetTemp", applied, ("DOUBLE", 23.5))

    # 4. Server-side RPC.
    reply = server.send_rpc(dev, "setLed", {"on": True}, timeout=STEP_S)
    s.check("server RPC reply", reply, {"led": True})
    s.check(
        "server RPC record",
        [(r.method, r.status, r.reply) for r in server.rpc_records(dev)],
        [("setLed", "SUCCESSFUL", {"led": True})],
    )

    # 5. The device is a gateway: two sub-devices, created on first use, with their data.
    s.wait(lambda: s.stage("gateway"), "stage gateway (sub-devices and their data)")
    s.check("sub-devices created", {SUB1, SUB2} <= set(server.devices()), True)
    s.check("sub-devices connected", [server.is_connected(d) for d in (SUB1, SUB2)], [True] * 2)
    s.check(
        "sub-device telemetry",
        {k: (p.type, p.value) for k, p in server.latest_telemetry(SUB1, typed=True).items()},
        {"temp": ("DOUBLE", 21.25), "ok": ("BOOLEAN", True)},
    )
    s.check(
        "sub-device telemetry with ts",
        [(p.ts, p.value) for p in server.telemetry(SUB2, "level")],
        [(SUB2_TS, 3)],
    )
    s.check(
        "sub-device client attributes",
        server.client_attributes(SUB1, typed=True),
        {"model": ("STRING", "s-1"), "channels": ("LONG", 2)},
    )
    s.check(
        "sub-device claim",
        [(c.secret_key, c.duration_ms) for c in server.claims(SUB1)],
        [("qemu-secret", 60000)],
    )
    s.check(
        "sub-device data not stored on the gateway", "temp" in server.latest_telemetry(dev), False
    )
    server.set_shared_attributes(SUB1, {"setpoint": 65})
    applied = s.wait(
        lambda: server.client_attributes(SUB1, typed=True).get("applied_setpoint"),
        "SUB1's applied_setpoint",
    )
    s.check("sub-device applied_setpoint", applied, ("LONG", 65))
    reply = server.send_rpc(SUB1, "getLevel", {"unit": "%"}, timeout=STEP_S)
    s.check("sub-device RPC reply", reply, {"level": 3})
    s.check(
        "sub-device RPC record",
        [(r.method, r.status, r.reply) for r in server.rpc_records(SUB1)],
        [("getLevel", "SUCCESSFUL", {"level": 3})],
    )
    s.wait(lambda: not server.is_connected(SUB2), "SUB2 disconnected by the gateway")
    s.check("SUB1 still connected", server.is_connected(SUB1), True)

    # 6. Firmware update over the link, the link cut in the middle of the first chunk.
    image = bytes(fw_byte(i) for i in range(FW_SIZE))
    s.fault(CUT)
    checksum = server.set_firmware(dev, image, FW_TITLE, FW_VERSION, "SHA256")
    s.wait(
        lambda: server.latest_telemetry(dev).get("fw_state") == "UPDATED",
        "fw_state UPDATED",
        timeout=90,
    )
    s.check(
        "fw_state sequence",
        [p.value for p in server.telemetry(dev, "fw_state")],
        ["INITIATED", "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATED"],
    )
    latest = server.latest_telemetry(dev)
    s.check(
        "current firmware reported",
        (latest.get("current_fw_title"), latest.get("current_fw_version")),
        (FW_TITLE, FW_VERSION),
    )
    s.check("checksum the server offered", len(checksum), 64)
    s.check("connections lost during the download (the cut)", s.disconnects(), 1)

    # 7. Drop the connection while two QoS 1 messages wait for PUBACKs the device will not read.
    s.wait(lambda: len(server.telemetry(dev, "resend")) >= 2, "both resend messages stored")
    s.check("server dropped the device", server.disconnect_device(dev), True)
    s.wait(lambda: s.stage("resent"), "stage resent after the reconnect", timeout=90)
    s.check(
        "resend values (stored, then stored again after the reconnect)",
        [p.value for p in server.telemetry(dev, "resend")],
        [1, 2, 1, 2],
    )

    # 8. A silent path: the firmware's keep alive must notice and reconnect.
    s.fault(SILENCE)
    s.wait(lambda: s.stage("done"), "stage done after the silent path", timeout=90)
    kinds = [e.kind for e in server.connection_events(dev)]
    s.check("connection events", kinds[:7], ["connected", "disconnected"] * 3 + ["connected"])
    # The gateway announced SUB1 again after each reconnect (the server logs each sub-device
    # session it opens); SUB2 stayed disconnected. The log line of the last one may come after
    # the `done` telemetry of the same connection was stored: read it as it comes.
    opened = {"created": 0, "connected": 0}
    deadline = time.monotonic() + STEP_S
    while opened["connected"] < 3 and (left := deadline - time.monotonic()) > 0:
        line = log.recv(timeout=left)
        if line is None:
            break
        for what in opened:
            opened[what] += f'sub-device "{SUB1}" {what}' in line
    s.check(
        "SUB1 created, then connected again by each reconnect's announcement",
        opened,
        {"created": 1, "connected": 3},
    )
    s.check("SUB1 connected at the end", server.is_connected(SUB1), True)
    s.check("SUB2 not announced again", server.is_connected(SUB2), False)


# Faults the relay injects on a signal from the session (see `relay`).
SILENCE = signal.SIGUSR1
CUT = signal.SIGUSR2


def relay(port: int, control: str) -> int:
    """Joins the guest connection slirp hands over (fds 0 and 1) to a new TCP connection to
    the dev server, byte for byte, until either side closes; exiting closes the other.

    It writes its pid to ``control/relay.pid`` once its handlers are in place, and then obeys
    two signals: ``SILENCE`` (SIGUSR1) forwards nothing more either way while both connections
    stay open (a silent path); ``CUT`` (SIGUSR2) delivers half of the next server write of at
    least 512 bytes (a firmware chunk) to the guest and closes both connections (a reset in the
    middle of a packet).
    """
    # fd 2 is the guest's connection too: nothing may be printed.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    mode = {"silent": False, "cut": False}
    signal.signal(SILENCE, lambda *_: mode.update(silent=True))
    signal.signal(CUT, lambda *_: mode.update(cut=True))
    try:
        up = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return 1
    up.settimeout(None)
    tmp = os.path.join(control, f"relay.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, os.path.join(control, "relay.pid"))

    def to_guest(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]

    while True:
        ready, _, _ = select.select([0, up], [], [])
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                return 0
            if not mode["silent"]:
                up.sendall(data)
        if up in ready:
            data = up.recv(65536)
            if not data:
                return 0
            if mode["silent"]:
                continue
            if mode["cut"] and len(data) >= 512:
                to_guest(data[: len(data) // 2])
                return 0
            to_guest(data)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--relay":
        return relay(int(sys.argv[2]), sys.argv[3])
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with DevServer() as server:
        token = server.add_device(DEVICE, gateway=True)
        assert token is not None
        server.set_shared_attributes(DEVICE, {"targetTemp": 21.5})
        server.set_client_rpc_reply("getCurrentTime", {"time": RPC_TIME})
        print(f"net_session: dev server on 127.0.0.1:{server.port}", flush=True)
        log = server.log_stream()
        s = Session(server, sys.argv[1], token)
        try:
            run(server, s, log)
        except Failed as e:
            s.failed += 1
            print(f"net_session: FAIL {e}", flush=True)
            if s.qemu.poll() is None:
                s.qemu.kill()
        except BaseException:
            s.qemu.kill()
            raise
        s.finish()
    print(f"net_session: server side {s.passed} passed, {s.failed} failed", flush=True)
    return 0 if s.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
