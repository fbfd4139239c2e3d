"""asyncio benchmarks (issue 16): thingsboard_sdk.aio beside gmqtt and aiomqtt, one mosquitto.

    python benches/aio.py                         # every suite
    python benches/aio.py --suite telemetry --repeat 3

Suites, all in one invocation against one private mosquitto per suite (``run.py``'s Broker):

- ``telemetry``: one device, ``--messages`` QoS 1 messages from one coroutine until every one
  is acknowledged; the raw-socket ceiling, our sync client, ours on asyncio and on uvloop,
  gmqtt and aiomqtt (each in its own venv); losses counted by ``subscriber.py``.
- ``datapoints``: one device sends batched telemetry (lists of ``ts``/``values`` entries) from
  one coroutine; ``dp_subscriber.py`` parses every payload and counts every datapoint.
  tb-mqtt-client 2.0 sends the same calls (``--tb2-dp-messages`` of them).
  tb-mqtt-client 2.0 (``--tb2-source``, see ``_tb2.py``) runs here too, counted by datapoint:
  it merges queued calls, so its calls/s is shown beside what reached the broker, never as
  msgs/s.
- ``fleet``: ``--fleet-sizes`` devices in one event loop (``fleet_aio.py``), one message a
  second each; connect time, RSS per device, threads, losses. Clients and broker are separate
  processes, each with the open-files limit raised to the hard limit.

Ratios are taken within the run (the machine is shared). Output: markdown on stdout, JSON in
``benches/results/aio-<time>.json``, logs in ``benches/results/aio-logs-<time>/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tb2
import run as R

SUITES = ["telemetry", "datapoints", "fleet"]
SENDERS = ["raw", "ours", "aio", "aio_uvloop", "gmqtt", "aiomqtt"]
LABELS = {
    "raw": "raw socket (ceiling)",
    "ours": "thingsboard_sdk sync client",
    "aio": "**thingsboard_sdk.aio** (asyncio)",
    "aio_uvloop": "**thingsboard_sdk.aio** (uvloop)",
    "gmqtt": "gmqtt",
    "aiomqtt": "aiomqtt",
}
PEERS = {"gmqtt": (["gmqtt"], "gmqtt"), "aiomqtt": (["aiomqtt"], "aiomqtt")}
TB2 = "tb2"  # tb-mqtt-client 2.0: its own runner (_tb2.py), counted by datapoint
TB2_TITLE = (
    f"#### {_tb2.LABEL}, counted by datapoint (its futures' success is its own claim; "
    "`dp_subscriber.py --per-key` counts what reached the broker)"
)


def ensure_pythons(args) -> tuple[dict[str, Path], dict[str, str]]:
    pythons: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    ours, why = R.ensure_ours(args.ours_python, args.rebuild_ours)
    if ours is None:
        skipped.update({k: why or "?" for k in ("ours", "aio", "aio_uvloop")})
    else:
        check = subprocess.run([str(ours), "-c", "import uvloop"], capture_output=True)
        if check.returncode != 0:
            subprocess.run([str(ours), "-m", "pip", "install", "-q", "uvloop"], timeout=600)
        pythons.update(ours=ours, aio=ours, aio_uvloop=ours)
    pythons["raw"] = Path(sys.executable)
    for name, (reqs, _dist) in PEERS.items():
        try:
            pythons[name] = R.ensure_venv(name, reqs)
        except (subprocess.SubprocessError, OSError) as e:
            skipped[name] = f"venv: {e}"[:200]
    if TB2 not in args.only.split(","):
        return pythons, skipped
    tb2, why, info = _tb2.ensure(args.tb2_source, args.tb2_python)
    if tb2 is None:
        R.log(f"skipping {_tb2.LABEL}: {why}")
        skipped[TB2] = why
    else:
        pythons[TB2] = tb2
        TB2_INFO.update(info)
    return pythons, skipped


TB2_INFO: dict = {}


# ---------------------------------------------------------------- telemetry


def run_telemetry(pythons, broker, args, logdir) -> tuple[dict, list[dict]]:
    rows: dict[str, list[dict]] = {}
    tb2_rows: list[dict] = []
    for rep in range(args.repeat):
        for name in SENDERS:
            if name not in pythons:
                continue
            R.log(f"telemetry run {rep + 1}/{args.repeat}: {name}")
            row = R.run_one(name, pythons[name], broker, args, logdir, 1)
            rows.setdefault(name, []).append(row)
            R.log(
                f"  {name}: {R.fmt(row.get('msgs_per_s'), ',.0f')} msgs/s, "
                f"{R.fmt(row.get('cpu_process_per_10k'), '.3f')} CPU-s/10k, lost {row.get('lost')}"
            )
        if TB2 in pythons:
            R.log(f"telemetry run {rep + 1}/{args.repeat}: {TB2}")
            tb2_rows.append(_tb2.run_one("telemetry", pythons[TB2], broker, args, logdir, rep))
            _tb2.log_row(tb2_rows[-1])
    return {name: R.summarize(r, args.messages) for name, r in rows.items()}, tb2_rows


def telemetry_table(summary: dict, skipped: dict, tb2_rows: list[dict]) -> str:
    raw = (summary.get("raw") or {}).get("msgs_per_s")
    out = [
        "| sender | msgs/s | vs raw | CPU-s/10k (process) | CPU-s/10k (send) | lost | runs |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in SENDERS:
        if name in skipped:
            out.append(f"| {LABELS[name]} | skipped: {skipped[name]} ||||||")
            continue
        s = summary.get(name)
        if not s:
            continue
        mps = s.get("msgs_per_s")
        ratio = f"{mps / raw:.0%}" if mps and raw else "n/a"
        out.append(
            f"| {LABELS[name]} | {R.fmt(mps, ',.0f')} | {ratio} | "
            f"{R.fmt(s.get('cpu_process_per_10k'), '.3f')} | "
            f"{R.fmt(s.get('cpu_send_per_10k'), '.3f')} | {R.fmt(s.get('lost'), 'd')} | "
            f"{s.get('msgs_per_s_all')} |"
        )
    if TB2 in skipped:
        out.append(f"| {_tb2.LABEL} | skipped: {skipped[TB2]} ||||||")
    elif tb2_rows:
        out.append(_tb2.telemetry_row(tb2_rows))
    return "\n".join(out) + "\n"


def telemetry_verdicts(summary: dict) -> list[str]:
    raw, aio, gm = (summary.get(k) or {} for k in ("raw", "aio", "gmqtt"))
    out = []
    if raw.get("msgs_per_s") and aio.get("msgs_per_s"):
        r = aio["msgs_per_s"] / raw["msgs_per_s"]
        out.append(f"aio vs raw: {r:.2f}x (target >= 0.9x): {'met' if r >= 0.9 else 'NOT met'}")
    if gm.get("msgs_per_s") and aio.get("msgs_per_s"):
        r = aio["msgs_per_s"] / gm["msgs_per_s"]
        c = aio["cpu_process_per_10k"] / gm["cpu_process_per_10k"]
        out.append(
            f"aio vs gmqtt: {r:.2f}x msgs/s (target > 1), {c:.2f}x CPU per message (target "
            f"<= 0.5): {'met' if r > 1 and c <= 0.5 else 'NOT met'}"
        )
    if aio:
        out.append(f"aio lost: {aio.get('lost')} (target 0)")
    return out


# ---------------------------------------------------------------- datapoints


def run_datapoints_one(py: Path, broker, args, logdir: Path) -> dict:
    total = args.dp_messages * args.dp_entries * args.dp_keys
    sub_cmd = [
        sys.executable,
        str(R.HERE / "dp_subscriber.py"),
        "--port",
        str(broker.port),
        "--datapoints",
        str(total),
        "--timeout",
        str(args.timeout + 45),
    ]
    errf = open(logdir / "dp_subscriber.stderr", "ab")  # noqa: SIM115 - handed to the child
    sub = subprocess.Popen(
        sub_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf, bufsize=0
    )
    errf.close()
    line = sub.stdout.readline()
    if line.strip() != b"READY":
        sub.kill()
        raise RuntimeError(f"dp subscriber not ready: {line!r}")
    cmd = [
        str(py),
        str(R.HERE / "send_dp_aio.py"),
        "--port",
        str(broker.port),
        "--messages",
        str(args.dp_messages),
        "--entries",
        str(args.dp_entries),
        "--keys",
        str(args.dp_keys),
        "--window",
        str(args.window),
        "--timeout",
        str(args.timeout),
    ]
    out_path, err_path = logdir / "dp-aio.stdout", logdir / "dp-aio.stderr"
    broker_cpu0 = broker.cpu_seconds()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=str(R.HERE))
        code, ru, timed_out = R.wait_with_rusage(proc, args.timeout + 15)
    broker_cpu = broker.cpu_seconds() - broker_cpu0
    result = R.read_result(out_path.read_text(errors="replace")) or {}
    sub_result = R.finish_subscriber(sub, 60) or {}
    row = {
        "exit_code": code,
        "timed_out": timed_out,
        "process_cpu_s": ru.ru_utime + ru.ru_stime,
        "broker_cpu_s": broker_cpu,
        "sender_result": result,
        "subscriber": sub_result,
        "datapoints": total,
        "lost": sub_result.get("lost"),
        "stderr_tail": err_path.read_text(errors="replace")[-1500:] if code else "",
    }
    if result.get("elapsed_s"):
        row["dp_per_s_acked"] = total / result["elapsed_s"]
        row["msgs_per_s"] = result["acked"] / result["elapsed_s"]
        row["cpu_s_per_million_dp"] = row["process_cpu_s"] * 1e6 / total
    last = sub_result.get("last_new_at")
    if last and result.get("t0_monotonic"):
        row["dp_per_s_arrived"] = sub_result["datapoints"] / (last - result["t0_monotonic"])
    return row


def datapoints_table(rows: list[dict], args) -> str:
    out = [
        f"One device, {args.dp_messages:,} messages of {args.dp_entries} ts/values entries x "
        f"{args.dp_keys} keys ({args.dp_entries * args.dp_keys:,} datapoints per message):\n",
        "| run | datapoints/s (until every PUBACK) | datapoints/s (arrived, parsed) | msgs/s | "
        "sender CPU-s per 1M datapoints | counted | lost | duplicate entries |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(rows, 1):
        sub = r.get("subscriber") or {}
        out.append(
            f"| {i} | {R.fmt(r.get('dp_per_s_acked'), ',.0f')} | "
            f"{R.fmt(r.get('dp_per_s_arrived'), ',.0f')} | {R.fmt(r.get('msgs_per_s'), ',.0f')} | "
            f"{R.fmt(r.get('cpu_s_per_million_dp'), '.3f')} | "
            f"{R.fmt(sub.get('datapoints'), ',d')} | "
            f"{R.fmt(r.get('lost'), ',d')} | {R.fmt(sub.get('duplicate_entries'), 'd')} |"
        )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- fleet


def fleet_table(rows: list[dict]) -> str:
    out = [
        "| devices | loop | connected | connected in | RSS per idle device | OS threads | "
        "msgs/s | acknowledged | lost | idle CPU |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        res = r.get("result") or {}
        per = res.get("rss_per_device")
        out.append(
            f"| {r['devices']:,} | {res.get('loop', '?')} | {R.fmt(res.get('connected'), ',d')} | "
            f"{R.fmt(res.get('connect_s'), '.2f')} s | "
            f"{R.fmt(per / 1024 if per else None, '.1f')} KiB | {res.get('threads1', '?')} | "
            f"{R.fmt(res.get('msgs_per_s'), ',.0f')} | {R.fmt(res.get('acked'), ',d')} | "
            f"{R.fmt(r.get('lost'), ',d')} | {R.fmt(res.get('idle_cpu_frac'), '.1%')} |"
            + (f" stopped: {r['stopped_because']}" if r.get("stopped_because") else "")
        )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", default="all", help="comma list of " + ",".join(SUITES) + " or all")
    p.add_argument(
        "--only", default=",".join([*SENDERS, TB2]), help="senders (tb2: tb-mqtt-client 2.0)"
    )
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--broker-inflight", type=int, default=1000)
    p.add_argument("--ours-python", default=None)
    p.add_argument("--rebuild-ours", action="store_true")
    p.add_argument("--dp-messages", type=int, default=2_500)
    p.add_argument("--dp-entries", type=int, default=40)
    p.add_argument("--dp-keys", type=int, default=100)
    p.add_argument("--dp-repeat", type=int, default=3)
    p.add_argument(
        "--tb2-source",
        default=None,
        help="tb-mqtt-client 2.0: a git repository with branch develop-2.0 or a checkout "
        f"(default {_tb2.DEFAULT_SOURCE} if present; the peer is skipped if it cannot be set up)",
    )
    p.add_argument("--tb2-python", default=None, help="Python >= 3.12 for tb-mqtt-client 2.0")
    p.add_argument(
        "--tb2-dp-messages",
        type=int,
        default=250,
        help="tb-mqtt-client 2.0's calls in the datapoints suite (it is ~30x slower there)",
    )
    p.add_argument("--fleet-sizes", default="10000")
    p.add_argument("--fleet-loops", default="asyncio,uvloop")
    p.add_argument("--fleet-duration", type=float, default=10.0)
    p.add_argument("--fleet-connect-timeout", type=float, default=60.0)
    args = p.parse_args()
    # run.py's run_one reads these
    args.no_subscriber = False
    args.ours_max_queued = None
    suites = SUITES if args.suite == "all" else [s for s in args.suite.split(",") if s]
    wanted = [s for s in args.only.split(",") if s]

    pythons, skipped = ensure_pythons(args)
    pythons = {k: v for k, v in pythons.items() if k in wanted}
    info = R.machine_info()
    info["versions"] = {
        k: R.interpreter_info(pythons[k], PEERS[k][1]) for k in PEERS if k in pythons
    }
    if TB2 in pythons:
        info["versions"][TB2] = TB2_INFO
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    R.RESULTS.mkdir(exist_ok=True)
    logdir = R.RESULTS / f"aio-logs-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": info, "args": vars(args), "built_from": R.BUILT_FROM}
    md: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tb-aio-bench-") as tmp:
        for suite in suites:
            bdir = Path(tmp) / suite
            bdir.mkdir()
            broker = R.Broker(bdir, args.broker_inflight)
            t0 = time.monotonic()
            try:
                if suite == "telemetry":
                    summary, tb2_rows = run_telemetry(pythons, broker, args, logdir)
                    results["telemetry"] = summary
                    md.append(
                        f"### One device, {args.messages:,} QoS 1 messages, median of "
                        f"{args.repeat}\n\n" + telemetry_table(summary, skipped, tb2_rows)
                    )
                    md += [f"- {v}" for v in telemetry_verdicts(summary)]
                    if tb2_rows:
                        results.setdefault("tb2", []).extend(tb2_rows)
                        md.append("\n" + TB2_TITLE + "\n\n" + _tb2.table(tb2_rows))
                elif suite == "datapoints" and "aio" in pythons:
                    rows = []
                    for rep in range(args.dp_repeat):
                        R.log(f"datapoints run {rep + 1}/{args.dp_repeat}")
                        rows.append(run_datapoints_one(pythons["aio"], broker, args, logdir))
                        R.log(
                            f"  {R.fmt(rows[-1].get('dp_per_s_acked'), ',.0f')} dp/s, "
                            f"lost {rows[-1].get('lost')}"
                        )
                    results["datapoints"] = rows
                    md.append(
                        "### Batched telemetry, datapoints per second\n\n"
                        + datapoints_table(rows, args)
                    )
                    if TB2 in pythons:
                        tb2_rows = []
                        for rep in range(args.dp_repeat):
                            R.log(f"datapoints run {rep + 1}/{args.dp_repeat}: {TB2}")
                            tb2_rows.append(
                                _tb2.run_one("datapoints", pythons[TB2], broker, args, logdir, rep)
                            )
                            _tb2.log_row(tb2_rows[-1])
                        results.setdefault("tb2", []).extend(tb2_rows)
                        md.append(
                            f"\n{TB2_TITLE}, {args.tb2_dp_messages:,} calls of the same "
                            f"messages\n\n" + _tb2.table(tb2_rows)
                        )
                    elif TB2 in skipped:
                        md.append(f"\n{_tb2.LABEL}: skipped: {skipped[TB2]}")
                elif suite == "fleet" and "aio" in pythons:
                    rows = []
                    for n in [int(x) for x in args.fleet_sizes.split(",") if x]:
                        for loop in [x for x in args.fleet_loops.split(",") if x]:
                            R.log(f"fleet: {n} devices, {loop}")
                            kind = "aio" if loop == "asyncio" else "aio_uvloop"
                            row = R.run_fleet_one(kind, pythons["aio"], broker, n, args, logdir)
                            rows.append(row)
                            res = row.get("result") or {}
                            R.log(
                                f"  connected {res.get('connected')} in "
                                f"{R.fmt(res.get('connect_s'), '.2f')} s, lost {row.get('lost')}"
                            )
                    results["fleet"] = rows
                    md.append(
                        f"### Devices in one event loop, 1 msg/s each for "
                        f"{args.fleet_duration:.0f} s\n\n" + fleet_table(rows)
                    )
            finally:
                broker.stop()
            results.setdefault("wall_s", {})[suite] = time.monotonic() - t0
    out = R.RESULTS / f"aio-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(
        f"- machine: {info.get('cpu')}, {info.get('nproc')} CPUs, load {info['loadavg_1m']:.2f}, "
        f"busy before {R.fmt(info.get('busy_before'), '.0%')}, Python {info['python']}, "
        f"{info.get('mosquitto')}"
    )
    print(f"- peers: {json.dumps(info['versions'])}; JSON: {out}\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
