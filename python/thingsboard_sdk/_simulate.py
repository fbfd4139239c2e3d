"""``python -m thingsboard_sdk simulate``: many simulated devices from one process.

Each device sends random-walk telemetry (``temperature``, ``humidity``) every ``--interval``
seconds, subscribes to its shared attributes and answers server-side RPC. One thread drives
them all through :class:`~thingsboard_sdk.fleet.DeviceGroup`; the network runs on the engine's
shared runtime, so N devices cost N tasks, not N threads.

With ``--devserver`` the command starts an embedded dev server, adds a provisioning profile to
it and lets every device provision itself (ThingsBoard's device provisioning, with the access
token ``PREFIX<i>`` and the name ``sim-device-<i>``). Once they are connected the server pushes
one shared attribute to each device and sends each one server-side RPC, so every path runs; the
summary then also gives what the server recorded.

Output: the connect line and the summary on stdout; the live progress line on stderr (one
line rewritten in place on a terminal, one line per second otherwise). Ctrl-C (or SIGTERM)
stops the run: queued messages are flushed (bounded), the summary is printed. Exit codes:
0 all devices connected and every message acknowledged, 1 otherwise, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import math
import random
import secrets
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from .exceptions import ProvisionError, QueueFullError
from .fleet import DeviceGroup, connect_all
from .tb_device_mqtt import TBDeviceMqttClient

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Seconds the end of a run may spend waiting for outstanding acknowledgements (all devices).
FLUSH_TIMEOUT = 10.0
# Open files beyond one per connection: the interpreter, the engine, the dev server's listener.
FD_MARGIN = 64


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:1883
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT (e.g. 127.0.0.1:1883), got {text!r}")
    return host, int(port)


_host_port.__name__ = "HOST:PORT"  # argparse names the type in its messages


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the ``simulate`` options to a parser."""
    p.add_argument(
        "--devices", type=_positive_int, default=10, metavar="N", help="devices (default 10)"
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds between two telemetry messages of a device (default 1)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--server",
        type=_host_port,
        default=None,
        metavar="HOST:PORT",
        help="MQTT server (ThingsBoard or a broker; default 127.0.0.1:1883)",
    )
    where.add_argument(
        "--devserver",
        action="store_true",
        help="start a dev server on a free port; the devices provision themselves there",
    )
    p.add_argument(
        "--token-prefix",
        default="sim-",
        metavar="P",
        help="device i uses the access token P<i> (default sim-)",
    )
    p.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="T",
        help="seconds to send before stopping (default: until Ctrl-C)",
    )
    p.add_argument("--qos", type=int, default=1, choices=(0, 1), help="QoS (default 1)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")


# ---- the devices ------------------------------------------------------------------------------


class _Device:
    __slots__ = ("name", "client", "temperature", "humidity", "attr_updates", "rpcs", "up")

    def __init__(self, name: str, client: TBDeviceMqttClient) -> None:
        self.name = name
        self.client = client
        self.temperature = 22.0
        self.humidity = 50.0
        self.attr_updates = 0
        self.rpcs = 0
        self.up = False

    def step(self, rng: random.Random) -> dict:
        """The next random-walk reading."""
        self.temperature = round(self.temperature + rng.uniform(-0.5, 0.5), 2)
        self.humidity = round(min(100.0, max(0.0, self.humidity + rng.uniform(-1.0, 1.0))), 2)
        return {"temperature": self.temperature, "humidity": self.humidity}


@dataclass
class _Stats:
    devices: int = 0
    connected: int = 0
    connect_s: float = 0.0
    telemetry: int = 0  # telemetry messages accepted by the clients
    rpc_replies: int = 0  # RPC replies accepted by the clients
    refused: int = 0  # sends the client refused (queue full, bad state)
    elapsed: float = 0.0
    acked: Optional[int] = None  # None at QoS 0 (nothing is acknowledged)
    interrupted: bool = False
    server: dict = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.telemetry + self.rpc_replies

    @property
    def errors(self) -> int:
        unacked = 0 if self.acked is None else self.sent - self.acked
        return self.refused + unacked


class _Interrupted(Exception):
    """SIGTERM, handled as Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Interrupted()


def _raise_nofile(needed: int) -> Optional[str]:
    """Raises the soft open-files limit towards ``needed``; an error text if it cannot."""
    try:
        import resource
    except ImportError:  # not POSIX: nothing to do
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        return f"needs about {needed} open files, and this process may open {soft} (ulimit -n)"
    return None


# ---- the run ----------------------------------------------------------------------------------


class _Simulation:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.stats = _Stats(devices=args.devices)
        self.server: Any = None
        self.devices: list[_Device] = []
        self.rpc_calls: list = []
        self.rng = random.Random()
        self.tty = bool(getattr(err, "isatty", lambda: False)())
        self.progress_shown = False
        self.start: Optional[float] = None  # when the send loop began

    def say(self, text: str) -> None:
        self.end_progress()
        print(text, file=self.out, flush=True)

    # -- set up ---------------------------------------------------------------------------------

    def start_devserver(self) -> tuple[str, int]:
        from .devserver import DevServer

        n, interval, duration = self.args.devices, self.args.interval, self.args.duration
        # Keep every point of a bounded run, so that the summary can count them all.
        cap = 10_000 if duration is None else max(10_000, 2 * (math.ceil(duration / interval) + 4))
        self.server = DevServer("127.0.0.1", 0, max_telemetry_per_device=cap)
        key, secret = "simulate-" + secrets.token_hex(4), secrets.token_urlsafe(12)
        self.server.add_provision_profile(key, secret)
        host, port = self.server.host, self.server.port
        t0 = time.monotonic()

        def provision(i: int) -> None:
            request = TBDeviceMqttClient.get_provision_request(
                key, secret, device_name=f"sim-device-{i}", access_token=self.token(i)
            )
            TBDeviceMqttClient.provision(host, port, request, timeout=10)

        # A few sessions at a time: each is a short exchange, so this is about 1 ms a device.
        with ThreadPoolExecutor(max_workers=min(8, n)) as pool:
            for f in [pool.submit(provision, i) for i in range(n)]:
                f.result()
        self.say(
            f"dev server on {host}:{port}: {n} devices provisioned themselves "
            f"(profile {key!r}) in {time.monotonic() - t0:.2f} s"
        )
        return host, port

    def token(self, i: int) -> str:
        return f"{self.args.token_prefix}{i}"

    def make_devices(self, host: str, port: int) -> None:
        for i in range(self.args.devices):
            client = TBDeviceMqttClient(
                host,
                port,
                access_token=self.token(i),
                quality_of_service=self.args.qos,
                firmware_updates=False,
            )
            d = _Device(f"sim-device-{i}", client)

            def on_attributes(result: Any, *_: Any, d: _Device = d) -> None:
                d.attr_updates += 1

            def on_rpc(request_id: str, body: Any, d: _Device = d) -> None:
                d.rpcs += 1
                method = body.get("method") if isinstance(body, dict) else None
                reply = {"ok": True, "method": method, "temperature": d.temperature}
                try:
                    d.client.send_rpc_reply(request_id, reply)
                    self.stats.rpc_replies += 1
                except (QueueFullError, OSError):
                    self.stats.refused += 1

            client.subscribe_to_all_attributes(on_attributes)
            client.set_server_side_rpc_request_handler(on_rpc)
            self.devices.append(d)

    def connect(self, host: str, port: int) -> None:
        t0 = time.monotonic()
        connect_all([d.client for d in self.devices], timeout=max(30.0, len(self.devices) / 100))
        self.stats.connect_s = time.monotonic() - t0
        for d in self.devices:
            d.up = d.client.connected
        self.stats.connected = sum(d.up for d in self.devices)
        self.say(
            f"connected {self.stats.connected}/{len(self.devices)} devices to {host}:{port} "
            f"in {self.stats.connect_s:.2f} s"
        )
        failed = [d for d in self.devices if not d.up]
        if failed:
            self.say(f"  {failed[0].name}: {failed[0].client.last_error}")

    def poke_from_server(self) -> None:
        """The dev server pushes one shared attribute to each device and sends it one RPC."""
        for d in self.devices:
            if d.up:
                self.server.set_shared_attributes(d.name, {"targetTemperature": 21.5})
                self.rpc_calls.append(self.server.start_rpc(d.name, "getState", {}, expiry=30))

    # -- the send loop --------------------------------------------------------------------------

    def acked(self) -> Optional[int]:
        if self.args.qos == 0:
            return None
        # Everything the clients accepted minus what still awaits its PUBACK.
        return self.stats.sent - sum(d.client._engine.queued for d in self.devices)

    def send_all(self) -> None:
        for d in self.devices:
            if not d.up:
                continue
            try:
                d.client.send_telemetry(d.step(self.rng))
                self.stats.telemetry += 1
            except (QueueFullError, OSError):
                self.stats.refused += 1

    def progress(self, rate: float) -> None:
        acked = self.acked()
        up = sum(1 for d in self.devices if d.client.connected)
        line = (
            f"connected {up}/{len(self.devices)}  sent {self.stats.sent}  "
            f"acknowledged {'-' if acked is None else acked}  errors {self.stats.refused}  "
            f"{rate:.0f} msgs/s"
        )
        if self.tty:
            print(f"\r{line}\x1b[K", end="", file=self.err, flush=True)
            self.progress_shown = True
        else:
            print(line, file=self.err, flush=True)

    def end_progress(self) -> None:
        if self.progress_shown:
            print(file=self.err, flush=True)
            self.progress_shown = False

    def loop(self) -> None:
        group = DeviceGroup([d.client for d in self.devices])
        interval, duration = self.args.interval, self.args.duration
        self.start = start = time.monotonic()
        end = math.inf if duration is None else start + duration
        next_tick, next_report = start, start + 1.0
        last_count, last_t = 0, start
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_tick:
                self.send_all()
                next_tick += interval
                if next_tick <= now:  # fell behind: skip the missed ticks
                    next_tick = now + interval
            if now >= next_report:
                acked = self.acked()
                count = self.stats.sent if acked is None else acked
                if not self.args.quiet:
                    self.progress((count - last_count) / max(1e-9, now - last_t))
                last_count, last_t = count, now
                next_report = now + 1.0
            wake = min(next_tick, next_report, end)
            group.wait_for_msg(timeout=max(0.0, wake - time.monotonic()))

    # -- the end --------------------------------------------------------------------------------

    def finish(self) -> None:
        """Flushes (bounded; a second Ctrl-C skips it), disconnects, stops the server."""
        self.end_progress()
        if self.start is not None:
            self.stats.elapsed = time.monotonic() - self.start
        deadline = time.monotonic() + FLUSH_TIMEOUT
        try:
            for d in self.devices:
                if d.up:
                    d.client.flush(timeout=max(0.0, deadline - time.monotonic()))
        except (KeyboardInterrupt, _Interrupted):
            pass
        self.stats.acked = self.acked()
        for d in self.devices:
            # Already flushed above: closing must not wait another 5 s per device.
            d.client._engine.disconnect(0.0)
        if self.server is not None:
            self.stats.server = self.server_counts()
            self.server.stop()

    def server_counts(self) -> dict:
        s = self.server
        names = [d.name for d in self.devices]
        stored = sum(len(s.telemetry(n, "temperature")) for n in names)
        replied = 0
        for call in self.rpc_calls:
            try:
                replied += call.poll()[0]
            except TimeoutError:  # expired unanswered
                pass
        return {
            "devices": len(s.devices()),
            "telemetry": stored,
            "attribute pushes": sum(1 for d in self.devices if d.up),
            "RPCs sent": len(self.rpc_calls),
            "RPC replies": replied,
        }

    def summary(self) -> str:
        st = self.stats
        acked = "n/a (QoS 0)" if st.acked is None else str(st.acked)
        rate_count = st.sent if st.acked is None else st.acked
        lines = [
            f"summary: devices {st.devices}, connected {st.connected} in {st.connect_s:.2f} s; "
            f"sent {st.sent} (telemetry {st.telemetry}, RPC replies {st.rpc_replies}), "
            f"acknowledged {acked}, errors {st.errors}; "
            f"{rate_count / max(st.elapsed, 1e-9):.0f} msgs/s over {st.elapsed:.1f} s; "
            f"attribute updates {sum(d.attr_updates for d in self.devices)}, "
            f"RPCs answered {sum(d.rpcs for d in self.devices)}"
            + ("; interrupted" if st.interrupted else "")
        ]
        if st.server:
            srv = st.server
            lines.append(
                f"server: devices {srv['devices']}, telemetry stored {srv['telemetry']}, "
                f"attribute pushes {srv['attribute pushes']}, RPCs sent {srv['RPCs sent']}, "
                f"RPC replies received {srv['RPC replies']}"
            )
        return "\n".join(lines)

    def ok(self) -> bool:
        st = self.stats
        return st.connected == st.devices and st.errors == 0


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Runs the simulation; returns the exit code."""
    per_device = 2 if args.devserver else 1  # with --devserver both ends live in this process
    problem = _raise_nofile(args.devices * per_device + FD_MARGIN)
    if problem:
        both = " (with --devserver each device needs two: client and server side)"
        print(
            f"simulate: --devices {args.devices} {problem}{both if args.devserver else ''}",
            file=err,
        )
        return EXIT_USAGE
    sim = _Simulation(args, out, err)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: Ctrl-C only
        pass
    # Design: from here on Ctrl-C (or SIGTERM), wherever it lands, ends the run with a summary.
    try:
        try:
            if args.devserver:
                host, port = sim.start_devserver()
            else:
                host, port = args.server or ("127.0.0.1", 1883)
            sim.make_devices(host, port)
            sim.connect(host, port)
            if sim.stats.connected == 0:
                sim.say("simulate: no device connected; stopping")
            else:
                if sim.server is not None:
                    sim.poke_from_server()
                sim.loop()
        except (KeyboardInterrupt, _Interrupted):
            sim.stats.interrupted = True
        except ProvisionError as exc:
            sim.say(f"simulate: provisioning on the dev server failed: {exc}")
        finally:
            try:
                sim.finish()
            except (KeyboardInterrupt, _Interrupted):
                sim.stats.interrupted = True
                if sim.server is not None:
                    sim.server.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sim.say(sim.summary())
    return EXIT_OK if sim.ok() else EXIT_FAILED


def main(argv: Optional[list] = None) -> int:
    """Entry point when run on its own."""
    p = argparse.ArgumentParser(prog="python -m thingsboard_sdk simulate")
    add_arguments(p)
    return run(p.parse_args(argv))
