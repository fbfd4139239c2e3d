"""Server-side RPC device, tb-mqtt-client: its ``set_server_side_rpc_request_handler`` API.

The handler runs on paho's network thread and replies with
``send_rpc_reply(request_id, {"pong": n})``, as tb-mqtt-client's examples do. Its defaults are
kept (no TCP_NODELAY). Prints ``READY`` once ``is_connected()``; serves until ``--duration``.
"""

from __future__ import annotations

import argparse
import logging
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=120.0)
    args = p.parse_args()
    logging.getLogger("tb_connection").setLevel(logging.ERROR)
    from tb_device_mqtt import TBDeviceMqttClient

    client = TBDeviceMqttClient(args.host, port=args.port, username="rpc-device")

    def on_rpc(request_id, body):
        client.send_rpc_reply(request_id, {"pong": (body.get("params") or {}).get("n")})

    client.set_server_side_rpc_request_handler(on_rpc)
    client.connect()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not client.is_connected():
        raise SystemExit("tb-mqtt-client: not connected within 10 s")
    print("READY", flush=True)
    time.sleep(args.duration)


if __name__ == "__main__":
    main()
