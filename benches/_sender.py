"""Shared plumbing for the sender scripts (standard library only: each runs in its own venv).

A sender script connects, sends ``--messages`` telemetry messages at ``--qos`` 1 (or 0), waits
until all are acknowledged (QoS 1: PUBACK) or written to the socket (QoS 0), bounded by
``--timeout``, and prints one line ``RESULT {json}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

TOPIC = "v1/devices/me/telemetry"


def payload(i: int) -> bytes:
    """The benchmark message, compact JSON as ThingsBoard clients send it."""
    return b'{"temperature":25.5,"humidity":60,"i":%d}' % i


def message(i: int) -> dict:
    """The same message as a dict, for clients that serialize it themselves."""
    return {"temperature": 25.5, "humidity": 60, "i": i}


def parse_args(extra=None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--window", type=int, default=64, help="QoS 1 in-flight window where settable")
    p.add_argument("--token", default="bench-token")
    p.add_argument("--timeout", type=float, default=60.0, help="bound on the whole send + wait")
    p.add_argument("--qos", type=int, choices=(0, 1), default=1)
    if extra:
        extra(p)
    return p.parse_args()


def cpu_seconds() -> float:
    """User + system CPU of this whole process (every thread) so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far per thread name (Linux /proc), summed over threads of the same name.

    Shows where a client spends: the Python thread that calls ``send_*`` versus its network
    thread(s) (paho's loop thread, the Rust engine's tokio workers).
    """
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            stat = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


class Clock:
    """Wall time and process CPU between ``start()`` (first send) and ``stop()`` (last ack)."""

    def __init__(self) -> None:
        self.t0 = self.t1 = 0.0
        self.c0 = self.c1 = 0.0
        self.m0 = 0.0  # time.monotonic() at start: CLOCK_MONOTONIC, comparable across processes

    def start(self) -> None:
        self.c0 = cpu_seconds()
        self.m0 = time.monotonic()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.c1 = cpu_seconds()


def report(clock: Clock, *, sent: int, acked: int, failed: int = 0, **extra) -> None:
    """Print the result line the runner parses.

    Args:
        sent: messages handed to the client (accepted by its send call).
        acked: messages the client reports as acknowledged by the broker (PUBACK), or at QoS 0
            as written to the socket.
        failed: messages the client itself reports as not delivered (error code, dropped,
            or still unacknowledged at the deadline).
        extra: sender-specific figures (retries, versions, ...), passed through to the JSON.
    """
    out = {
        "sent": sent,
        "acked": acked,
        "failed": failed,
        "elapsed_s": clock.t1 - clock.t0,
        "cpu_send_s": clock.c1 - clock.c0,
        "t0_monotonic": clock.m0,
        "thread_cpu_s": thread_cpu(),
    }
    out.update(extra)
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()
