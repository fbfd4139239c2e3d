"""``python -m thingsboard_sdk simulate``: many simulated devices from one process.

Each device sends random-walk telemetry every ``--interval`` seconds, keeps an attribute
subscription, and answers server-side RPC. One thread drives them all (``DeviceGroup``); the
network runs on the engine's shared runtime, so N devices cost N tasks, not N threads.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from typing import Any, Optional

from .exceptions import QueueFullError
from .fleet import DeviceGroup, connect_all
from .tb_device_mqtt import TBDeviceMqttClient


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the ``simulate`` options to a parser."""
    p.add_argument("--devices", type=int, default=10, help="number of devices (default 10)")
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between telemetry messages per device"
    )
    p.add_argument("--server", default=None, help="HOST:PORT of the MQTT server")
    p.add_argument("--token-prefix", default="sim-", help="device i uses token PREFIX+i")
    p.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)"
    )
    p.add_argument(
        "--devserver", action="store_true", help="start an embedded dev server with the devices"
    )
    p.add_argument("--qos", type=int, default=1, choices=(0, 1))
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def _parse_server(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--server must be HOST:PORT, got {text!r}")
    return host, int(port)


class _Device:
    __slots__ = ("client", "values", "attr_updates", "rpcs")

    def __init__(self, client: TBDeviceMqttClient) -> None:
        self.client = client
        self.values = {"temperature": 22.0, "humidity": 50.0}
        self.attr_updates = 0
        self.rpcs = 0

    def step(self, rng: random.Random) -> dict:
        t = self.values["temperature"] + rng.uniform(-0.5, 0.5)
        h = min(100.0, max(0.0, self.values["humidity"] + rng.uniform(-1.0, 1.0)))
        self.values = {"temperature": round(t, 2), "humidity": round(h, 2)}
        return self.values


def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    """Runs the simulation; returns the exit code."""
    if args.devices < 1:
        print("simulate: --devices must be at least 1", file=sys.stderr)
        return 2
    if args.interval <= 0:
        print("simulate: --interval must be positive", file=sys.stderr)
        return 2
    server = None
    tokens = [f"{args.token_prefix}{i}" for i in range(args.devices)]
    if args.devserver:
        from .devserver import DevServer

        server = DevServer(port=0, quiet=True)
        for i, tok in enumerate(tokens):
            server.add_device(f"sim-device-{i}", tok)
        host, port = "127.0.0.1", server.port
    else:
        try:
            host, port = _parse_server(args.server or "127.0.0.1:1883")
        except ValueError as e:
            print(f"simulate: {e}", file=sys.stderr)
            return 2
    try:
        return _simulate(args, host, port, tokens, out)
    finally:
        if server is not None:
            server.stop()


def _simulate(args: argparse.Namespace, host: str, port: int, tokens: list, out: Any) -> int:
    rng = random.Random(1)
    devices = [
        _Device(TBDeviceMqttClient(host, port, access_token=tok, quality_of_service=args.qos))
        for tok in tokens
    ]
    for d in devices:

        def on_attr(result: Any, *_: Any, d: _Device = d) -> None:
            d.attr_updates += 1

        def on_rpc(request_id: str, body: Any, d: _Device = d) -> None:
            d.rpcs += 1
            d.client.send_rpc_reply(request_id, {"ok": True, "method": body.get("method")})

        d.client.subscribe_to_all_attributes(on_attr)
        d.client.set_server_side_rpc_request_handler(on_rpc)
    t0 = time.monotonic()
    connected = connect_all([d.client for d in devices], timeout=60)
    connect_s = time.monotonic() - t0
    print(
        f"connected {connected}/{len(devices)} devices to {host}:{port} in {connect_s:.2f} s",
        file=out,
        flush=True,
    )
    group = DeviceGroup([d.client for d in devices])
    sent = errors = 0
    start = time.monotonic()
    end = None if args.duration is None else start + args.duration
    next_tick = start
    next_report = start + 1.0
    last_sent, last_t = 0, start
    try:
        while end is None or time.monotonic() < end:
            now = time.monotonic()
            if now >= next_tick:
                for d in devices:
                    try:
                        d.client.send_telemetry(d.step(rng))
                        sent += 1
                    except QueueFullError:
                        errors += 1
                next_tick += args.interval
                if next_tick < now:
                    next_tick = now + args.interval
            if not args.quiet and now >= next_report:
                acked = sent - sum(d.client._engine.queued for d in devices)
                rate = (sent - last_sent) / max(1e-9, now - last_t)
                up = sum(1 for d in devices if d.client.connected)
                print(
                    f"\rconnected {up:>6}  sent {sent:>9}  acknowledged {acked:>9}  "
                    f"errors {errors:>5}  {rate:>9.0f} msgs/s",
                    end="",
                    file=out,
                    flush=True,
                )
                last_sent, last_t = sent, now
                next_report = now + 1.0
            wait = min(next_tick, next_report) - time.monotonic()
            if end is not None:
                wait = min(wait, end - time.monotonic())
            group.wait_for_msg(timeout=max(0.0, wait))
    except KeyboardInterrupt:
        pass
    flushed = all(d.client.flush(timeout=10) for d in devices)
    elapsed = time.monotonic() - start
    acked = sent - sum(d.client._engine.queued for d in devices)
    for d in devices:
        d.client.disconnect()
    print(file=out)
    print(
        f"summary: {len(devices)} devices, {connected} connected in {connect_s:.2f} s; "
        f"sent {sent}, acknowledged {acked}, errors {errors}; "
        f"{sent / max(elapsed, 1e-9):.0f} msgs/s over {elapsed:.1f} s; "
        f"attribute updates {sum(d.attr_updates for d in devices)}, "
        f"RPCs answered {sum(d.rpcs for d in devices)}",
        file=out,
        flush=True,
    )
    return 0 if connected == len(devices) and flushed else 1


def main(argv: Optional[list] = None) -> int:
    """Entry point when run on its own."""
    p = argparse.ArgumentParser(prog="python -m thingsboard_sdk simulate")
    add_arguments(p)
    return run(p.parse_args(argv))
