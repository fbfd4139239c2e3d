"""Independent loss counter: a raw-socket QoS 1 subscriber to the telemetry topic.

Protocol with the runner (stdin/stdout, one line each):
  - prints ``READY`` once the SUBACK is in (the sender is started only after that);
  - reads ``DONE`` on stdin once the sender has exited; from then on it stops as soon as it has
    seen every ``i`` in ``range(--messages)`` (after a short linger for late duplicates), or after
    ``--idle`` seconds without a message, or at ``--timeout`` overall;
  - prints ``RESULT {json}``: distinct ``i`` values seen, duplicates, what could not be parsed,
    and ``last_new_at``: ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process) of the
    read that brought the last new ``i``; the runner measures QoS 0 throughput up to it.

Both payload shapes are counted: a JSON object and tb-mqtt-client's one-element list.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import sys
import time

import _mqtt
from _sender import TOPIC

I_RE = re.compile(rb'"i"\s*:\s*(\d+)')
PUBACK_HEAD = b"\x40\x02"
BATCH_BYTES = 16384


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--idle", type=float, default=3.0)
    p.add_argument("--linger", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument(
        "--batch-wait",
        type=float,
        default=0.002,
        help="sleep after a small read (seconds); needs the broker's outgoing "
        "window (max_inflight_messages) well above what arrives in that time",
    )
    args = p.parse_args()
    n = args.messages

    sock = _mqtt.connect(args.host, args.port, f"bench-sub-{os.getpid()}")
    sock.sendall(_mqtt.encode_subscribe(1, TOPIC.encode(), qos=1))

    seen = bytearray(n)
    distinct = duplicates = dup_flagged = out_of_range = unparsed = received = 0
    qos_counts = [0, 0, 0]
    reads = 0
    buf = bytearray()
    subscribed = False
    done = False
    t_start = time.monotonic()
    last_msg = t_start
    done_at = None
    first_new_at = last_new_at = None  # time.monotonic() of the reads that brought new ``i``
    all_seen_at = None
    stdin_fd = sys.stdin.fileno()
    watch = [sock, stdin_fd]
    while True:
        now = time.monotonic()
        if now - t_start > args.timeout:
            break
        if done:
            if all_seen_at is not None and now - all_seen_at >= args.linger:
                break
            if now - max(last_msg, done_at) >= args.idle:
                break
        ready, _, _ = select.select(watch, [], [], 0.1)
        if stdin_fd in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "DONE":
                done = True
                done_at = time.monotonic()
                watch = [sock]
        if sock not in ready:
            continue
        data = sock.recv(1 << 18)
        if not data:
            break
        reads += 1
        t_read = time.monotonic()
        distinct_before = distinct
        buf += data
        # Inline framing (no per-packet copies): this loop competes with the sender for CPU.
        acks = []
        pos, end, got = 0, len(buf), 0
        while pos + 2 <= end:
            first = buf[pos]
            length = buf[pos + 1]
            start = pos + 2
            if length & 0x80:  # multi-byte remaining length
                length, mult, k = length & 0x7F, 128, start
                while k < end and buf[k - 1] & 0x80:
                    length += (buf[k] & 0x7F) * mult
                    mult *= 128
                    k += 1
                if buf[k - 1] & 0x80:
                    break  # the length itself is incomplete
                start = k
            stop = start + length
            if stop > end:
                break
            pos = stop
            ptype = first >> 4
            if ptype != _mqtt.PUBLISH:
                if ptype == _mqtt.SUBACK and not subscribed:
                    if buf[start + 2] > 2:
                        sys.stderr.write(f"SUBSCRIBE refused: {bytes(buf[start:stop])!r}\n")
                        sys.exit(2)
                    subscribed = True
                    sys.stdout.write("READY\n")
                    sys.stdout.flush()
                continue
            got += 1
            qos = (first >> 1) & 3
            qos_counts[qos] += 1
            p = start + 2 + ((buf[start] << 8) | buf[start + 1])
            if qos:
                acks.append(PUBACK_HEAD + buf[p : p + 2])
                p += 2
            if first & 0x08:
                dup_flagged += 1
            m = I_RE.search(buf, p, stop)
            if m is None:
                unparsed += 1
                continue
            i = int(m.group(1))
            if i >= n:
                out_of_range += 1
            elif seen[i]:
                duplicates += 1
            else:
                seen[i] = 1
                distinct += 1
        del buf[:pos]
        received += got
        if acks:
            sock.sendall(b"".join(acks))
        if got:
            last_msg = time.monotonic()
        if distinct > distinct_before:
            last_new_at = t_read
            if first_new_at is None:
                first_new_at = t_read
        if len(data) < BATCH_BYTES:
            # Let messages pile up: a few large reads cost far less CPU than one read per
            # message, and every CPU cycle this process takes is one the sender does not get.
            time.sleep(args.batch_wait)
        if distinct == n and all_seen_at is None:
            all_seen_at = time.monotonic()
    try:
        sock.sendall(_mqtt.DISCONNECT_PACKET)
        sock.close()
    except OSError:
        pass
    missing_sample = [i for i in range(n) if not seen[i]][:10]
    out = {
        "received": received,
        "distinct": distinct,
        "lost": n - distinct,
        "duplicates": duplicates,
        "dup_flagged": dup_flagged,
        "out_of_range": out_of_range,
        "unparsed": unparsed,
        "qos_received": qos_counts,
        "missing_sample": missing_sample,
        "reads": reads,
        "first_new_at": first_new_at,
        "last_new_at": last_new_at,
        "cpu_s": (lambda ru: ru.ru_utime + ru.ru_stime)(resource.getrusage(resource.RUSAGE_SELF)),
    }
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
