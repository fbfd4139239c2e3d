"""Fault benchmark: what each client loses and how soon traffic flows again after link faults.

    python benches/faults.py                     # ours, paho, tb; default keepalive and 5 s
    python benches/faults.py --only ours --keepalives default

One device sends QoS 1 telemetry ``{"seq": n, "ts": ...}`` at 20 msg/s for 22 s through a TCP
proxy on 127.0.0.1 (``thingsboard_sdk._faultproxy``, the tests' proxy) to a private mosquitto
with persistence; a durable subscriber (clean session off, QoS 1) reads straight from the
broker. Faults, in seconds from the first send: 3 the proxy resets the connection; 7 it cuts a
packet in the middle; 11 it silently discards everything for 4 s (``--silent``), then resets;
17 mosquitto gets SIGTERM and is started again 1.5 s later. Each client runs in its own
process and venv (``benches/run.py``'s helpers), one after the other, in the same invocation.

Per client and keepalive: messages sent (accepted by the client's API), lost (accepted, never
received), duplicates, and per fault the recovery: from the moment the path is back to the
subscriber's receipt of the first message the client sent at or after that moment (so it
includes up to one send interval, 50 ms). See benches/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import _mqtt
import run  # benches/run.py: venvs, the ours build, machine info

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOPIC = b"v1/devices/me/telemetry"
KINDS = ["ours", "paho", "tb"]
LABELS = {"ours": "thingsboard_sdk", "paho": "paho-mqtt", "tb": "tb-mqtt-client"}
DEFAULT_KEEPALIVE = {"ours": 120, "paho": 60, "tb": 120}  # each client's API default
FAULTS = ["reset", "cut", "silent", "restart"]
SEQ_RE = re.compile(rb'"seq"\s*:\s*(\d+)')
TS_RE = re.compile(rb'"ts"\s*:\s*([0-9.eE+-]+)')


def load_proxy():
    """The fault proxy, loaded from its file: the bench runs without the engine built."""
    path = REPO / "python" / "thingsboard_sdk" / "_faultproxy.py"
    spec = importlib.util.spec_from_file_location("_faultproxy", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.FaultProxy


# ---------------------------------------------------------------- broker


class Broker:
    """mosquitto with persistence on a fixed free port of 127.0.0.1; stop()/start() it."""

    def __init__(self, workdir: Path) -> None:
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.exe).exists():
            raise SystemExit("mosquitto not found: apt-get install mosquitto")
        self.port = run.free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "set_tcp_nodelay true",
                    "max_queued_messages 100000",
                    "persistence true",
                    f"persistence_location {workdir}/",
                    f"log_dest file {self.log}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    # mosquitto run as root drops to user "mosquitto", who cannot write here
                    f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Starts mosquitto; returns the monotonic time it first accepted a connection."""
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return time.monotonic()
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        raise SystemExit(f"mosquitto did not start on port {self.port}; see {self.log}")

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file), then waits for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------- durable subscriber


def _connect_packet(client_id: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session off (the session and its queue survive a drop)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x00" + struct.pack("!H", 0) + struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body


def _subscribe_packet() -> bytes:
    body = struct.pack("!H", 1) + struct.pack("!H", len(TOPIC)) + TOPIC + b"\x01"
    return bytes([0x82, len(body)]) + body


class Subscriber:
    """A durable QoS 1 subscriber on a thread; reconnects while the broker is away.

    ``arrivals`` holds ``(monotonic time of the read, seq, ts)`` for every PUBLISH received.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.port = port
        self.client_id = client_id
        self.arrivals: list[tuple[float, int, float]] = []
        self.unparsed = 0
        self.connects = 0
        self.subscribed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def seen(self) -> set[int]:
        with self._lock:
            return {s for _, s, _ in self.arrivals}

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except OSError:
                pass
            if not self._stop.is_set():
                time.sleep(0.02)

    def _session(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_connect_packet(self.client_id) + _subscribe_packet())
        sock.settimeout(0.5)
        buf = bytearray()
        try:
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                now = time.monotonic()
                buf += data
                packets, used = _mqtt.split_packets(buf)
                del buf[:used]
                acks = bytearray()
                for ptype, flags, body in packets:
                    if ptype == 2:
                        if len(body) < 2 or body[1] != 0:
                            raise OSError(f"subscriber refused: {body!r}")
                        self.connects += 1
                    elif ptype == 9:
                        self.subscribed.set()
                    elif ptype == 3:
                        self._publish(now, flags, body, acks)
                if acks:
                    sock.sendall(acks)
        finally:
            sock.close()

    def _publish(self, now: float, flags: int, body: bytes, acks: bytearray) -> None:
        tlen = struct.unpack("!H", body[:2])[0]
        pos = 2 + tlen
        if (flags >> 1) & 3:
            acks += b"\x40\x02" + body[pos : pos + 2]
            pos += 2
        payload = body[pos:]
        m, t = SEQ_RE.search(payload), TS_RE.search(payload)
        if not m or not t:
            self.unparsed += 1
            return
        with self._lock:
            self.arrivals.append((now, int(m.group(1)), float(t.group(1))))


# ---------------------------------------------------------------- one client


def fault_schedule(proxy, broker: Broker, start: float, silent: float, marks: dict, log):
    """Injects the faults at their times from ``start``; records when each path was back."""

    def at(t: float) -> None:
        left = start + t - time.monotonic()
        if left > 0:
            time.sleep(left)

    at(3.0)
    proxy.reset()
    marks["reset"] = time.monotonic()
    at(7.0)
    try:
        proxy.cut_mid_packet(timeout=3.0)
        marks["cut"] = time.monotonic()
    except AssertionError:
        log("cut: no client traffic to cut within 3 s")
    at(11.0)
    proxy.blackhole()
    time.sleep(silent)
    proxy.reset()
    marks["silent"] = proxy.restore()
    at(max(17.0, 11.0 + silent + 2.0))
    broker.stop()
    time.sleep(1.5)
    marks["restart"] = broker.start()


def run_client(kind: str, py: Path, keepalive: int, args, workdir: Path, FaultProxy) -> dict:
    tag = f"{kind}-ka{keepalive or 'default'}"
    logdir = workdir / tag
    logdir.mkdir()
    broker = Broker(logdir)
    broker.start()
    proxy = FaultProxy("127.0.0.1", broker.port)
    sub = Subscriber(broker.port, f"fault-sub-{tag}")
    row: dict = {"kind": kind, "keepalive": keepalive or DEFAULT_KEEPALIVE[kind]}
    proc = None
    try:
        if not sub.subscribed.wait(10):
            raise SystemExit("subscriber: no SUBACK within 10 s")
        cmd = [
            str(py),
            str(HERE / "fault_client.py"),
            "--kind",
            kind,
            "--port",
            str(proxy.port),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
            "--keepalive",
            str(keepalive),
            "--client-id",
            f"fault-dev-{tag}",
            "--drain",
            str(args.drain),
        ]
        errf = open(logdir / "client.stderr", "wb")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, cwd=HERE)
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        if not first.startswith("START "):
            raise RuntimeError(f"{kind}: did not start ({first.strip()!r}); see {logdir}")
        start = float(first.split()[1])
        marks: dict[str, float] = {}
        injector = threading.Thread(
            target=fault_schedule,
            args=(proxy, broker, start, args.silent, marks, run.log),
            daemon=True,
        )
        injector.start()
        out, _ = proc.communicate(timeout=args.seconds + args.silent + args.drain + 60)
        injector.join(30)
        result = run.read_result(out.decode())
        if result is None:
            raise RuntimeError(f"{kind}: no RESULT; see {logdir}")
        accepted = set(result["accepted"])
        deadline = time.monotonic() + args.linger
        while time.monotonic() < deadline and not accepted <= sub.seen():
            time.sleep(0.05)
        time.sleep(0.3)  # late duplicates
        with sub._lock:
            arrivals = list(sub.arrivals)
        counts: dict[int, int] = {}
        for _, seq, _ in arrivals:
            counts[seq] = counts.get(seq, 0) + 1
        recovery = {}
        for fault in FAULTS:
            back = marks.get(fault)
            after = [t for t, _, ts in arrivals if back is not None and ts >= back]
            recovery[fault] = (min(after) - back) if after else None
        row.update(
            sent=len(accepted),
            offered=int(args.rate * args.seconds),
            lost=len(accepted - set(counts)),
            lost_ranges=ranges(sorted(accepted - set(counts))),
            duplicates=sum(c - 1 for c in counts.values() if c > 1),
            recovery=recovery,
            refused=result["refused"],
            acked_by_client=result["acked_by_client"],
            worst_send_call=result["worst_send_call"],
            subscriber_unparsed=sub.unparsed,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        row["error"] = str(exc)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sub.stop()
        proxy.close()
        broker.stop()
    return row


# ---------------------------------------------------------------- report


def ranges(nums: list[int]) -> list[str]:
    """``[3, 4, 5, 9]`` -> ``["3-5", "9"]``: where the losses fell, for the JSON."""
    out: list[str] = []
    for n in nums:
        if out and int(out[-1].split("-")[-1]) == n - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return out


def table(rows: list[dict]) -> str:
    head = (
        "| client | keepalive | sent | lost | duplicates | reset | cut mid-packet "
        "| silent path, then reset | broker restart |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {LABELS[r['kind']]} | {r['keepalive']} s | {r['error']} |")
            continue
        rec = " | ".join(
            "n/a" if r["recovery"][f] is None else f"{r['recovery'][f]:.2f} s" for f in FAULTS
        )
        lines.append(
            f"| {LABELS[r['kind']]} | {r['keepalive']} s | {r['sent']} of {r['offered']} "
            f"| {r['lost']} | {r['duplicates']} | {rec} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", default=",".join(KINDS), help="comma list of: " + ",".join(KINDS))
    p.add_argument(
        "--keepalives",
        default="default,5",
        help="comma list: 'default' (each client's own) and/or seconds",
    )
    p.add_argument("--rate", type=float, default=20.0, help="messages a second")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="seconds of sending (default 22, longer by what --silent adds over 4)",
    )
    p.add_argument(
        "--silent",
        type=float,
        default=4.0,
        help="seconds the path stays silent (130: longer than every default keepalive)",
    )
    p.add_argument("--drain", type=float, default=30.0, help="client's wait for its acks, s")
    p.add_argument("--linger", type=float, default=10.0, help="subscriber's wait for the rest")
    p.add_argument(
        "--ours-python",
        default=os.environ.get("TB_BENCH_OURS_PYTHON"),
        help="interpreter with thingsboard_sdk installed (default: benches/.venvs/ours)",
    )
    p.add_argument("--rebuild-ours", action="store_true", help="rebuild benches/.venvs/ours")
    args = p.parse_args()
    if args.seconds is None:
        # The restart comes 2 s after the silent path ends; 3.5 s more of sending after it.
        args.seconds = 22.0 + max(0.0, args.silent - 4.0)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    if set(kinds) - set(KINDS):
        p.error(f"--only: unknown {sorted(set(kinds) - set(KINDS))}")
    keepalives = [0 if k.strip() == "default" else int(k) for k in args.keepalives.split(",")]

    info = run.machine_info()
    pythons: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for kind in kinds:
        if kind == "ours":
            py, why = run.ensure_ours(args.ours_python, args.rebuild_ours)
            if py is None:
                skipped[kind] = why or "?"
                continue
            pythons[kind] = py
        else:
            reqs, _ = run.VENV_SPECS[kind]
            pythons[kind] = run.ensure_venv(kind, reqs)
    FaultProxy = load_proxy()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = run.RESULTS / f"faults-logs-{stamp}"
    workdir.mkdir(parents=True)
    rows = []
    for keepalive in keepalives:
        for kind in kinds:
            if kind not in pythons:
                continue
            run.log(f"{kind}, keepalive {keepalive or 'default'}: {args.seconds:.0f} s of faults")
            row = run_client(kind, pythons[kind], keepalive, args, workdir, FaultProxy)
            run.log(json.dumps(row))
            rows.append(row)
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), load {info['loadavg_1m']:.2f}, "
        f"busy before {info['busy_before'] or 0:.0%}, {info['mosquitto']}"
    )
    for kind, why in skipped.items():
        print(f"{LABELS[kind]}: skipped ({why})")
    print(table(rows))
    out = run.RESULTS / f"faults-{stamp}.json"
    out.write_text(json.dumps({"machine": info, "args": vars(args), "rows": rows}, indent=1))
    print(f"JSON: {out}; logs: {workdir}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
