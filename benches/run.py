"""Telemetry throughput benchmark: one command, every sender, one mosquitto.

    python benches/run.py                          # 100,000 messages: raw, ours, tb, paho
    python benches/run.py --messages 20000 --only raw,tb,paho

Starts its own mosquitto on a free 127.0.0.1 port (``set_tcp_nodelay true``), then for each
sender: starts a raw-socket QoS 1 subscriber (the loss counter), starts the sender in its own
interpreter (its own venv), waits for it under a timeout, and takes the child's CPU time from
``os.wait4``. Prints machine info and a markdown table; writes JSON to ``benches/results/``.
See ``benches/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
ORDER = ["raw", "ours", "oursq", "tb", "paho"]
LABELS = {
    "raw": "raw socket (ceiling)",
    "ours": "thingsboard_sdk (ours)",
    "oursq": "thingsboard_sdk, queue_dir (durable)",
    "tb": "tb-mqtt-client",
    "paho": "paho-mqtt (plain)",
}
# venv name -> (pip requirements, module whose version is reported)
VENV_SPECS = {
    "tb": (["tb-mqtt-client", "mmh3"], "tb-mqtt-client"),
    "paho": (["paho-mqtt>=2"], "paho-mqtt"),
}
MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_connections -1
persistence false
# Unbounded per-client queue: the broker must not drop what the subscriber has not taken yet,
# or the loss would be blamed on the sender.
max_queued_messages 0
max_inflight_messages {broker_inflight}
log_dest file {log}
log_type error
log_type warning
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- environment


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, requirements: list[str], timeout: float = 600) -> Path:
    """Create ``benches/.venvs/<name>`` with ``requirements`` unless it already imports fine."""
    py = venv_python(name)
    if not py.exists():
        log(f"creating venv {VENVS / name}")
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True, timeout=120)
        log(f"pip install {' '.join(requirements)} into {name}")
        subprocess.run(
            [str(py), "-m", "pip", "install", "-q", *requirements], check=True, timeout=timeout
        )
    return py


def _pip_install_ours(py: Path, src: Path) -> str | None:
    """``pip install src`` into the ours venv; returns why it failed, or None."""
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(VENVS / "ours-target"))
    log(f"building thingsboard_sdk into {VENVS / 'ours'} (pip install {src}) ...")
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(src)],
        env=env,
        timeout=1500,
        capture_output=True,
        text=True,
    )
    if r.returncode == 0:
        return None
    (VENVS / f"ours-build-{src.name}.log").write_text(r.stdout + r.stderr)
    return "pip install failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:200]


BUILT_FROM: dict[str, str] = {}


def build_ours(py: Path) -> str | None:
    """Build this repository's working tree into the ours venv; if that does not build (a
    teammate's edit in progress), build ``git archive HEAD`` from a temporary directory instead.
    Records what was built in ``BUILT_FROM`` (reported in the JSON)."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", ".", ":!benches"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    why = _pip_install_ours(py, REPO)
    if why is None:
        BUILT_FROM["ours"] = f"working tree at {head}" + (" (with local edits)" if dirty else "")
        return None
    log(f"the working tree does not build ({why}); building git archive HEAD ({head}) instead")
    with tempfile.TemporaryDirectory(prefix="tb-bench-src-") as tmp:
        src = Path(tmp) / f"thingsboard_sdk-{head}"
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
            capture_output=True,
            timeout=120,
        )
        if archive.returncode != 0:
            return why + "; git archive HEAD failed too"
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=120)
        why2 = _pip_install_ours(py, src)
    if why2:
        return f"working tree: {why}; HEAD: {why2}"
    BUILT_FROM["ours"] = f"git archive HEAD ({head}); the working tree did not build"
    return None


def ensure_ours(python: str | None, rebuild: bool) -> tuple[Path | None, str | None]:
    """The interpreter that imports ``thingsboard_sdk``; builds ``benches/.venvs/ours`` if needed.

    Returns:
        ``(python, None)`` or ``(None, reason)`` when the package cannot be imported or built.
    """
    check = [
        "-c",
        "import thingsboard_sdk.tb_device_mqtt, thingsboard_sdk.exceptions;"
        "print(getattr(thingsboard_sdk, '__version__', '?'))",
    ]
    if python:
        # Absolute, not resolved: a venv's python is a symlink that must stay the venv's.
        py = Path(python).absolute()
    else:
        py = venv_python("ours")
        if rebuild or not py.exists():
            if not py.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(VENVS / "ours")], check=True, timeout=120
                )
            why = build_ours(py)
            if why:
                return None, why
    if not py.exists():
        return None, f"{py} does not exist"
    r = subprocess.run([str(py), *check], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or ["?"]
        return None, f"thingsboard_sdk not importable with {py}: {lines[-1][:200]}"
    return py, None


def interpreter_info(py: Path, dist: str | None) -> dict:
    code = (
        "import sys, json, importlib.metadata as m\n"
        "v = None\n"
        f"dist = {dist!r}\n"
        "if dist:\n"
        "    try:\n"
        "        v = m.version(dist)\n"
        "    except Exception:\n"
        "        pass\n"
        "print(json.dumps({'python': sys.version.split()[0], 'package_version': v}))\n"
    )
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"python": None, "package_version": None}


def machine_cpu_seconds() -> float:
    """CPU time used on the whole machine so far (all CPUs, not idle), from /proc/stat.

    Counts irq and softirq (loopback TCP work lands there, and per-process times include some
    of it) and steal (the hypervisor's other guests).
    """
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def busy_fraction(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (Linux /proc/stat), taken before the run."""

    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total else None


def machine_info() -> dict:
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mosq = None
    try:
        r = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=10)
        mosq = (r.stdout or r.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return {
        "loadavg_1m": os.getloadavg()[0],
        "busy_before": busy_fraction(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "mosquitto": mosq,
    }


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A private mosquitto on a free 127.0.0.1 port, stopped on exit."""

    def __init__(self, workdir: Path, broker_inflight: int) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise SystemExit("mosquitto not found: apt-get install mosquitto")
        self.port = free_port()
        self.log = workdir / "mosquitto.log"
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            MOSQUITTO_CONF.format(port=self.port, log=self.log, broker_inflight=broker_inflight)
        )
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"mosquitto did not start on port {self.port}; see {self.log}")

    def cpu_seconds(self) -> float:
        """The broker's user+system CPU so far, from /proc (Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class DevServerProc:
    """The dev server in a process of its own (``_devserver.py``) with the fleet's devices."""

    def __init__(self, py: Path, devices: int, logdir: Path) -> None:
        self.err = open(logdir / f"devserver-{devices}.stderr", "ab")
        self.proc = subprocess.Popen(
            [str(py), str(HERE / "_devserver.py"), "--devices", str(devices)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.proc.kill()
            raise SystemExit(f"dev server did not start: {line}; see {self.err.name}")
        self.port, self.register_s = int(line[1]), float(line[2])

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def rss_kib(self) -> int:
        """Resident set size now (``/proc/<pid>/statm``)."""
        pages = int(Path(f"/proc/{self.proc.pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def stop(self) -> int | None:
        """Stops the server; returns the distinct messages its devices stored."""
        stored = None
        try:
            out, _ = self.proc.communicate(timeout=120)  # closing stdin stops it
            for line in out.splitlines():
                if line.startswith("STORED "):
                    stored = int(line.split()[1])
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        return stored


def wait_with_rusage(proc: subprocess.Popen, timeout: float):
    """Wait for ``proc`` (killing it after ``timeout``); return (exit code, rusage, timed_out)."""
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return proc.returncode, ru, timed_out.is_set()


def read_result(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return None


def start_subscriber(port: int, n: int, logdir: Path, timeout: float) -> subprocess.Popen:
    errf = open(logdir / "subscriber.stderr", "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "subscriber.py"),
            "--port",
            str(port),
            "--messages",
            str(n),
            "--timeout",
            str(timeout),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errf,
        bufsize=0,
    )
    errf.close()
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    line = proc.stdout.readline() if ready else b""
    if line.strip() != b"READY":
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"subscriber not ready (got {line!r}); see {logdir}/subscriber.stderr")
    return proc


def finish_subscriber(proc: subprocess.Popen, timeout: float) -> dict | None:
    try:
        out, _ = proc.communicate(b"DONE\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return read_result(out.decode(errors="replace"))


def run_one(name: str, py: Path, broker: Broker, args, logdir: Path, qos: int = 1) -> dict:
    n = args.messages
    sub = None
    if not args.no_subscriber:
        sub = start_subscriber(broker.port, n, logdir, args.timeout + 45)
    tag = name if qos == 1 else f"{name}-qos{qos}"
    out_path = logdir / f"{tag}.stdout"
    err_path = logdir / f"{tag}.stderr"
    cmd = [
        str(py),
        str(HERE / f"send_{'ours' if name == 'oursq' else name}.py"),
        "--port",
        str(broker.port),
        "--messages",
        str(n),
        "--window",
        str(args.window),
        "--timeout",
        str(args.timeout),
        "--qos",
        str(qos),
    ]
    if name in ("ours", "oursq") and args.ours_max_queued is not None:
        cmd += ["--max-queued", str(args.ours_max_queued)]
    if name == "oursq":
        # A fresh folder per run: the durable queue on this machine's disk (tmpfs or not).
        cmd += ["--queue-dir", tempfile.mkdtemp(prefix="tb-bench-queue-", dir=str(logdir))]
    broker_cpu0 = broker.cpu_seconds()
    machine_cpu0 = machine_cpu_seconds()
    wall0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=str(HERE))
        code, ru, timed_out = wait_with_rusage(proc, args.timeout + 15)
    broker_cpu = broker.cpu_seconds() - broker_cpu0
    machine_cpu = machine_cpu_seconds() - machine_cpu0
    wall = time.monotonic() - wall0
    result = read_result(out_path.read_text(errors="replace")) or {}
    sub_result = finish_subscriber(sub, 30) if sub else None
    row = {
        "sender": name,
        "qos": qos,
        "exit_code": code,
        "timed_out": timed_out,
        "process_cpu_s": ru.ru_utime + ru.ru_stime,
        "process_max_rss_kib": ru.ru_maxrss,
        "broker_cpu_s": broker_cpu,
        "sender_result": result,
        "subscriber": sub_result,
        "stderr_tail": err_path.read_text(errors="replace")[-2000:] if code else "",
    }
    if result.get("elapsed_s"):
        row["msgs_per_s"] = result["acked"] / result["elapsed_s"]
        row["cpu_send_per_10k"] = result["cpu_send_s"] * 10_000 / n
        last = (sub_result or {}).get("last_new_at")
        if qos == 0 and last and result.get("t0_monotonic"):
            # QoS 0 has no acknowledgement: "written" can run ahead of the broker. The rate is
            # what came through: distinct messages the subscriber got, up to the last one's
            # arrival (both clocks are CLOCK_MONOTONIC).
            row["msgs_per_s_written"] = row["msgs_per_s"]
            row["msgs_per_s"] = sub_result["distinct"] / (last - result["t0_monotonic"])
    row["cpu_process_per_10k"] = row["process_cpu_s"] * 10_000 / n
    row["broker_cpu_per_10k"] = broker_cpu * 10_000 / n
    # CPU used on the machine during the run by anything but the sender and the broker (the
    # subscriber, the runner, and whatever else runs: a build beside the benchmark shows here).
    # Approximate (clock ticks; kernel work is attributed loosely): about +-0.15 s when quiet.
    row["wall_s"] = wall
    row["other_cpu_s"] = machine_cpu - row["process_cpu_s"] - broker_cpu
    row["foreign_cpu_s"] = row["other_cpu_s"] - ((sub_result or {}).get("cpu_s") or 0.0)
    if sub_result:
        row["lost"] = sub_result["lost"]
        row["duplicates"] = sub_result["duplicates"]
    return row


# ---------------------------------------------------------------- report


def fmt(v, spec: str, missing: str = "n/a") -> str:
    return missing if v is None else format(v, spec)


def summarize(rows: list[dict], n: int) -> dict:
    """Median run (by msgs/s) of one sender's repeats, with losses summed over every run."""
    ok = [r for r in rows if r.get("msgs_per_s")]
    best = sorted(ok, key=lambda r: r["msgs_per_s"])[len(ok) // 2] if ok else rows[0]
    out = dict(best)
    out["runs"] = len(rows)
    if all(r.get("lost") is not None for r in rows):
        out["lost"] = sum(r["lost"] for r in rows)
        out["duplicates"] = sum(r["duplicates"] for r in rows)
    # A sender that crashed before reporting counts every message as failed.
    out["sender_failed"] = sum((r["sender_result"] or {}).get("failed", n) for r in rows)
    out["msgs_per_s_all"] = [round(r.get("msgs_per_s") or 0) for r in rows]
    return out


def table(summary: dict[str, dict], skipped: dict[str, str], n: int) -> str:
    raw = summary.get("raw", {}).get("msgs_per_s")
    head = (
        "| sender | msgs/s | vs raw | CPU-s/10k (send) | CPU-s/10k (process) | "
        "broker CPU-s/10k | lost | dup | client-reported failed | retries |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for name in ORDER:
        if name in skipped:
            lines.append(f"| {LABELS[name]} | skipped: {skipped[name]} |||||||||")
            continue
        s = summary.get(name)
        if not s:
            continue
        res = s.get("sender_result") or {}
        mps = s.get("msgs_per_s")
        ratio = f"{mps / raw:.0%}" if mps and raw else "n/a"
        retries = res.get("queue_full_retries", res.get("retries"))
        note = " (timed out)" if s.get("timed_out") else ""
        if s.get("exit_code"):
            note += f" (exit {s['exit_code']})"
        lines.append(
            f"| {LABELS[name]}{note} | {fmt(mps, ',.0f')} | {ratio} | "
            f"{fmt(s.get('cpu_send_per_10k'), '.3f')} | "
            f"{fmt(s.get('cpu_process_per_10k'), '.3f')} | "
            f"{fmt(s.get('broker_cpu_per_10k'), '.3f')} | {fmt(s.get('lost'), 'd')} | "
            f"{fmt(s.get('duplicates'), 'd')} | {fmt(s.get('sender_failed'), 'd')} | "
            f"{fmt(retries, 'd', '-')} |"
        )
    return head + "\n".join(lines) + "\n"


# ---------------------------------------------------------------- suites


SUITES = ["telemetry", "qos0", "fleet", "rpc"]
FLEET_KINDS = ["ours", "tb", "paho"]
TARGETS = {  # issue 13
    "telemetry": ">= 0.9x raw; send CPU <= raw's + 0.01 CPU-s/10k; broker CPU <= raw's; 0 lost",
    "oursq": "queue_dir >= 0.5x the in-memory queue",
    "fleet": "<= 12 KiB RSS per idle device at 2,000 and 10,000; 3 OS threads whatever the "
    "count; 10,000 connected to the dev server in <= 2 s",
    "rpc": "p99 <= 0.3 ms",
}


def proc_cpu_seconds(pid: int) -> float:
    """user+system CPU of a live process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_telemetry(qos: int, pythons: dict[str, Path], broker: Broker, args, logdir: Path):
    """Suite (a)/(d): every sender at one QoS, ``--repeat`` times (raw ``--raw-repeat``)."""
    all_rows: dict[str, list[dict]] = {}
    for rep in range(max(args.repeat, args.raw_repeat if "raw" in pythons else 0)):
        for name in pythons:
            reps = args.raw_repeat if name == "raw" else args.repeat
            if rep >= reps:
                continue
            log(f"QoS {qos} run {rep + 1}/{reps}: {name}")
            row = run_one(name, pythons[name], broker, args, logdir, qos)
            all_rows.setdefault(name, []).append(row)
            log(
                f"  {name}: {fmt(row.get('msgs_per_s'), ',.0f')} msgs/s, "
                f"lost {row.get('lost')}, exit {row['exit_code']}, "
                f"other CPU {row['other_cpu_s']:.2f} s in {row['wall_s']:.1f} s"
            )
            if row["exit_code"]:
                log(f"  {name} stderr tail:\n{row['stderr_tail']}")
    return all_rows


def read_lines(text: str, kind: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith(kind + " "):
            try:
                out.append(json.loads(line[len(kind) + 1 :]))
            except ValueError:
                pass
    return out


def run_fleet_one(kind: str, py: Path, broker: Broker, n: int, args, logdir: Path) -> dict:
    """One fleet attempt: ``fleet_<kind>.py`` with ``n`` devices, bounded in time."""
    duration = int(args.fleet_duration)
    bound = args.fleet_connect_timeout + duration + 15 + 2 + 20
    devserver = None
    if args.server == "devserver":
        # The dev server keeps what each device sent: it counts losses, not a subscriber.
        devserver = DevServerProc(args.devserver_python, n, logdir)
        server, sub = devserver, None
    else:
        server = broker
        sub = start_subscriber(broker.port, n * duration, logdir, bound + 45)
    out_path = logdir / f"fleet-{kind}-{n}.stdout"
    err_path = logdir / f"fleet-{kind}-{n}.stderr"
    cmd = [
        str(py),
        str(HERE / f"fleet_{kind}.py"),
        "--port",
        str(server.port),
        "--devices",
        str(n),
        "--connect-timeout",
        str(args.fleet_connect_timeout),
        "--duration",
        str(duration),
    ]
    broker_cpu0, machine_cpu0, wall0 = server.cpu_seconds(), machine_cpu_seconds(), time.monotonic()
    server_rss0 = devserver.rss_kib() if devserver else None
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=str(HERE))
            code, ru, timed_out = wait_with_rusage(proc, bound)
    except BaseException:
        if devserver:
            devserver.proc.kill()
        raise
    broker_cpu = server.cpu_seconds() - broker_cpu0
    machine_cpu = machine_cpu_seconds() - machine_cpu0
    wall = time.monotonic() - wall0
    text = out_path.read_text(errors="replace")
    result = (read_lines(text, "RESULT") or [{}])[-1]
    progress = read_lines(text, "PROGRESS")
    sub_result = finish_subscriber(sub, 30) if sub else None
    server_info = None
    if devserver:
        server_info = {
            "server": "devserver",
            "register_s": devserver.register_s,
            "rss_growth_kib": devserver.rss_kib() - (server_rss0 or 0),
            "threads": devserver.threads(),
        }
        server_info["stored"] = devserver.stop()
    row = {
        "kind": kind,
        "devices": n,
        "exit_code": code,
        "timed_out": timed_out,
        "process_cpu_s": ru.ru_utime + ru.ru_stime,
        "process_max_rss_kib": ru.ru_maxrss,
        "broker_cpu_s": broker_cpu,
        "wall_s": wall,
        "result": result,
        "last_progress": progress[-1] if progress else None,
        "subscriber": sub_result,
        "server": server_info or {"server": "mosquitto"},
        "stderr_tail": err_path.read_text(errors="replace")[-1500:],
    }
    row["foreign_cpu_s"] = (
        machine_cpu - row["process_cpu_s"] - broker_cpu - ((sub_result or {}).get("cpu_s") or 0.0)
    )
    if "sent" in result and sub_result:
        row["lost"] = n * duration - sub_result["distinct"]
    stored = (server_info or {}).get("stored")
    if "sent" in result and stored is not None:
        row["lost"] = n * duration - stored
    ok = (
        not code
        and not timed_out
        and result.get("connected") == n
        and not result.get("error")
        and result.get("acked") == n * duration
    )
    row["ok"] = ok
    if not ok:
        if timed_out:
            last = row["last_progress"] or {}
            why = (
                f"killed after {bound:.0f} s in phase {last.get('phase', '?')} "
                f"({last.get('connected', last.get('started', '?'))} up, "
                f"{last.get('threads', '?')} threads)"
            )
        elif result.get("error"):
            why = result["error"]
        elif code:
            tail = row["stderr_tail"].strip().splitlines() or ["?"]
            why = f"exit {code}: {tail[-1][:160]}"
        else:
            why = f"{result.get('acked')}/{n * duration} messages acknowledged"
        fds = result.get("fds") or {}
        if fds.get("unconnected_fd_ge_1024"):
            why += (
                f"; {fds['unconnected_fd_ge_1024']} of the {fds['unconnected']} unconnected "
                f"clients have a socket fd >= 1024 (select()'s FD_SETSIZE; every connected "
                f"one is below: max fd {fds.get('connected_max_fd')}, "
                f"{fds.get('open_fds')} fds open)"
            )
        row["stopped_because"] = why
    return row


def run_fleet(pythons: dict[str, Path], broker: Broker, args, logdir: Path) -> list[dict]:
    """Suite (b): each client kind at each size until it fails once (then larger sizes skip)."""
    sizes = [int(x) for x in args.fleet_sizes.split(",") if x.strip()]
    rows = []
    for kind in FLEET_KINDS:
        if kind not in pythons:
            continue
        failed_at = None
        for n in sizes:
            if failed_at is not None:
                rows.append({"kind": kind, "devices": n, "not_attempted": failed_at})
                continue
            log(f"fleet: {kind} with {n:,} devices")
            row = run_fleet_one(kind, pythons[kind], broker, n, args, logdir)
            rows.append(row)
            r = row["result"]
            log(
                f"  {kind} {n}: connected {r.get('connected')} in {fmt(r.get('connect_s'), '.2f')}"
                f" s, {fmt(r.get('msgs_per_s'), ',.0f')} msgs/s, "
                f"{fmt((r.get('rss_per_device') or 0) / 1024, '.1f')} KiB/device, "
                f"{r.get('threads1')} threads, lost {row.get('lost')}"
                + (
                    f"; dev server RSS +{row['server']['rss_growth_kib'] / n:.1f} KiB/device"
                    if "rss_growth_kib" in row["server"]
                    else ""
                )
                + (f"; STOPPED: {row['stopped_because']}" if not row["ok"] else "")
            )
            if not row["ok"]:
                failed_at = f"stopped at {n:,}"
    return rows


def run_rpc_one(kind: str, py: Path, broker: Broker, args, logdir: Path) -> dict:
    """Suite (c): a device process under test and the raw-socket requester."""
    bound = args.rpc_timeout + 30
    err = open(logdir / f"rpc-{kind}.stderr", "wb")
    dev = subprocess.Popen(
        [str(py), str(HERE / f"rpc_{kind}.py"), "--port", str(broker.port)]
        + ["--duration", str(bound + 20)],
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=str(HERE),
    )
    err.close()
    row: dict = {"kind": kind}
    try:
        ready, _, _ = select.select([dev.stdout], [], [], 20)
        line = dev.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            row["error"] = f"device not ready (got {line!r})"
            return row
        dev_cpu0 = proc_cpu_seconds(dev.pid)
        broker_cpu0, machine_cpu0 = broker.cpu_seconds(), machine_cpu_seconds()
        out_path = logdir / f"rpc-{kind}-requester.stdout"
        with open(out_path, "wb") as out, open(logdir / f"rpc-{kind}-requester.stderr", "wb") as e:
            req = subprocess.Popen(
                [sys.executable, str(HERE / "rpc_requester.py"), "--port", str(broker.port)]
                + ["--requests", str(args.rpc_requests), "--timeout", str(args.rpc_timeout)],
                stdout=out,
                stderr=e,
                cwd=str(HERE),
            )
            code, ru, timed_out = wait_with_rusage(req, bound)
        dev_cpu = proc_cpu_seconds(dev.pid) - dev_cpu0
        broker_cpu = broker.cpu_seconds() - broker_cpu0
        machine_cpu = machine_cpu_seconds() - machine_cpu0
        req_cpu = ru.ru_utime + ru.ru_stime
        res = read_result(out_path.read_text(errors="replace")) or {}
        row.update(res)
        row.update(
            requester_exit=code,
            requester_timed_out=timed_out,
            device_cpu_s=dev_cpu,
            requester_cpu_s=req_cpu,
            broker_cpu_s=broker_cpu,
            foreign_cpu_s=machine_cpu - dev_cpu - req_cpu - broker_cpu,
        )
        if res.get("answered"):
            row["device_cpu_ms_per_request"] = dev_cpu * 1000 / res["answered"]
        if code and not res:
            row["error"] = f"requester exit {code}"
    finally:
        dev.kill()
        dev.wait(10)
    return row


def run_rpc(pythons: dict[str, Path], broker: Broker, args, logdir: Path) -> list[dict]:
    rows = []
    for kind in FLEET_KINDS:
        if kind in pythons:
            log(f"rpc: {kind}, {args.rpc_requests} sequential requests")
            row = run_rpc_one(kind, pythons[kind], broker, args, logdir)
            log(
                f"  {kind}: p50 {fmt(row.get('p50_ms'), '.3f')} ms, "
                f"p99 {fmt(row.get('p99_ms'), '.3f')} ms, lost {row.get('lost')}"
                + (f", error {row['error']}" if row.get("error") else "")
            )
            rows.append(row)
    return rows


def fleet_table(rows: list[dict], raw_mps: float | None) -> str:
    out = [
        "| client | devices | connected | connect s | msgs/s (offered) | vs raw | lost | "
        "RSS/device KiB | threads | idle CPU | CPU-s/10k msgs | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        label, n = LABELS[row["kind"]], row["devices"]
        if "not_attempted" in row:
            out.append(
                f"| {label} | {n:,} | - | - | - | - | - | - | - | - | - | "
                f"not attempted ({row['not_attempted']}) |"
            )
            continue
        r = row["result"]
        mps = r.get("msgs_per_s")
        rss = r.get("rss_per_device")
        cpu = r.get("cpu_send_s")
        note = "" if row["ok"] else "stopped: " + row.get("stopped_because", "?")
        out.append(
            f"| {label} | {n:,} | {fmt(r.get('connected'), ',d')} | "
            f"{fmt(r.get('connect_s'), '.2f')} | "
            f"{fmt(mps, ',.0f')} ({n:,}) | "
            f"{f'{mps / raw_mps:.1%}' if mps and raw_mps else 'n/a'} | "
            f"{fmt(row.get('lost'), ',d')} | {fmt(rss / 1024 if rss else None, '.1f')} | "
            f"{fmt(r.get('threads1'), ',d')} | {fmt(r.get('idle_cpu_frac'), '.1%')} | "
            f"{fmt(cpu * 10_000 / r['acked'] if cpu and r.get('acked') else None, '.3f')} | "
            f"{note} |"
        )
    return "\n".join(out) + "\n"


def rpc_table(rows: list[dict]) -> str:
    out = [
        "| device | p50 ms | p90 ms | p99 ms | max ms | mean ms | answered | lost | "
        "device CPU ms/request | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        out.append(
            f"| {LABELS[r['kind']]} | {fmt(r.get('p50_ms'), '.3f')} | "
            f"{fmt(r.get('p90_ms'), '.3f')} | {fmt(r.get('p99_ms'), '.3f')} | "
            f"{fmt(r.get('max_ms'), '.2f')} | {fmt(r.get('mean_ms'), '.3f')} | "
            f"{fmt(r.get('answered'), ',d')} | {fmt(r.get('lost'), 'd')} | "
            f"{fmt(r.get('device_cpu_ms_per_request'), '.3f')} | {r.get('error', '')} |"
        )
    return "\n".join(out) + "\n"


def median_of(rows: list[dict], key: str) -> float | None:
    vals = sorted(r[key] for r in rows if r.get(key) is not None)
    return vals[len(vals) // 2] if vals else None


def pair_lines(raw: list[dict], ours: list[dict], q: int) -> list[str]:
    """Ratios of the back-to-back (raw, ours) runs, pair by pair.

    Design: the VM's own speed drifts by +-20 % between minutes, more than the difference being
    measured; each raw run is followed by an ours run, so a pair shares the machine's state and
    the spread of the pair ratios says how far the medians above can be trusted.
    """
    pairs = [(r, o) for r, o in zip(raw, ours) if r.get("msgs_per_s") and o.get("msgs_per_s")]
    if len(pairs) < 2:
        return []
    out = []
    for key, what, good, target in (
        ("msgs_per_s", "rate", lambda v: v >= 0.9, "at or above 0.9"),
        ("broker_cpu_per_10k", "broker CPU", lambda v: v <= 1, "at or below 1"),
    ):
        vals = sorted(o[key] / r[key] for r, o in pairs if r.get(key) and o.get(key))
        if not vals:
            continue
        out.append(
            f"(a) QoS {q} {what}, ours/raw pair by pair ({len(vals)} back-to-back pairs): "
            f"median {vals[len(vals) // 2]:.2f}, range {vals[0]:.2f}-{vals[-1]:.2f}, "
            f"{sum(map(good, vals))} of {len(vals)} {target}"
        )
    return out


def verdicts(results: dict) -> list[str]:
    """Ours against the issue's targets, one line per target ("met" only when measured)."""
    lines = []

    def line(label: str, ok: bool, what: str, target: str) -> None:
        lines.append(f"{label}: {what} -> {'met' if ok else 'MISSED'} (target {target})")

    for key in ("telemetry", "qos0"):
        res = results.get(key) or {}
        summ, runs = res.get("summary") or {}, res.get("runs") or {}
        ours, raw = summ.get("ours"), summ.get("raw")
        q = 1 if key == "telemetry" else 0
        if ours and raw and ours.get("msgs_per_s") and raw.get("msgs_per_s"):
            # Rates: the median runs; CPU: the median over each sender's runs.
            ratio = ours["msgs_per_s"] / raw["msgs_per_s"]
            cpu, cpu_raw = (median_of(runs[k], "cpu_send_per_10k") for k in ("ours", "raw"))
            bcpu, bcpu_raw = (median_of(runs[k], "broker_cpu_per_10k") for k in ("ours", "raw"))
            line(
                f"(a) QoS {q} rate",
                ratio >= 0.9 and not ours.get("lost"),
                f"ours {ratio:.0%} of raw, lost {ours.get('lost')}",
                ">= 0.9x raw, 0 lost",
            )
            ok = cpu is not None and cpu_raw is not None and cpu <= cpu_raw + 0.01
            line(
                f"(a) QoS {q} client CPU",
                ok,
                f"ours {fmt(cpu, '.3f')} vs raw {fmt(cpu_raw, '.3f')} CPU-s/10k (send)",
                "<= raw + 0.01",
            )
            ok = bcpu is not None and bcpu_raw is not None and bcpu <= bcpu_raw
            line(
                f"(a) QoS {q} broker CPU",
                ok,
                f"for ours {fmt(bcpu, '.3f')} vs for raw {fmt(bcpu_raw, '.3f')} CPU-s/10k",
                "<= raw's",
            )
            lines.extend(pair_lines(runs.get("raw") or [], runs.get("ours") or [], q))
        oursq = summ.get("oursq")
        if ours and oursq and ours.get("msgs_per_s") and oursq.get("msgs_per_s"):
            ratio = oursq["msgs_per_s"] / ours["msgs_per_s"]
            line(
                f"(a) QoS {q} queue_dir",
                ratio >= 0.5 and not oursq.get("lost"),
                f"{oursq['msgs_per_s']:,.0f} msgs/s = {ratio:.2f}x in-memory, "
                f"lost {oursq.get('lost')}",
                TARGETS["oursq"],
            )
    fleet = [r for r in (results.get("fleet") or {}).get("rows", []) if r["kind"] == "ours"]
    if fleet:
        ran = [r for r in fleet if "result" in r]
        parts, ok = [], bool(ran) and len(ran) == len(fleet)
        for r in ran:
            res, n = r["result"], r["devices"]
            kib = (res.get("rss_per_device") or 0) / 1024
            parts.append(f"{n:,}: {kib:.1f} KiB/device, {res.get('threads1')} threads")
            ok &= r["ok"] and (res.get("threads1") or 99) <= 3
            if n >= 2000:
                ok &= kib <= 12
        line(
            "(b) fleet memory",
            ok,
            "ours " + "; ".join(parts),
            "<= 12 KiB per idle device at 2,000 and 10,000; 3 OS threads",
        )
        big = [r for r in ran if r["devices"] >= 10_000]
        server = ((big or ran or [{}])[0].get("server") or {}).get("server", "mosquitto")
        if big and server == "devserver":
            t = big[0]["result"].get("connect_s")
            line(
                "(b) fleet connect",
                big[0]["ok"] and t is not None and t <= 2,
                f"{big[0]['devices']:,} connected to the dev server in {fmt(t, '.2f')} s",
                "<= 2 s",
            )
        else:
            lines.append(
                "(b) fleet connect: not measured (the target is 10,000 devices against the dev "
                "server: `--suite fleet --server devserver --fleet-sizes 2000,10000`)"
            )
    for r in (results.get("rpc") or {}).get("rows", []):
        if r["kind"] == "ours":
            p99 = r.get("p99_ms")
            line(
                "(c) RPC",
                p99 is not None and p99 <= 0.3 and not r.get("lost"),
                f"ours p99 {fmt(p99, '.3f')} ms, lost {r.get('lost')}",
                TARGETS["rpc"],
            )
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--suite",
        default="telemetry",
        help="comma list of: " + ",".join(SUITES) + ", or all (telemetry = QoS 1 throughput, "
        "qos0 = the same at QoS 0, fleet = many devices in one process, rpc = server-side RPC "
        "round trip)",
    )
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--only", default=",".join(ORDER), help="comma list of: " + ",".join(ORDER))
    p.add_argument(
        "--window",
        type=int,
        default=64,
        help="QoS 1 in-flight window for raw, paho and ours (tb keeps its own)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per sender; the median is shown")
    p.add_argument(
        "--raw-repeat",
        type=int,
        default=3,
        help="runs of the raw ceiling (cheap, and the denominator of 'vs raw')",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="per sender run: send + wait bound, seconds (the process gets 15 more)",
    )
    p.add_argument(
        "--broker-inflight",
        type=int,
        default=1000,
        help="mosquitto max_inflight_messages (its outgoing QoS 1 window per client)",
    )
    p.add_argument(
        "--ours-python",
        default=os.environ.get("TB_BENCH_OURS_PYTHON"),
        help="interpreter with thingsboard_sdk installed "
        "(default: build benches/.venvs/ours from this repo)",
    )
    p.add_argument(
        "--ours-max-queued",
        type=int,
        default=None,
        help="ours: max_queued_messages (default: the SDK's); small values exercise "
        "the QueueFullError back-off",
    )
    p.add_argument(
        "--rebuild-ours",
        action="store_true",
        help="reinstall this repo into benches/.venvs/ours first",
    )
    p.add_argument(
        "--no-subscriber",
        action="store_true",
        help="skip the loss-counting subscriber (lost/dup become n/a)",
    )
    p.add_argument("--fleet-sizes", default="100,1000,10000", help="fleet: device counts, in order")
    p.add_argument(
        "--server",
        choices=("mosquitto", "devserver"),
        default="mosquitto",
        help="fleet: the server the devices connect to; devserver = this repo's dev server in a "
        "process of its own, a fresh one per run (losses counted from what it stored)",
    )
    p.add_argument(
        "--fleet-connect-timeout",
        type=float,
        default=60.0,
        help="fleet: bound on making and connecting every client of one size, seconds",
    )
    p.add_argument(
        "--fleet-duration", type=float, default=10.0, help="fleet: seconds of 1 msg/s per device"
    )
    p.add_argument("--rpc-requests", type=int, default=2000, help="rpc: timed requests")
    p.add_argument(
        "--rpc-timeout", type=float, default=90.0, help="rpc: bound per device under test, s"
    )
    args = p.parse_args()
    suites = [x.strip() for x in args.suite.split(",") if x.strip()]
    if "all" in suites:
        suites = list(SUITES)
    if set(suites) - set(SUITES):
        p.error(f"unknown suite(s) {sorted(set(suites) - set(SUITES))}; choose from {SUITES}")
    suites = [x for x in SUITES if x in suites]
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(ORDER)
    if unknown:
        p.error(f"unknown sender(s) {sorted(unknown)}; choose from {ORDER}")
    wanted = [s for s in ORDER if s in wanted]
    if not {"telemetry", "qos0"} & set(suites):
        wanted = [s for s in wanted if s != "raw"]

    info = machine_info()
    pythons: dict[str, Path] = {}
    versions: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        if name == "raw":
            pythons[name] = Path(sys.executable)
            versions[name] = interpreter_info(pythons[name], None)
        elif name == "oursq" and "ours" in pythons:
            pythons[name] = pythons["ours"]
            versions[name] = versions["ours"]
        elif name in ("ours", "oursq"):
            py, why = ensure_ours(args.ours_python, args.rebuild_ours)
            if py is None:
                skipped[name] = why or "?"
                log(f"skipping ours: {why}")
                continue
            pythons[name] = py
            versions[name] = interpreter_info(py, "thingsboard-sdk")
        else:
            reqs, dist = VENV_SPECS[name]
            pythons[name] = ensure_venv(name, reqs)
            versions[name] = interpreter_info(pythons[name], dist)

    args.devserver_python = None
    if args.server == "devserver" and "fleet" in suites:
        py, why = (
            (pythons["ours"], None) if "ours" in pythons else ensure_ours(args.ours_python, False)
        )
        if py is None:
            p.error(f"--server devserver needs thingsboard_sdk: {why}")
        args.devserver_python = py
    print("## Machine\n")
    print(f"- nproc: {info['nproc']}  cpu: {info['cpu']}  kernel: {info['kernel']}")
    print(
        f"- runner python: {info['python']}  broker: {info['mosquitto']} (set_tcp_nodelay true, "
        f"max_connections -1, max_inflight_messages {args.broker_inflight})"
    )
    for name, v in versions.items():
        pkg = f", package {v['package_version']}" if v.get("package_version") else ""
        built = f" ({BUILT_FROM[name]})" if name in BUILT_FROM else ""
        print(f"- {LABELS[name]}: python {v.get('python')}{pkg}{built}")
    print(f"- suites: {', '.join(suites)}")
    if {"telemetry", "qos0"} & set(suites):
        print(
            f"- messages per sender: {args.messages:,}, window {args.window}, "
            f"repeat {args.repeat} (raw {args.raw_repeat})"
        )
    busy = info["busy_before"]
    print(
        f"- CPU busy in the second before the run: {fmt(busy, '.0%')} "
        f"(load average {info['loadavg_1m']:.2f})",
        flush=True,
    )
    if busy is not None and busy > 0.10:
        print(
            "- **warning: something else is using the CPU; these numbers are not comparable**",
            flush=True,
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results: dict[str, dict] = {}
    runs: list[dict] = []  # every run of every suite, for the exit code and noise warnings
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
        logdir = RESULTS / f"logs-{stamp}"
        logdir.mkdir()
        for suite in suites:
            bdir = Path(tmp) / suite
            bdir.mkdir()
            broker = Broker(bdir, args.broker_inflight)
            log(f"suite {suite}: mosquitto on 127.0.0.1:{broker.port}; logs in {logdir}")
            t_suite = time.monotonic()
            try:
                if suite in ("telemetry", "qos0"):
                    qos = 1 if suite == "telemetry" else 0
                    rows = run_telemetry(qos, pythons, broker, args, logdir)
                    summary = {name: summarize(r, args.messages) for name, r in rows.items()}
                    results[suite] = {
                        "summary": summary,
                        "runs": rows,
                        "table_markdown": table(summary, skipped, args.messages),
                    }
                    for name, rr in rows.items():
                        runs += [dict(r, label=f"{name} QoS {qos}") for r in rr]
                else:
                    kinds = {k: v for k, v in pythons.items() if k in FLEET_KINDS}
                    if suite == "fleet":
                        rows = run_fleet(kinds, broker, args, logdir)
                    else:
                        rows = run_rpc(kinds, broker, args, logdir)
                    results[suite] = {"rows": rows}
                    for r in rows:
                        if "not_attempted" in r:
                            continue
                        label = f"{r['kind']} {suite}" + (
                            f" {r['devices']:,}" if "devices" in r else ""
                        )
                        runs.append(dict(r, label=label))
            finally:
                broker.stop()
                if broker.log.exists():
                    shutil.copy(broker.log, logdir / f"mosquitto-{suite}.log")
            results[suite]["wall_s"] = time.monotonic() - t_suite

    info["loadavg_1m_after"] = os.getloadavg()[0]
    raw_mps = ((results.get("telemetry") or {}).get("summary") or {}).get("raw", {})
    raw_mps = raw_mps.get("msgs_per_s")
    if "fleet" in results:
        results["fleet"]["table_markdown"] = fleet_table(results["fleet"]["rows"], raw_mps)
    if "rpc" in results:
        results["rpc"]["table_markdown"] = rpc_table(results["rpc"]["rows"])
    titles = {
        "telemetry": "(a) one device, QoS 1, and (d) the raw ceiling",
        "qos0": "(a) one device, QoS 0, and (d) the raw ceiling at QoS 0",
        "fleet": "(b) fleet: N devices in one process, 1 msg/s each, against "
        + ("the dev server (its own process)" if args.server == "devserver" else "mosquitto")
        + (" (vs raw: the QoS 1 raw ceiling above)" if raw_mps else ""),
        "rpc": f"(c) server-side RPC round trip, {args.rpc_requests:,} sequential requests",
    }
    print("\n## Results\n")
    for suite in suites:
        print(f"### {titles[suite]}\n")
        print(results[suite]["table_markdown"])
        target = TARGETS["telemetry" if suite == "qos0" else suite]
        if suite == "telemetry":
            target += "; " + TARGETS["oursq"]
        print(f"Target (ours): {target}.\n")
    lines = verdicts(results)
    if lines:
        print("### Ours against the targets\n")
        print("\n".join(f"- {x}" for x in lines) + "\n")
    noisy = [
        f"{r['label']} ({r['foreign_cpu_s'] / r['wall_s']:.0%} of a core)"
        for r in runs
        if r.get("wall_s")
        and r.get("foreign_cpu_s") is not None
        and r["foreign_cpu_s"] > max(0.3, 0.15 * r["wall_s"])
    ]
    noisy += [
        f"{r['label']} ({r['foreign_cpu_s']:.1f} CPU-s)"
        for r in runs
        if not r.get("wall_s") and (r.get("foreign_cpu_s") or 0) > 1.0
    ]
    if noisy:
        print("**warning: other processes used CPU during: " + ", ".join(noisy) + "**\n")
    out = {
        "date": stamp,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": info,
        "settings": vars(args),
        "versions": versions,
        "built_from": BUILT_FROM,
        "skipped": skipped,
        "results": results,
        "verdicts": lines,
    }
    if "telemetry" in results:  # the layout of the first version of this runner
        out["summary"] = results["telemetry"]["summary"]
        out["runs"] = results["telemetry"]["runs"]
        out["table_markdown"] = results["telemetry"]["table_markdown"]
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"JSON: {path}")
    # A failed telemetry run or RPC measurement fails the command; a fleet attempt that stops
    # is a result (rivals are run until they stop).
    bad = [r for r in runs if r.get("sender") and (r["exit_code"] or r["timed_out"])]
    bad += [
        r
        for r in runs
        if "p99_ms" in r or "error" in r and "devices" not in r
        if r.get("error") or r.get("requester_exit")
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
