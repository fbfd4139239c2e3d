"""Fleet, paho-mqtt (plain): N paho clients in one process, each with ``loop_start()``.

paho's way to run a client in the background is one network thread per client
(``loop_start``). Each client: MQTT 3.1.1, TCP_NODELAY, ``connect()`` then ``loop_start()``; no
subscriptions (a ThingsBoard device would add three). The connect phase ends when every client
has its CONNACK or at ``--connect-timeout``; a failure to start a client is reported. The send
loop publishes once per device per second at QoS 1; ``on_publish`` counts the PUBACKs.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import paho.mqtt.client as mqtt
from _fleet import Fleet, fd_report, parse_args, socket_fd, start_one_by_one, ticks
from _sender import TOPIC, cpu_seconds, message


def main() -> None:
    args = parse_args()
    fleet = Fleet(args)
    n = args.devices
    lock = threading.Lock()
    counts = {"connected": 0, "acked": 0}
    all_acked = threading.Event()
    expected = [n * int(args.duration)]

    def on_connect(_c, _u, _f, reason_code, _p):
        if not reason_code.is_failure:
            with lock:
                counts["connected"] += 1

    def on_publish(_c, _u, _mid, reason_code, _p):
        if not reason_code.is_failure:
            with lock:
                counts["acked"] += 1
                if counts["acked"] >= expected[0]:
                    all_acked.set()

    def on_socket_open(_c, _u, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def make(d: int) -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{d}", protocol=mqtt.MQTTv311
        )
        c.username_pw_set(f"fleet-{d}")
        c.on_connect = on_connect
        c.on_publish = on_publish
        c.on_socket_open = on_socket_open
        return c

    def connect(c: mqtt.Client) -> None:
        c.connect(args.host, args.port, keepalive=60)
        c.loop_start()

    st = start_one_by_one(fleet, make, connect, connected=lambda: counts["connected"])
    clients, error, create_s = st.clients, st.error, st.create_s
    while error is None and counts["connected"] < n and time.monotonic() < st.deadline:
        time.sleep(0.01)
    count = counts["connected"]
    connect_s = time.monotonic() - st.t - create_s
    if count < n and error is None:
        error = f"{count}/{n} connected within {args.connect_timeout:.0f} s"
    fleet.out["fds"] = fd_report([(c.is_connected(), socket_fd(c.socket())) for c in clients])
    if not fleet.connected(count, create_s, connect_s, error):
        fleet.finish(mqtt_version=getattr(mqtt, "__version__", None))

    dumps = json.dumps
    sent = 0
    lag = 0.0
    c0 = cpu_seconds()
    first = time.monotonic()
    for k, late in ticks(args.duration):
        lag = max(lag, late)
        base = k * n
        for d, c in enumerate(clients):
            info = c.publish(TOPIC, dumps(message(base + d), separators=(",", ":")), qos=1)
            sent += info.rc == mqtt.MQTT_ERR_SUCCESS
    expected[0] = sent
    if counts["acked"] >= sent:
        all_acked.set()
    all_acked.wait(args.ack_timeout)
    last = time.monotonic()
    fleet.sent(counts["acked"], sent, first, last, cpu_seconds() - c0, lag)
    fleet.finish()


if __name__ == "__main__":
    main()
