"""Rate-limited sending: a client with session_limits=True sends as fast as it can to the dev
server, which enforces ThingsBoard's limits (default telemetry messages "100:1,3000:60").

Reports, from the server's own arrival timestamps: messages per limit window (first window
from the first arrival), the rate as a percentage of the long window's limit, the lowest token
count of ThingsBoard's buckets replayed over the arrivals (>= 0: every message accepted), the
most seen in any sliding stretch (arrival jitter included), and the disconnects (target:
95-100 % of the limit, buckets never below 0, 0 disconnects). Run with an interpreter that
has thingsboard_sdk installed:

    python benches/rate_limited.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import time

from thingsboard_sdk.devserver import DevServer
from thingsboard_sdk.exceptions import QueueFullError
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient


def most_in(ts: list[int], span_ms: int) -> int:
    best, j = 0, 0
    for i in range(len(ts)):
        while ts[i] - ts[j] >= span_ms:
            j += 1
        best = max(best, i - j + 1)
    return best


def bucket_low(ts: list[int], cap: int, seconds: int) -> float:
    """The lowest token count a greedy bucket (ThingsBoard's, starting full) reaches over these
    arrivals; below 0 the server would have refused a message."""
    tokens, last, low = float(cap), ts[0] if ts else 0, float(cap)
    for t in ts:
        tokens = min(cap, tokens + (t - last) * cap / (seconds * 1000))
        last = t
        tokens -= 1
        low = min(low, tokens)
    return low


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--limit", default="100:1,3000:60", help="telemetry messages limit")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to send")
    args = p.parse_args()
    windows = [(int(c), int(s)) for c, s in (w.split(":") for w in args.limit.split(","))]
    long_cap, long_s = max(windows, key=lambda w: w[1])
    with DevServer(
        http_port=None, telemetry_rate_limits=args.limit, max_telemetry_per_device=1_000_000
    ) as server:
        token = server.add_device("paced")
        client = TBDeviceMqttClient(
            server.host,
            server.port,
            access_token=token,
            session_limits=True,
            max_queued_messages=500,
        )
        assert client.connect(timeout=10) is not None
        start = time.monotonic()
        n = full = 0
        while time.monotonic() - start < args.seconds:
            try:
                client.send_telemetry({"i": n})
                n += 1
            except QueueFullError:
                full += 1
                client.flush(timeout=0.05)
        cpu = time.process_time()
        client.disconnect()
        ts = sorted(p.ts for p in server.telemetry("paced", "i"))
        disconnects = [
            e
            for e in server.connection_events("paced")
            if e.kind == "disconnected" and e.reason != "client DISCONNECT"
        ]
    first = ts[0] if ts else 0
    per_window = []
    t = first
    while t + long_s * 1000 <= first + args.seconds * 1000 + 1:
        per_window.append(sum(1 for x in ts if t <= x < t + long_s * 1000))
        t += long_s * 1000
    result = {
        "limit": args.limit,
        "seconds": args.seconds,
        "accepted_by_send": n,
        "stored": len(ts),
        "queue_full_backoffs": full,
        f"per_{long_s}s_window": per_window,
        "percent_of_limit": [round(100 * c / long_cap, 1) for c in per_window],
        "max_in_any": {f"{s}s": most_in(ts, s * 1000) for _, s in windows},
        "server_bucket_low": {f"{s}s": round(bucket_low(ts, c, s), 1) for c, s in windows},
        "limits": {f"{s}s": c for c, s in windows},
        "unexpected_disconnects": len(disconnects),
        "client_cpu_s": round(cpu, 2),
    }
    print(json.dumps(result, indent=1))
    ok = (
        not disconnects
        and all(low >= 0 for low in result["server_bucket_low"].values())
        and all(95 <= pct <= 100 for pct in result["percent_of_limit"])
    )
    print("target met" if ok else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
