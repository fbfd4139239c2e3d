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
ORDER = ["raw", "ours", "tb", "paho"]
LABELS = {
    "raw": "raw socket (ceiling)",
    "ours": "thingsboard_sdk (ours)",
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
        py = Path(python)
    else:
        py = venv_python("ours")
        if rebuild or not py.exists():
            if not py.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(VENVS / "ours")], check=True, timeout=120
                )
            env = dict(os.environ)
            env.setdefault("CARGO_TARGET_DIR", str(VENVS / "ours-target"))
            log(f"building thingsboard_sdk into {VENVS / 'ours'} (pip install {REPO}) ...")
            r = subprocess.run(
                [str(py), "-m", "pip", "install", "-q", str(REPO)],
                env=env,
                timeout=1500,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                return None, "pip install . failed: " + r.stderr.strip().splitlines()[-1][:200]
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


def run_one(name: str, py: Path, broker: Broker, args, logdir: Path) -> dict:
    n = args.messages
    sub = None
    if not args.no_subscriber:
        sub = start_subscriber(broker.port, n, logdir, args.timeout + 45)
    out_path = logdir / f"{name}.stdout"
    err_path = logdir / f"{name}.stderr"
    cmd = [
        str(py),
        str(HERE / f"send_{name}.py"),
        "--port",
        str(broker.port),
        "--messages",
        str(n),
        "--window",
        str(args.window),
        "--timeout",
        str(args.timeout),
    ]
    if name == "ours" and args.ours_max_queued is not None:
        cmd += ["--max-queued", str(args.ours_max_queued)]
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
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
    args = p.parse_args()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(ORDER)
    if unknown:
        p.error(f"unknown sender(s) {sorted(unknown)}; choose from {ORDER}")
    wanted = [s for s in ORDER if s in wanted]

    info = machine_info()
    pythons: dict[str, Path] = {}
    versions: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        if name == "raw":
            pythons[name] = Path(sys.executable)
            versions[name] = interpreter_info(pythons[name], None)
        elif name == "ours":
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

    print("## Machine\n")
    print(f"- nproc: {info['nproc']}  cpu: {info['cpu']}  kernel: {info['kernel']}")
    print(
        f"- runner python: {info['python']}  broker: {info['mosquitto']} (set_tcp_nodelay true, "
        f"max_inflight_messages {args.broker_inflight})"
    )
    for name, v in versions.items():
        pkg = f", package {v['package_version']}" if v.get("package_version") else ""
        print(f"- {LABELS[name]}: python {v.get('python')}{pkg}")
    print(
        f"- messages per sender: {args.messages:,}, QoS 1, window {args.window}, "
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
    all_rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
        logdir = RESULTS / f"logs-{stamp}"
        logdir.mkdir()
        broker = Broker(Path(tmp), args.broker_inflight)
        log(f"mosquitto on 127.0.0.1:{broker.port}; logs in {logdir}")
        try:
            for rep in range(max(args.repeat, args.raw_repeat if "raw" in pythons else 0)):
                for name in pythons:
                    reps = args.raw_repeat if name == "raw" else args.repeat
                    if rep >= reps:
                        continue
                    log(f"run {rep + 1}/{reps}: {name}")
                    row = run_one(name, pythons[name], broker, args, logdir)
                    all_rows.setdefault(name, []).append(row)
                    log(
                        f"  {name}: {fmt(row.get('msgs_per_s'), ',.0f')} msgs/s, "
                        f"lost {row.get('lost')}, exit {row['exit_code']}, "
                        f"other CPU {row['other_cpu_s']:.2f} s in {row['wall_s']:.1f} s"
                    )
                    if row["exit_code"]:
                        log(f"  {name} stderr tail:\n{row['stderr_tail']}")
        finally:
            broker.stop()
            if broker.log.exists():
                shutil.copy(broker.log, logdir / "mosquitto.log")

    info["loadavg_1m_after"] = os.getloadavg()[0]
    summary = {name: summarize(rows, args.messages) for name, rows in all_rows.items()}
    md = table(summary, skipped, args.messages)
    print("\n## Results\n")
    print(md)
    noisy = [
        f"{r['sender']} ({r['foreign_cpu_s'] / r['wall_s']:.0%} of a core)"
        for rows in all_rows.values()
        for r in rows
        if r["foreign_cpu_s"] > max(0.3, 0.15 * r["wall_s"])
    ]
    if noisy:
        print("**warning: other processes used CPU during: " + ", ".join(noisy) + "**\n")
    out = {
        "date": stamp,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": info,
        "settings": vars(args),
        "versions": versions,
        "skipped": skipped,
        "summary": summary,
        "runs": all_rows,
        "table_markdown": md,
    }
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"JSON: {path}")
    bad = [r for rows in all_rows.values() for r in rows if r["exit_code"] or r["timed_out"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
