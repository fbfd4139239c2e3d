"""Server-side RPC requester: what ThingsBoard does, on a raw TCP_NODELAY socket.

Subscribes (QoS 0) to ``v1/devices/me/rpc/response/+``, then publishes (QoS 0)
``v1/devices/me/rpc/request/{n}`` with ``{"method":"ping","params":{"n":n}}`` and waits for the
device's reply on ``v1/devices/me/rpc/response/{n}``, one request at a time. The first requests
are a warm-up (repeated every 0.5 s until the device answers: it may still be subscribing),
then ``--requests`` are timed, each from just before its ``send`` to the read that brings the
matching reply. Anything else (the broker echoing a request, a late reply to an earlier id) is
counted and ignored; a request without a reply within ``--reply-timeout`` counts as lost.
Prints ``RESULT {json}`` with p50/p90/p99/max in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time

import _mqtt

REQ = "v1/devices/me/rpc/request/"
RESP = b"v1/devices/me/rpc/response/"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--reply-timeout", type=float, default=2.0)
    p.add_argument("--ready-timeout", type=float, default=15.0)
    p.add_argument("--timeout", type=float, default=90.0, help="bound on the whole run")
    args = p.parse_args()

    sock = _mqtt.connect(args.host, args.port, "bench-rpc-requester")
    sock.sendall(_mqtt.encode_subscribe(1, RESP + b"+", qos=0))
    buf = bytearray()
    ignored = 0

    def read(until: float) -> list[tuple[int, bytes]]:
        """Packets that arrive before ``until`` (at least one read's worth, or none)."""
        left = until - time.monotonic()
        if left <= 0:
            return []
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return []
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("broker closed the connection")
        buf.extend(data)
        pkts, used = _mqtt.split_packets(buf)
        del buf[:used]
        return [(t, b) for t, _f, b in pkts]

    def reply_id(body: bytes) -> int | None:
        tlen = (body[0] << 8) | body[1]
        topic = body[2 : 2 + tlen]
        if topic.startswith(RESP):
            try:
                return int(topic[len(RESP) :])
            except ValueError:
                return None
        return None

    t_end = time.monotonic() + args.timeout
    while not any(t == _mqtt.SUBACK for t, _ in read(time.monotonic() + 10)):
        if time.monotonic() > t_end:
            raise SystemExit("no SUBACK")

    def packet(n: int) -> bytes:
        body = b'{"method":"ping","params":{"n":%d}}' % n
        return _mqtt.encode_publish((REQ + str(n)).encode(), body, 0, qos=0)

    # Warm-up: until the device answers at all, then --warmup untimed round trips.
    n = 0
    answered = False
    ready_deadline = time.monotonic() + args.ready_timeout
    while not answered and time.monotonic() < ready_deadline:
        n += 1
        sock.sendall(packet(n))
        until = time.monotonic() + 0.5
        while not answered and time.monotonic() < until:
            for t, body in read(until):
                if t == _mqtt.PUBLISH and reply_id(body) is not None:
                    answered = True
                else:
                    ignored += 1
    if not answered:
        raise SystemExit(f"the device did not answer within {args.ready_timeout} s")

    rtts: list[float] = []
    lost = 0
    total = args.warmup + args.requests
    for k in range(total):
        n += 1
        pkt = packet(n)
        t0 = time.perf_counter()
        sock.sendall(pkt)
        until = min(time.monotonic() + args.reply_timeout, t_end)
        got = None
        while got is None and time.monotonic() < until:
            for t, body in read(until):
                if t == _mqtt.PUBLISH and reply_id(body) == n:
                    got = time.perf_counter()
                else:
                    ignored += 1
        if got is None:
            lost += k >= args.warmup
        elif k >= args.warmup:
            rtts.append(got - t0)
        if time.monotonic() > t_end:
            break
    try:
        sock.sendall(_mqtt.DISCONNECT_PACKET)
        sock.close()
    except OSError:
        pass
    rtts.sort()

    def pct(q: float) -> float | None:
        if not rtts:
            return None
        return rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000

    out = {
        "requests": args.requests,
        "answered": len(rtts),
        "lost": lost,
        "not_attempted": max(0, total - (k + 1)),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": rtts[-1] * 1000 if rtts else None,
        "mean_ms": sum(rtts) / len(rtts) * 1000 if rtts else None,
        "ignored_packets": ignored,
    }
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
