"""Datapoint counter: a raw-socket QoS 1 subscriber that parses every telemetry payload.

Same protocol with the runner as ``subscriber.py`` (``READY``, ``DONE`` on stdin, ``RESULT``).
Each payload is decoded with ``json.loads`` and every datapoint is counted: a ``{"ts",
"values"}`` entry (alone or in a list) counts ``len(values)`` once per distinct ``ts`` (the
sender gives every entry its own ``ts``), so a repeated entry is a duplicate, not a datapoint.
``--datapoints`` is how many the sender sends; ``lost`` is what never arrived.

``--gateway`` subscribes to ``v1/gateway/telemetry`` and counts distinct ``(device, key, value)``
data points over every device of every payload (``{"A": [entry, ...], "B": [...]}``, several
devices per message when a client merges them): ``benches/gateway.py``'s senders give every
data point its own value.

``--per-key`` counts distinct ``(ts, key)`` pairs instead, what ThingsBoard stores (a later value
for the same key and ``ts`` overwrites the earlier one): for clients that split one entry over
several messages or merge several calls into one entry (tb-mqtt-client 2.0 does both). An object
without ``ts`` counts under its own message (the server gives it the arrival time). It also
reports ``calls_arrived``: distinct ``i`` values seen (the telemetry suite's call number).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import sys
import time

import _mqtt
from _sender import TOPIC

PUBACK_HEAD = b"\x40\x02"


def count(payload: bytes, seen: set) -> tuple[int, int]:
    """(new datapoints, duplicate entries) in one payload."""
    body = json.loads(payload)
    entries = body if isinstance(body, list) else [body]
    new = dups = 0
    for e in entries:
        ts = e["ts"]
        if ts in seen:
            dups += 1
            continue
        seen.add(ts)
        new += len(e["values"])
    return new, dups


class PerKey:
    """Distinct ``(ts, key)`` pairs: one bit mask of keys per ``ts``, a bit per key name."""

    def __init__(self) -> None:
        self.masks: dict = {}
        self.bits: dict[str, int] = {}
        self.calls: set = set()
        self.messages = 0

    def count(self, payload: bytes) -> tuple[int, int]:
        """(new datapoints, entries that repeated a datapoint already counted) in one payload."""
        body = json.loads(payload)
        self.messages += 1
        entries = body if isinstance(body, list) else [body]
        new = dups = 0
        bits = self.bits
        for e in entries:
            if "ts" in e and isinstance(e.get("values"), dict):
                ts, values = e["ts"], e["values"]
            else:
                ts, values = ("message", self.messages), e
            mask = 0
            for k in values:
                b = bits.get(k)
                if b is None:
                    b = bits[k] = 1 << len(bits)
                mask |= b
            old = self.masks.get(ts, 0)
            fresh = mask & ~old
            if fresh != mask:
                dups += 1
            new += bin(fresh).count("1")
            self.masks[ts] = old | mask
            if "i" in values:
                self.calls.add(values["i"])
        return new, dups


class GatewayCount:
    """Distinct ``(device, key, value)`` data points over gateway telemetry payloads.

    Payloads are parsed once the sender is done (``DONE``), not while it runs: parsing a fast
    sender's 200,000 data points as they come would take a CPU the sender and the broker
    share on a small machine, and slow the client measured rather than count it.
    """

    def __init__(self) -> None:
        self.seen: set = set()
        self.devices: set = set()
        self.pending: list | None = []

    def count(self, payload: bytes) -> tuple[int, int]:
        """(new datapoints, entries that repeated a datapoint already counted) in one payload;
        (0, 0) while the payload waits for :meth:`catch_up`."""
        if self.pending is not None:
            self.pending.append(payload)
            return 0, 0
        return self._count(payload)

    def catch_up(self) -> tuple[int, int, int]:
        """Counts the payloads kept so far (later ones are counted as they come): new data
        points, repeated entries, payloads that did not parse."""
        pending, self.pending = self.pending or [], None
        new = dups = bad = 0
        for payload in pending:
            try:
                n, d = self._count(payload)
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
                continue
            new, dups = new + n, dups + d
        return new, dups, bad

    def _count(self, payload: bytes) -> tuple[int, int]:
        new = dups = 0
        for device, entries in json.loads(payload).items():
            self.devices.add(device)
            for e in entries:
                values = e["values"] if "ts" in e and isinstance(e.get("values"), dict) else e
                before = len(self.seen)
                self.seen.update((device, k, repr(v)) for k, v in values.items())
                fresh = len(self.seen) - before
                new += fresh
                dups += fresh < len(values)
        return new, dups


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--datapoints", type=int, required=True)
    p.add_argument("--idle", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--per-key", action="store_true", help="count distinct (ts, key) pairs")
    p.add_argument("--gateway", action="store_true", help="count gateway telemetry")
    args = p.parse_args()
    per_key = PerKey() if args.per_key else GatewayCount() if args.gateway else None
    topic = "v1/gateway/telemetry" if args.gateway else TOPIC

    sock = _mqtt.connect(args.host, args.port, f"bench-dp-{os.getpid()}")
    sock.sendall(_mqtt.encode_subscribe(1, topic.encode(), qos=1))
    seen: set = set()
    datapoints = messages = duplicates = unparsed = 0
    buf = bytearray()
    subscribed = done = False
    t_start = last_msg = time.monotonic()
    done_at = None
    first_at = last_new_at = None
    stdin_fd = sys.stdin.fileno()
    watch = [sock, stdin_fd]
    while True:
        now = time.monotonic()
        if now - t_start > args.timeout:
            break
        if done and (datapoints >= args.datapoints or now - max(last_msg, done_at) >= args.idle):
            break
        ready, _, _ = select.select(watch, [], [], 0.1)
        if stdin_fd in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "DONE":
                done, done_at = True, time.monotonic()
                watch = [sock]
                if isinstance(per_key, GatewayCount):
                    new, dups, bad = per_key.catch_up()
                    datapoints, duplicates, unparsed = (
                        datapoints + new,
                        duplicates + dups,
                        unparsed + bad,
                    )
        if sock not in ready:
            continue
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
        packets, used = _mqtt.split_packets(buf)
        del buf[:used]
        acks = []
        t_read = time.monotonic()
        for ptype, flags, body in packets:
            if ptype == _mqtt.SUBACK and not subscribed:
                subscribed = True
                sys.stdout.write("READY\n")
                sys.stdout.flush()
                continue
            if ptype != _mqtt.PUBLISH:
                continue
            messages += 1
            qos = (flags >> 1) & 3
            tlen = (body[0] << 8) | body[1]
            pos = 2 + tlen
            if qos:
                acks.append(PUBACK_HEAD + body[pos : pos + 2])
                pos += 2
            try:
                new, dups = per_key.count(body[pos:]) if per_key else count(body[pos:], seen)
            except (ValueError, KeyError, TypeError, AttributeError):
                unparsed += 1
                continue
            datapoints += new
            duplicates += dups
            if new:
                last_new_at = t_read
                if first_at is None:
                    first_at = t_read
        if acks:
            sock.sendall(b"".join(acks))
        if packets:
            last_msg = time.monotonic()
    try:
        sock.sendall(_mqtt.DISCONNECT_PACKET)
        sock.close()
    except OSError:
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "messages": messages,
        "datapoints": datapoints,
        "lost": args.datapoints - datapoints,
        "duplicate_entries": duplicates,
        "unparsed": unparsed,
        "first_new_at": first_at,
        "last_new_at": last_new_at,
        "cpu_s": ru.ru_utime + ru.ru_stime,
    }
    if isinstance(per_key, PerKey):
        out["calls_arrived"] = len(per_key.calls)
    if isinstance(per_key, GatewayCount):
        out["devices"] = len(per_key.devices)
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
