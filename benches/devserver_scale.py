"""The dev server at scale (issue 4): many concurrent devices, and one device against mosquitto.

One command::

    python benches/devserver_scale.py                      # 10,000 devices for 30 s, then part 2
    python benches/devserver_scale.py --devices 1000 --duration 10 --single-messages 20000

Part 1. A dev server process (``thingsboard_sdk.devserver.DevServer``, the Python API, in its own
process, no log stream) with ``--devices`` devices registered; a separate client process
(asyncio protocols on raw sockets, standard library only) opens that many MQTT 3.1.1
connections, at most ``--concurrency`` CONNECTs in progress, then every device sends one QoS 1
telemetry message per second for ``--duration`` seconds (device i at offset i/N within each
second) and the client counts PUBACKs. Measured: connect rate, sustained acknowledged msgs/s,
the server's RSS (``/proc/<pid>/status`` VmRSS) and CPU (``utime+stime`` from
``/proc/<pid>/stat``, as a share of one core), and the machine's other CPU load meanwhile.

Part 2. One device, ``--single-messages`` QoS 1 messages with a window of ``--window``
(``benches/send_raw.py``, pre-encoded packets) into a fresh dev server and into a private
mosquitto, alternating, ``--repeat`` times each; the median msgs/s of each is reported.

With ``--data`` the dev server keeps its store in a SQLite database (``DevServer(data=...)``, a
fresh folder under ``benches/results/``); after part 1 the runner starts a server on that folder
and counts the telemetry points it loads, so a lost message shows as a difference.

Server and clients are separate processes, each with its soft open-files limit raised to the
hard one. Output: progress on stderr, a markdown summary on stdout, JSON in
``benches/results/devserver-scale-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _mqtt  # noqa: E402
from run import Broker  # noqa: E402

TOPIC = b"v1/devices/me/telemetry"
TOKEN = "scale-{}"
SINGLE_TOKEN = "bench-token"  # send_raw.py's default


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---- /proc readings -----------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (all cores; /proc/stat)."""
    parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    v = [int(x) for x in parts]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Sample:
    """Server CPU, RSS and the machine's busy time at one moment."""

    def __init__(self, pid: int, others: tuple[int, ...] = ()) -> None:
        self.t = time.monotonic()
        self.cpu = proc_cpu_s(pid)
        self.rss = proc_rss_mb(pid)
        self.machine = machine_busy_s()
        self.others = sum(proc_cpu_s(p) for p in others)


def cpu_share(a: Sample, b: Sample) -> float:
    return (b.cpu - a.cpu) / max(1e-9, b.t - a.t)


class PeakRss(threading.Thread):
    """Polls a process's RSS every 0.2 s and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop_ev.wait(0.2):
            try:
                self.peak = max(self.peak, proc_rss_mb(self.pid))
            except OSError:
                return


# ---- role: server -------------------------------------------------------------------------------


def role_server(args: argparse.Namespace) -> int:
    """A dev server with ``--devices`` devices; runs until stdin closes.

    Prints ``READY <port> <register_s> <http_port>`` once it listens."""
    raise_nofile()
    from thingsboard_sdk.devserver import DevServer

    options = {"worker_threads": args.worker_threads}
    if args.max_telemetry_per_device:
        options["max_telemetry_per_device"] = args.max_telemetry_per_device
    if args.data_dir:
        options["data"] = args.data_dir
    server = DevServer("127.0.0.1", 0, **options)
    t0 = time.monotonic()
    for i in range(args.devices):
        server.add_device(f"scale-device-{i}", TOKEN.format(i))
    server.add_device("bench-device", SINGLE_TOKEN)
    print(f"READY {server.port} {time.monotonic() - t0:.3f} {server.http_port}", flush=True)
    try:
        sys.stdin.read()  # the runner closes stdin to stop us
    except KeyboardInterrupt:
        pass
    points = sum(len(server.telemetry(f"scale-device-{i}")) for i in range(args.devices))
    server.stop()
    print(f"STORED {points}", flush=True)
    return 0


# ---- role: clients ------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.acked = 0
        self.sent = 0
        self.lost_connections = 0
        self.unexpected = 0
        # Seconds from each publish written to its PUBACK read (the client's own delay included).
        self.ack_latency: list[float] = []


class Device(asyncio.Protocol):
    """One raw MQTT connection: sends CONNECT, counts PUBACKs."""

    def __init__(self, i: int, stats: Stats, loop: asyncio.AbstractEventLoop) -> None:
        self.i = i
        self.stats = stats
        self.connack: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self.sent_at: dict[int, float] = {}  # packet id -> monotonic time of the publish
        body = struct.pack("!H", len(TOPIC)) + TOPIC
        self.payload = b'{"temperature":25.5,"humidity":60,"d":%d}' % i
        remaining = len(body) + 2 + len(self.payload)
        self.prefix = bytes([0x32]) + _mqtt.encode_remaining_length(remaining) + body

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.write(_mqtt.encode_connect(f"scale-{self.i}", TOKEN.format(self.i)))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        packets, used = _mqtt.split_packets(self.buf)
        del self.buf[:used]
        for ptype, _flags, body in packets:
            if ptype == _mqtt.PUBACK:
                self.stats.acked += 1
                t = self.sent_at.pop(struct.unpack("!H", body[:2])[0], None)
                if t is not None:
                    self.stats.ack_latency.append(time.monotonic() - t)
            elif ptype == _mqtt.CONNACK and not self.connack.done():
                if len(body) >= 2 and body[1] == 0:
                    self.connack.set_result(True)
                else:
                    self.connack.set_exception(ConnectionError(f"CONNACK {body!r}"))
            else:
                self.stats.unexpected += 1

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.closed = True
        self.stats.lost_connections += 1
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"closed before CONNACK: {exc}"))

    def publish(self, pid: int) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(self.prefix + struct.pack("!H", pid) + self.payload)
            self.sent_at[pid] = time.monotonic()
            self.stats.sent += 1


def emit(kind: str, **data) -> None:
    print(f"{kind} {json.dumps(data)}", flush=True)


async def clients_main(args: argparse.Namespace) -> dict:
    loop = asyncio.get_running_loop()
    stats = Stats()
    n = args.devices
    devices = [Device(i, stats, loop) for i in range(n)]
    sem = asyncio.Semaphore(args.concurrency)
    errors: list[str] = []

    async def open_one(d: Device) -> None:
        async with sem:
            try:
                await loop.create_connection(lambda: d, "127.0.0.1", args.port)
                await asyncio.wait_for(d.connack, args.connect_timeout)
            except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    emit("PHASE", name="connect_start")
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(d) for d in devices))
    connect_s = time.monotonic() - t0
    up = [d for d in devices if d.connack.done() and not d.connack.exception() and not d.closed]
    emit("PHASE", name="connected", connected=len(up), seconds=connect_s)
    log(f"clients: {len(up)}/{n} connected in {connect_s:.2f} s ({len(up) / connect_s:,.0f}/s)")

    # Steady phase: 100 slots a second; each slot publishes for the devices whose offset is in it.
    slots = 100
    per_slot = [up[k::slots] for k in range(slots)]
    emit("PHASE", name="send_start")
    start = time.monotonic()
    per_second: list[int] = []
    last_acked = 0
    for sec in range(int(args.duration)):
        pid = sec % 65535 + 1
        for k in range(slots):
            target = start + sec + k / slots
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            for d in per_slot[k]:
                d.publish(pid)
        per_second.append(stats.acked - last_acked)
        last_acked = stats.acked
    end_sending = start + int(args.duration)
    delay = end_sending - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    acked_in_window = stats.acked
    emit("PHASE", name="send_end")
    # Let the last second's acknowledgements arrive (bounded).
    deadline = time.monotonic() + 15
    while stats.acked < stats.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    last_ack_s = time.monotonic() - start
    dropped = stats.lost_connections
    for d in up:
        if d.transport is not None and not d.closed:
            d.transport.write(_mqtt.DISCONNECT_PACKET)
            d.transport.close()
    await asyncio.sleep(0.5)
    return {
        "devices": n,
        "connected": len(up),
        "connect_s": connect_s,
        "connect_errors": len(errors),
        "first_errors": errors[:5],
        "sent": stats.sent,
        "acked": stats.acked,
        "acked_in_window": acked_in_window,
        "window_s": float(int(args.duration)),
        "last_ack_s": last_ack_s,
        "per_second_acked": per_second,
        "dropped_connections": dropped,
        "unexpected_packets": stats.unexpected,
        "ack_latency_ms": latency_summary(stats.ack_latency),
    }


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Percentiles (ms) of the publish-to-PUBACK times."""
    if not seconds:
        return {}
    s = sorted(seconds)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return {
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "p999": pick(0.999),
        "max": s[-1] * 1000,
        "over_1s": sum(1 for x in s if x > 1.0),
    }


def role_clients(args: argparse.Namespace) -> int:
    limit = raise_nofile()
    if limit < args.devices + 50:
        log(f"clients: open-files limit {limit} is below {args.devices} connections")
    result = asyncio.run(clients_main(args))
    emit("RESULT", **result)
    return 0


# ---- the runner ---------------------------------------------------------------------------------


def spawn_role(role: str, args: argparse.Namespace, extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1
    )


def start_server(
    args: argparse.Namespace, devices: int, part: str
) -> tuple[subprocess.Popen, int, float, int]:
    extra = ["--devices", str(devices), "--worker-threads", str(args.worker_threads)]
    if args.max_telemetry_per_device:
        extra += ["--max-telemetry-per-device", str(args.max_telemetry_per_device)]
    if args.data_dir:
        extra += ["--data-dir", f"{args.data_dir}-part{part}"]
    proc = spawn_role("server", args, extra)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise SystemExit(f"dev server did not start: {line}")
    return proc, int(line[1]), float(line[2]), int(line[3])


def stop_server(proc: subprocess.Popen) -> int | None:
    stored = None
    try:
        out, _ = proc.communicate(timeout=120)  # closes stdin: the server stops
        for line in out.splitlines():
            if line.startswith("STORED "):
                stored = int(line.split()[1])
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return stored


class Watcher:
    """``--watch``: what the web page does while it shows the device list and one device: one
    event stream of the REST API (every device's ``device`` events, and ``scale-device-0``'s
    own events), read and counted in this process (standard library only)."""

    def __init__(self, http_port: int) -> None:
        import urllib.parse
        import urllib.request

        base = f"http://127.0.0.1:{http_port}"
        body = json.dumps({"username": "tenant@thingsboard.org", "password": "tenant"})
        req = urllib.request.Request(
            base + "/api/auth/login", body.encode(), {"Content-Type": "application/json"}
        )
        token = json.load(urllib.request.urlopen(req, timeout=30))["token"]
        q = urllib.parse.urlencode({"deviceName": "scale-device-0"})
        req = urllib.request.Request(
            f"{base}/api/tenant/device?{q}", headers={"X-Authorization": f"Bearer {token}"}
        )
        dev = json.load(urllib.request.urlopen(req, timeout=30))["id"]["id"]
        self.counts: dict[str, dict[str, int]] = {"page": {}}
        self.responses = []
        for name, extra in (("page", f"&deviceId={dev}"),):
            resp = urllib.request.urlopen(f"{base}/api/devserver/events?token={token}{extra}")
            self.responses.append(resp)
            threading.Thread(target=self._read, args=(resp, name), daemon=True).start()

    def _read(self, resp, name: str) -> None:
        counts = self.counts[name]
        try:
            for line in resp:
                if line.startswith(b"data:"):
                    kind = json.loads(line[5:])["type"]
                    counts[kind] = counts.get(kind, 0) + 1
        except (OSError, ValueError):
            pass

    def stop(self) -> dict[str, dict[str, int]]:
        for r in self.responses:
            r.close()
        return {k: dict(v) for k, v in self.counts.items()}


def part1(args: argparse.Namespace) -> dict:
    log(f"part 1: dev server with {args.devices} devices registered")
    server, port, register_s, http_port = start_server(args, args.devices, "1")
    watcher = Watcher(http_port) if args.watch else None
    pid = server.pid
    peak = PeakRss(pid)
    peak.start()
    idle = Sample(pid)
    log(
        f"dev server pid {pid} on 127.0.0.1:{port}: registered in {register_s:.3f} s, "
        f"RSS {idle.rss:.1f} MB"
    )
    clients = spawn_role(
        "clients",
        args,
        [
            "--port",
            str(port),
            "--devices",
            str(args.devices),
            "--duration",
            str(args.duration),
            "--concurrency",
            str(args.concurrency),
            "--connect-timeout",
            str(args.connect_timeout),
        ],
    )
    assert clients.stdout is not None
    marks: dict[str, Sample] = {}
    result: dict = {}
    phases: dict[str, dict] = {}
    for line in clients.stdout:
        kind, _, data = line.partition(" ")
        if kind == "PHASE":
            info = json.loads(data)
            marks[info["name"]] = Sample(pid, (clients.pid,))
            phases[info["name"]] = info
        elif kind == "RESULT":
            result = json.loads(data)
    clients.wait()
    watched = watcher.stop() if watcher else None
    after = Sample(pid)
    peak.stop_ev.set()
    threads = proc_threads(pid)
    stored = stop_server(server)
    if not result or "send_end" not in marks:
        raise SystemExit("the client process failed; see its output above")
    reloaded = count_reloaded(args) if args.data_dir else None
    s0, s1 = marks["send_start"], marks["send_end"]
    c0, c1 = marks["connect_start"], marks["connected"]
    wall = s1.t - s0.t
    server_cpu = s1.cpu - s0.cpu
    client_cpu = s1.others - s0.others
    machine = s1.machine - s0.machine
    return {
        "devices": args.devices,
        "register_s": register_s,
        "connected": result["connected"],
        "connect_s": result["connect_s"],
        "connect_rate": result["connected"] / max(1e-9, result["connect_s"]),
        "connect_errors": result["connect_errors"],
        "first_connect_errors": result["first_errors"],
        "connect_server_cpu_share": cpu_share(c0, c1),
        "sent": result["sent"],
        "acked": result["acked"],
        "sustained_msgs_s": result["acked_in_window"] / result["window_s"],
        "offered_msgs_s": result["connected"],
        "per_second_acked": result["per_second_acked"],
        "unacked_at_end": result["sent"] - result["acked"],
        "server_cpu_share": server_cpu / wall,
        "client_cpu_share": client_cpu / wall,
        "foreign_cpu_share": (machine - server_cpu - client_cpu) / wall,
        "rss_idle_mb": idle.rss,
        "rss_connected_mb": c1.rss,
        "rss_end_of_send_mb": s1.rss,
        "rss_peak_mb": max(peak.peak, s1.rss, c1.rss),
        "rss_after_close_mb": after.rss,
        "server_threads": threads,
        "stored_points": stored,
        "reloaded_points": reloaded,
        "unexpected_packets": result["unexpected_packets"],
        "ack_latency_ms": result["ack_latency_ms"],
        "watched_events": watched,
    }


def count_reloaded(args: argparse.Namespace) -> int:
    """Telemetry points a new dev server loads from part 1's data folder."""
    from thingsboard_sdk.devserver import DevServer

    t0 = time.monotonic()
    options = {}
    if args.max_telemetry_per_device:
        options["max_telemetry_per_device"] = args.max_telemetry_per_device
    with DevServer("127.0.0.1", 0, data=f"{args.data_dir}-part1", **options) as server:
        load_s = time.monotonic() - t0
        names = [n for n in server.devices() if n.startswith("scale-device-")]
        points = sum(len(server.telemetry(n)) for n in names)
    log(f"restart from the data folder: {len(names)} devices, {points} points in {load_s:.1f} s")
    return points


def send_raw(port: int, args: argparse.Namespace, pid: int) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "send_raw.py"),
        "--port",
        str(port),
        "--messages",
        str(args.single_messages),
        "--window",
        str(args.window),
        "--token",
        SINGLE_TOKEN,
        "--timeout",
        "120",
    ]
    before = proc_cpu_s(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    cpu = proc_cpu_s(pid) - before
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            return {
                "msgs_s": r["acked"] / r["elapsed_s"] if r["elapsed_s"] else 0.0,
                "acked": r["acked"],
                "failed": r["failed"],
                "server_cpu_s_per_10k": cpu / max(1, r["acked"]) * 10_000,
            }
    raise SystemExit(f"send_raw.py failed: {out.stdout}\n{out.stderr}")


def part2(args: argparse.Namespace, workdir: Path) -> dict:
    log(
        f"part 2: one device, {args.single_messages} QoS 1 messages, window {args.window}, "
        f"{args.repeat} runs each"
    )
    server, port, _, _ = start_server(args, 0, "2")
    # mosquitto's own default in-flight window (20), as a plain broker would have it.
    mosq = Broker(workdir, broker_inflight=20)
    runs: dict[str, list[dict]] = {"devserver": [], "mosquitto": []}
    try:
        for k in range(args.repeat):
            for name, p, pid in (
                ("devserver", port, server.pid),
                ("mosquitto", mosq.port, mosq.proc.pid),
            ):
                r = send_raw(p, args, pid)
                runs[name].append(r)
                log(
                    f"  {name} run {k + 1}: {r['msgs_s']:,.0f} msgs/s, "
                    f"server CPU {r['server_cpu_s_per_10k']:.3f} s/10k, failed {r['failed']}"
                )
    finally:
        mosq.stop()
        stop_server(server)
    out = {"runs": runs}
    for name, rs in runs.items():
        med = statistics.median_low([r["msgs_s"] for r in rs])
        best = next(r for r in rs if r["msgs_s"] == med)
        out[name] = {
            "median_msgs_s": med,
            "server_cpu_s_per_10k": best["server_cpu_s_per_10k"],
            "failed": sum(r["failed"] for r in rs),
        }
    out["ratio"] = out["devserver"]["median_msgs_s"] / max(1e-9, out["mosquitto"]["median_msgs_s"])
    return out


def report(p1: dict | None, p2: dict | None, args: argparse.Namespace) -> str:
    lines = []
    if p1:
        reloaded = p1.get("reloaded_points")
        ok = (
            p1["connected"] == p1["devices"]
            and p1["server_cpu_share"] <= 1.0
            and p1["rss_peak_mb"] <= 500
            and p1["unacked_at_end"] == 0
            and reloaded in (None, p1["stored_points"])
        )
        lines += [
            f"## Part 1: {p1['devices']:,} devices, 1 QoS 1 message/s each for {args.duration:g} s",
            "",
            "| figure | value |",
            "| --- | ---: |",
            f"| connected | {p1['connected']:,} / {p1['devices']:,} |",
            f"| connect time (concurrency {args.concurrency}) | {p1['connect_s']:.2f} s |",
            f"| connect rate | {p1['connect_rate']:,.0f} /s |",
            f"| sustained msgs/s (acknowledged; offered {p1['offered_msgs_s']:,}) "
            f"| {p1['sustained_msgs_s']:,.0f} |",
            f"| acknowledged / sent | {p1['acked']:,} / {p1['sent']:,} |",
            f"| server CPU while sending (share of one core) | {p1['server_cpu_share']:.0%} |",
            f"| server CPU while connecting | {p1['connect_server_cpu_share']:.0%} |",
            f"| server RSS: registered, idle / all connected / end of sending / peak "
            f"| {p1['rss_idle_mb']:.0f} / {p1['rss_connected_mb']:.0f} / "
            f"{p1['rss_end_of_send_mb']:.0f} / {p1['rss_peak_mb']:.0f} MB |",
            f"| server threads | {p1['server_threads']} |",
            f"| telemetry points stored | {p1['stored_points']:,} |",
            *(
                [f"| telemetry points loaded by a restart from --data | {reloaded:,} |"]
                if reloaded is not None
                else []
            ),
            *(
                [
                    "| publish to PUBACK, ms: p50 / p90 / p99 / p99.9 / max (over 1 s) "
                    f"| {lat['p50']:.1f} / {lat['p90']:.1f} / {lat['p99']:.1f} / "
                    f"{lat['p999']:.1f} / {lat['max']:.0f} ({lat['over_1s']:,}) |"
                ]
                if (lat := p1.get("ack_latency_ms"))
                else []
            ),
            f"| client process CPU (share of one core) | {p1['client_cpu_share']:.0%} |",
            f"| other load on the machine meanwhile (share of one core, +-10 %) "
            f"| {max(0.0, p1['foreign_cpu_share']):.0%} |",
        ]
        if p1.get("watched_events") is not None:
            w = p1["watched_events"]
            lines.append(f"| events to the page's stream (--watch) | {json.dumps(w['page'])} |")
        lines += [
            "",
            f"target (<= 1 core, <= 500 MB RSS, all connected, all acknowledged, all reloaded): "
            f"{'met' if ok else 'NOT met'}",
            "",
        ]
    if p2:
        d, m = p2["devserver"], p2["mosquitto"]
        lines += [
            f"## Part 2: one device, {args.single_messages:,} QoS 1 messages "
            f"(window {args.window}), median of {args.repeat}",
            "",
            "| server | msgs/s | server CPU-s/10k | failed |",
            "| --- | ---: | ---: | ---: |",
            f"| dev server | {d['median_msgs_s']:,.0f} | {d['server_cpu_s_per_10k']:.3f} "
            f"| {d['failed']} |",
            f"| mosquitto | {m['median_msgs_s']:,.0f} | {m['server_cpu_s_per_10k']:.3f} "
            f"| {m['failed']} |",
            "",
            f"dev server / mosquitto: {p2['ratio']:.2f} "
            f"(target >= 1.00: {'met' if p2['ratio'] >= 1.0 else 'NOT met'})",
        ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=10_000, help="part 1 devices (default 10000)")
    p.add_argument("--duration", type=float, default=30.0, help="part 1 seconds of sending")
    p.add_argument("--concurrency", type=int, default=100, help="CONNECTs in progress at most")
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--worker-threads", type=int, default=1, help="dev server worker threads")
    p.add_argument(
        "--max-telemetry-per-device",
        type=int,
        default=0,
        help="dev server store bound (0: its default)",
    )
    p.add_argument(
        "--data",
        action="store_true",
        help="the dev server keeps its store in SQLite (DevServer(data=...)) in a fresh folder",
    )
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--single-messages", type=int, default=100_000, help="part 2 messages")
    p.add_argument("--window", type=int, default=64, help="part 2 QoS 1 window")
    p.add_argument("--repeat", type=int, default=3, help="part 2 runs per server")
    p.add_argument("--only", choices=("1", "2"), help="run only part 1 or part 2")
    p.add_argument(
        "--watch",
        action="store_true",
        help="part 1 with the web page's event stream open (device list and one device)",
    )
    p.add_argument("--role", choices=("server", "clients"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        return role_server(args)
    if args.role == "clients":
        return role_clients(args)
    if args.devices < 1 or args.duration < 1 or args.concurrency < 1 or args.repeat < 1:
        p.error("--devices, --duration, --concurrency and --repeat must be at least 1")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = HERE / "results"
    workdir = results_dir / f"devserver-scale-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.data:
        args.data_dir = str(workdir / "data")
    t_busy, t0 = machine_busy_s(), time.monotonic()
    time.sleep(1.0)
    foreign_before = (machine_busy_s() - t_busy) / (time.monotonic() - t0)
    log(f"machine: {os.cpu_count()} cores, busy {foreign_before:.0%} of one core before the run")
    p1 = part1(args) if args.only in (None, "1") else None
    p2 = part2(args, workdir) if args.only in (None, "2") else None
    text = report(p1, p2, args)
    print(
        f"- {os.cpu_count()} cores; busy before the run: {foreign_before:.0%} of one core; "
        f"python {sys.version.split()[0]}\n"
    )
    print(text)
    out = results_dir / f"devserver-scale-{stamp}.json"
    out.write_text(
        json.dumps(
            {"args": vars(args), "busy_before": foreign_before, "part1": p1, "part2": p2}, indent=2
        )
    )
    log(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
