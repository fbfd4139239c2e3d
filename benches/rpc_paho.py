"""Server-side RPC device, paho-mqtt (plain): reply from ``on_message``.

MQTT 3.1.1, TCP_NODELAY, subscribed at QoS 1 to ``v1/devices/me/rpc/request/+``; ``on_message``
publishes ``{"pong": n}`` to ``v1/devices/me/rpc/response/{id}`` at QoS 1. Prints ``READY``
after the SUBACK; serves until ``--duration``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import paho.mqtt.client as mqtt

REQ = "v1/devices/me/rpc/request/"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=120.0)
    args = p.parse_args()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-rpc-paho", protocol=mqtt.MQTTv311
    )
    client.username_pw_set("rpc-device")
    subscribed = threading.Event()

    def on_socket_open(_c, _u, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def on_connect(c, _u, _f, _rc, _p):
        c.subscribe(REQ + "+", qos=1)

    def on_message(c, _u, msg):
        body = json.loads(msg.payload)
        reply = json.dumps({"pong": (body.get("params") or {}).get("n")})
        c.publish("v1/devices/me/rpc/response/" + msg.topic[len(REQ) :], reply, qos=1)

    client.on_socket_open = on_socket_open
    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("paho: no SUBACK within 10 s")
    print("READY", flush=True)
    time.sleep(args.duration)


if __name__ == "__main__":
    main()
