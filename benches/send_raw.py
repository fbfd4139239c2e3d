"""Raw ceiling: pre-encoded MQTT 3.1.1 QoS 1 (or 0) PUBLISH packets over a TCP_NODELAY socket.

At ``--qos 0`` it writes ``--window`` packets per ``send`` until all are written.

Every packet is encoded before the clock starts; the loop keeps ``--window`` packet ids in flight,
sends one more packet for each PUBACK, and stops when every packet is acknowledged. What is left
is the broker's cost plus a minimal client: the ceiling the other senders are compared with.
"""

from __future__ import annotations

import select
import time

import _mqtt
from _sender import TOPIC, Clock, parse_args, payload, report


def main() -> None:
    args = parse_args()
    n, window = args.messages, max(1, min(args.window, 65535))
    topic = TOPIC.encode()
    # Packet ids cycle through 1..65535; with window <= 65535 no two in flight share one.
    packets = [_mqtt.encode_publish(topic, payload(i), i % 65535 + 1, args.qos) for i in range(n)]

    sock = _mqtt.connect(args.host, args.port, "bench-raw", username=args.token)
    sock.setblocking(False)
    inflight: set[int] = set()
    acked = sent = 0
    unexpected = 0
    buf = bytearray()
    clock = Clock()
    clock.start()
    deadline = time.monotonic() + args.timeout
    if args.qos == 0:
        # QoS 0: write every packet, ``window`` packets per send(); "acked" means written.
        sock.setblocking(True)
        for k in range(0, n, window):
            sock.sendall(b"".join(packets[k : k + window]))
            if time.monotonic() > deadline:
                break
            sent = acked = min(n, k + window)
    while acked < n:
        if sent < n and len(inflight) < window:
            k = min(window - len(inflight), n - sent)
            batch = packets[sent : sent + k]
            sock.setblocking(True)
            sock.sendall(b"".join(batch))
            sock.setblocking(False)
            inflight.update(i % 65535 + 1 for i in range(sent, sent + k))
            sent += k
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([sock], [], [], min(remaining, 1.0))
        if not ready:
            continue
        data = sock.recv(1 << 16)
        if not data:
            break
        buf += data
        pkts, used = _mqtt.split_packets(buf)
        del buf[:used]
        for ptype, _flags, body in pkts:
            if ptype == _mqtt.PUBACK and len(body) == 2:
                pid = (body[0] << 8) | body[1]
                if pid in inflight:
                    inflight.remove(pid)
                    acked += 1
                    continue
            unexpected += 1
    clock.stop()
    try:
        sock.setblocking(True)
        sock.sendall(_mqtt.DISCONNECT_PACKET)
        sock.close()
    except OSError:
        pass
    report(
        clock,
        sent=sent,
        acked=acked,
        failed=n - acked,
        unexpected_packets=unexpected,
        window=window,
        qos=args.qos,
    )


if __name__ == "__main__":
    main()
