"""paho-mqtt, plain: QoS 1 publish of the benchmark messages, waiting on every PUBACK.

Runs in ``benches/.venvs/paho`` (upstream paho-mqtt; tb-mqtt-client replaces it with a fork).
MQTT 3.1.1, TCP_NODELAY set in ``on_socket_open``, in-flight window ``--window``. paho's message
ids are 16-bit, so it cannot hold more than 65,535 unacknowledged messages: the queue is bounded
(``--queue``) and a publish refused with ``MQTT_ERR_QUEUE_SIZE`` waits for an ack and is retried
(counted as ``retries``), as an application must do.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import paho.mqtt.client as mqtt
from _sender import TOPIC, Clock, message, parse_args, report


def main() -> None:
    args = parse_args(lambda p: p.add_argument("--queue", type=int, default=10_000))
    n = args.messages
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="bench-paho",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(args.token)
    client.max_inflight_messages_set(args.window)
    client.max_queued_messages_set(args.queue)

    def on_socket_open(_client, _userdata, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    acked = 0
    failed_rc = 0
    all_acked = threading.Event()
    progress = threading.Condition()

    def on_publish(_client, _userdata, _mid, reason_code, _properties):
        nonlocal acked, failed_rc
        with progress:
            if reason_code.is_failure:
                failed_rc += 1
            else:
                acked += 1
            progress.notify()
            if acked + failed_rc >= n:
                all_acked.set()

    connected = threading.Event()
    client.on_socket_open = on_socket_open
    client.on_publish = on_publish
    client.on_connect = lambda *_a: connected.set()
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit("paho: no CONNACK within 10 s")

    clock = Clock()
    clock.start()
    deadline = time.monotonic() + args.timeout
    infos = []
    publish_errors = retries = 0
    dumps = json.dumps
    queue_full = mqtt.MQTT_ERR_QUEUE_SIZE
    for i in range(n):
        data = dumps(message(i), separators=(",", ":"))
        info = client.publish(TOPIC, data, qos=args.qos)
        while info.rc == queue_full and time.monotonic() < deadline:
            retries += 1
            with progress:
                progress.wait(0.05)
            info = client.publish(TOPIC, data, qos=args.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            publish_errors += 1
            continue
        infos.append(info)
    all_acked.wait(max(0.0, deadline - time.monotonic()))
    clock.stop()
    unacked = sum(1 for info in infos if not info.is_published())
    client.disconnect()
    client.loop_stop()
    report(
        clock,
        sent=n - publish_errors,
        acked=acked,
        failed=n - acked,
        publish_errors=publish_errors,
        retries=retries,
        puback_errors=failed_rc,
        unacked_at_end=unacked,
        window=args.window,
        queue=args.queue,
        qos=args.qos,
    )


if __name__ == "__main__":
    main()
