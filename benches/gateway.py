"""Gateway throughput: one gateway, DEVICES sub-devices, each sending ROUNDS telemetry messages
of 10 keys at QoS 1, to mosquitto and to the dev server, ours vs tb-mqtt-client's
TBGatewayMqttClient, side by side in one run. Reports data points per second, CPU seconds per
10,000 data points (the client process, send phase only) and losses, with the ratios.

Losses are counted apart from the client: on mosquitto a raw QoS 1 subscriber
(dp_subscriber.py --gateway) parses every payload and counts distinct (device, key, value) data
points; on the dev server, the data points it stored (its Python API), before and after each
run. ``lost`` is what was sent and never counted there; ``unacked`` is what the client itself
could not confirm.

Target (issue 15): >= 10x tb-mqtt-client's data points per second at <= 1/10 of its CPU per
data point, 0 lost.

    python benches/gateway.py                       # 1,000 sub-devices x 10 rounds
    python benches/gateway.py --devices 1000 --rounds 5 --targets devserver

Uses run.py's venvs: ours from --ours-python (or TB_BENCH_OURS_PYTHON, or benches/.venvs/ours),
tb-mqtt-client from benches/.venvs/tb. The dev server runs in a child of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Broker, ensure_ours, ensure_venv, log, read_result  # noqa: E402

DEVSERVER = """
import sys
from thingsboard_sdk.devserver import DevServer
s = DevServer(http_port=None, max_telemetry_per_device=100_000)
s.add_device("bench-gw", "BENCH_GW_TOKEN", gateway=True)
print(s.port, flush=True)
for line in sys.stdin:
    # COUNT: the data points stored for the benchmark's sub-devices so far.
    subs = [d for d in s.devices() if d.startswith("bench-sub-")]
    print(sum(len(s.telemetry(d)) for d in subs), flush=True)
s.stop()
"""


def start_counter(port: int, datapoints: int, timeout: float) -> subprocess.Popen:
    """dp_subscriber.py --gateway on mosquitto, subscribed (READY) before the sender starts."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "dp_subscriber.py"),
            "--gateway",
            "--port",
            str(port),
            "--datapoints",
            str(datapoints),
            "--timeout",
            str(timeout),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        raise SystemExit(f"gateway subscriber not ready: {line!r}")
    return proc


def run_worker(py: Path, script: str, port: int, args, env=None) -> dict:
    cmd = [
        str(py),
        str(HERE / script),
        "127.0.0.1",
        str(port),
        "BENCH_GW_TOKEN",
        str(args.devices),
        str(args.rounds),
        "10",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    res = read_result(out.stdout)
    if res is None:
        return {"error": (out.stderr or out.stdout)[-500:]}
    res["unacked"] = res.pop("lost")
    res["dps"] = res["datapoints"] / res["seconds"] if res["seconds"] else 0.0
    res["cpu_per_10k_dp"] = 10_000 * res["cpu_s"] / res["datapoints"] if res["datapoints"] else 0
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--targets", default="mosquitto,devserver")
    p.add_argument("--only", default="ours,tb")
    p.add_argument("--ours-python", default=os.environ.get("TB_BENCH_OURS_PYTHON"))
    p.add_argument("--rebuild-ours", action="store_true")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    ours_py, why = ensure_ours(args.ours_python, args.rebuild_ours)
    if ours_py is None:
        raise SystemExit(f"cannot build or import thingsboard_sdk: {why}")
    pythons = {"ours": ours_py}
    if "tb" in args.only:
        pythons["tb"] = ensure_venv("tb", ["tb-mqtt-client", "mmh3"])
    scripts = {"ours": "gateway_ours.py", "tb": "gateway_tb.py"}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            if target == "mosquitto":
                broker = Broker(Path(tmp), 0)
                port, stop = broker.port, broker.stop
            else:
                srv = subprocess.Popen(
                    [str(ours_py), "-c", DEVSERVER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert srv.stdout is not None and srv.stdin is not None
                port = int(srv.stdout.readline())

                def stop(srv=srv):
                    srv.stdin.close()
                    srv.wait(30)

            try:
                for who in args.only.split(","):
                    log(f"{target}: {who}, {args.devices} sub-devices x {args.rounds} rounds")
                    want = args.devices * args.rounds * 10
                    if target == "mosquitto":
                        counter = start_counter(port, want, args.timeout)
                    else:
                        srv.stdin.write("COUNT\n")
                        srv.stdin.flush()
                        before = int(srv.stdout.readline())
                    res = run_worker(pythons[who], scripts[who], port, args)
                    if target == "mosquitto":
                        out, _ = counter.communicate("DONE\n", timeout=args.timeout)
                        counted = (read_result(out) or {}).get("datapoints", 0)
                    else:
                        srv.stdin.write("COUNT\n")
                        srv.stdin.flush()
                        counted = int(srv.stdout.readline()) - before
                    res["lost"] = want - counted
                    results[f"{target}/{who}"] = res
                    time.sleep(1)
            finally:
                stop()
    print(json.dumps(results, indent=1))
    print()
    print(f"{'target/client':22} {'dp/s':>12} {'CPU s/10k dp':>13} {'lost':>6} {'unacked':>8}")
    for k, r in results.items():
        if "error" in r:
            print(f"{k:22} error: {r['error'][:200]}")
            continue
        row = f"{r['dps']:12,.0f} {r['cpu_per_10k_dp']:13.4f} {r['lost']:6} {r['unacked']:8}"
        print(f"{k:22} {row}")
    for target in args.targets.split(","):
        o, t = results.get(f"{target}/ours", {}), results.get(f"{target}/tb", {})
        if "dps" in o and "dps" in t and t["dps"] and o["cpu_per_10k_dp"]:
            speed = o["dps"] / t["dps"]
            cpu = t["cpu_per_10k_dp"] / o["cpu_per_10k_dp"]
            met = speed >= 10 and cpu >= 10 and o["lost"] == 0 and o["unacked"] == 0
            print(
                f"{target}: ours {speed:.1f}x the data points per second at 1/{cpu:.1f} of the "
                f"CPU per data point, {o['lost']} lost: target {'met' if met else 'MISSED'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
