"""A tiny ``getSessionLimits`` answerer on plain mosquitto, for clients that wait for one.

tb-mqtt-client 2.0 sends the client-side RPC ``getSessionLimits`` after its CONNACK and sends
no telemetry until an answer arrives (a real ThingsBoard answers it inside the transport,
spec thingsboard-mqtt.md section 8). Plain mosquitto has nobody on the other end, so this
process subscribes to ``v1/devices/me/rpc/request/+`` and answers each ``getSessionLimits`` on
``v1/devices/me/rpc/response/{id}`` with what a freshly installed ThingsBoard sends: the payload
and queue bounds, rate limits unset (JSON ``null``: no limit). Other RPCs are ignored.

Design: the answer comes from a separate process on the same broker as every other sender in
the suite, rather than from our dev server acting as the broker, so that all peers are measured
against the same broker and their ratios stay comparable.

Protocol with the runner (as ``subscriber.py``): prints ``READY`` once subscribed, answers until
``DONE`` (or EOF) on stdin, then prints ``RESULT {"answered": n, "other_rpcs": m}``.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys

import _mqtt

REQUEST_FILTER = b"v1/devices/me/rpc/request/+"
REQUEST_PREFIX = b"v1/devices/me/rpc/request/"
RESPONSE_PREFIX = b"v1/devices/me/rpc/response/"


def answer(max_payload_size: int, max_inflight: int) -> bytes:
    """The ``getSessionLimits`` response of a fresh ThingsBoard install (spec section 8)."""
    limits = {
        "maxPayloadSize": max_payload_size,
        "maxInflightMessages": max_inflight,
        "rateLimits": {"messages": None, "telemetryMessages": None, "telemetryDataPoints": None},
    }
    return json.dumps(limits, separators=(",", ":")).encode()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-payload-size", type=int, default=65536)
    p.add_argument("--max-inflight", type=int, default=100)
    args = p.parse_args()
    body = answer(args.max_payload_size, args.max_inflight)

    sock = _mqtt.connect(args.host, args.port, f"bench-limits-{os.getpid()}")
    sock.sendall(_mqtt.encode_subscribe(1, REQUEST_FILTER, qos=1))
    buf = bytearray()
    answered = others = 0
    next_id = 1
    stdin_fd = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([sock, stdin_fd], [], [], 1.0)
        if stdin_fd in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "DONE":
                break
        if sock not in ready:
            continue
        data = sock.recv(1 << 16)
        if not data:
            break
        buf += data
        packets, used = _mqtt.split_packets(buf)
        del buf[:used]
        out = []
        for ptype, flags, pkt in packets:
            if ptype == _mqtt.SUBACK:
                sys.stdout.write("READY\n")
                sys.stdout.flush()
                continue
            if ptype != _mqtt.PUBLISH:
                continue
            tlen = (pkt[0] << 8) | pkt[1]
            topic = pkt[2 : 2 + tlen]
            pos = 2 + tlen
            if (flags >> 1) & 3:
                out.append(_mqtt.encode_puback((pkt[pos] << 8) | pkt[pos + 1]))
                pos += 2
            try:
                method = json.loads(pkt[pos:]).get("method")
            except (ValueError, AttributeError):
                method = None
            if method != "getSessionLimits" or not topic.startswith(REQUEST_PREFIX):
                others += 1
                continue
            request_id = topic[len(REQUEST_PREFIX) :]
            out.append(_mqtt.encode_publish(RESPONSE_PREFIX + request_id, body, next_id, qos=1))
            next_id = next_id % 65535 + 1
            answered += 1
        if out:
            sock.sendall(b"".join(out))
    try:
        sock.sendall(_mqtt.DISCONNECT_PACKET)
        sock.close()
    except OSError:
        pass
    sys.stdout.write("RESULT " + json.dumps({"answered": answered, "other_rpcs": others}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
