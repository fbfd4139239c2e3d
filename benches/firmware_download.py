"""Firmware download rate: one device fetches an image over MQTT in 64 KiB chunks.

Two servers in one run:

- ``devserver``: our embedded dev server (``DevServer.set_firmware``), which serves chunks and
  pushes the ``fw_*`` attributes itself, as ThingsBoard does;
- ``mosquitto``: a private mosquitto (127.0.0.1, free port) with a scripted ThingsBoard peer
  (paho-mqtt, in this process) that answers each ``v2/fw/request/{r}/chunk/{i}`` with the
  pre-sliced chunk on ``v2/fw/response/{r}/chunk/{i}``.

The device is ``TBDeviceMqttClient(chunk_size=65536)``; it writes the image to a temporary
folder. The rate is image bytes / time from the attribute push to ``on_firmware_update``
(download, SHA256 over the image, fsync and rename included). Neither rival can take part:
the MicroPython SDK never subscribes to the chunk topic and tb-mqtt-client subscribes to
``v2/fw/response/+``, which no chunk topic matches.

    python benches/firmware_download.py [--mib 32] [--chunk 65536] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Broker  # noqa: E402

CHUNK_REQUEST = re.compile(r"v2/fw/request/(\d+)/chunk/(\d+)")


def image(size: int) -> bytes:
    block = os.urandom(1 << 20)
    return (block * (size // len(block) + 1))[:size]


class Peer:
    """The ThingsBoard side on mosquitto: pushes the offer, serves chunks of ``data``."""

    def __init__(self, port: int, data: bytes) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.data = data
        self.sizes: dict[str, int] = {}
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fw-bench-peer")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("v2/fw/request/+/chunk/+", 1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise SystemExit("peer did not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        m = CHUNK_REQUEST.fullmatch(msg.topic)
        if not m:
            return
        req, index = m.group(1), int(m.group(2))
        if msg.payload:
            self.sizes[req] = int(msg.payload)
        size = self.sizes.get(req, 0)
        chunk = self.data[index * size : (index + 1) * size] if size else self.data
        client.publish(f"v2/fw/response/{req}/chunk/{index}", chunk, qos=1)

    def offer(self, title: str, version: str) -> None:
        attrs = {
            "fw_title": title,
            "fw_version": version,
            "fw_size": len(self.data),
            "fw_checksum": hashlib.sha256(self.data).hexdigest(),
            "fw_checksum_algorithm": "SHA256",
        }
        self.client.publish("v1/devices/me/attributes", json.dumps(attrs), qos=1).wait_for_publish()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def download(port: int, token: str, chunk: int, folder: str, start, timeout: float) -> float:
    """Connects a device, calls ``start()`` to offer the image, returns seconds to UPDATED."""
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    done: list[str] = []
    client = TBDeviceMqttClient(
        "127.0.0.1",
        port,
        access_token=token,
        chunk_size=chunk,
        firmware_dir=folder,
        on_firmware_update=lambda path, info: done.append(path),
    )
    if client.connect() is None:
        raise SystemExit(f"device cannot connect: {client.last_error}")
    try:
        t0 = time.perf_counter()
        start()
        deadline = time.monotonic() + timeout
        while not done:
            if time.monotonic() > deadline:
                raise SystemExit(f"download did not finish in {timeout} s")
            client.wait_for_msg(timeout=0.5)
        return time.perf_counter() - t0
    finally:
        client.disconnect()


def bench_mosquitto(data: bytes, args, workdir: Path) -> list[float]:
    broker = Broker(workdir, broker_inflight=20)
    peer = Peer(broker.port, data)
    times = []
    try:
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                t = download(
                    broker.port,
                    "fw-bench",
                    args.chunk,
                    folder,
                    lambda i=i: peer.offer("image.bin", f"m{i}"),
                    args.timeout,
                )
                if Path(folder, "image.bin").stat().st_size != len(data):
                    raise SystemExit("mosquitto: image size differs")
            times.append(t)
    finally:
        peer.stop()
        broker.stop()
    return times


def bench_devserver(data: bytes, args) -> list[float]:
    from thingsboard_sdk.devserver import DevServer

    times = []
    with DevServer() as server:
        token = server.add_device("fw-bench", "FW_BENCH_TOKEN")
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory() as folder:
                t = download(
                    server.port,
                    token,
                    args.chunk,
                    folder,
                    lambda i=i: server.set_firmware("fw-bench", data, "image.bin", f"d{i}"),
                    args.timeout,
                )
                if Path(folder, "image.bin").stat().st_size != len(data):
                    raise SystemExit("devserver: image size differs")
            times.append(t)
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=32, help="image size in MiB (default 32)")
    p.add_argument("--chunk", type=int, default=65536, help="chunk size (default 65536)")
    p.add_argument("--repeat", type=int, default=3, help="downloads per server (median shown)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--only", default="devserver,mosquitto")
    args = p.parse_args()
    data = image(args.mib << 20)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.only.split(","):
            if name == "devserver":
                times = bench_devserver(data, args)
            elif name == "mosquitto":
                times = bench_mosquitto(data, args, Path(workdir))
            else:
                raise SystemExit(f"unknown server {name!r}")
            rates = [len(data) / t / 1e6 for t in times]
            results[name] = statistics.median(rates)
            print(
                f"{name:>10}: {args.mib} MiB in {args.chunk}-byte chunks: "
                f"median {results[name]:.1f} MB/s (runs: {', '.join(f'{r:.1f}' for r in rates)})",
                flush=True,
            )
    verdict = all(r >= 20 for r in results.values())
    print(f"target >= 20 MB/s: {'met' if verdict else 'NOT met'}")
    print("RESULT " + json.dumps({"mib": args.mib, "chunk": args.chunk, "mb_per_s": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
