"""Server-side RPC device, ours: ``set_server_side_rpc_request_handler`` + ``wait_for_msg()``.

The handler replies with ``send_rpc_reply(request_id, {"pong": n})``. On mosquitto the client
also receives its own reply back (it subscribes to ``v1/devices/me/rpc/response/+`` for
client-side RPC) and drops it as an echo. Prints ``READY`` once connected (``connect()`` returns
after the SUBACKs); serves until ``--duration`` seconds pass or the runner ends it.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=120.0)
    args = p.parse_args()
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    client = TBDeviceMqttClient(args.host, args.port, access_token="rpc-device")

    def on_rpc(request_id, body):
        client.send_rpc_reply(request_id, {"pong": (body.get("params") or {}).get("n")})

    client.set_server_side_rpc_request_handler(on_rpc)
    if client.connect() is None:
        raise SystemExit(f"connect failed: {client.last_error}")
    print("READY", flush=True)
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        client.wait_for_msg(timeout=1.0)
    sys.exit(0)


if __name__ == "__main__":
    main()
