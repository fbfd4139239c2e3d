"""Shared plumbing for the fleet senders (standard library only: each runs in its own venv).

A fleet sender makes ``--devices`` clients in one process, connects them all (bounded by
``--connect-timeout``), idles ``--idle`` seconds, reads its own RSS (``/proc/<pid>/statm``) and
OS thread count (``/proc/<pid>/task``), then has every device send one telemetry message per
second for ``--duration`` seconds (message ``i = tick * devices + device``, so the runner's
subscriber counts losses) and waits for the acknowledgements.

It prints ``PROGRESS {json}`` lines while it goes (the runner keeps the last one if the process
has to be killed) and one ``RESULT {json}`` line at the end, then leaves with ``os._exit``:
tearing down thousands of clients is not what is measured, and the runner bounds every wait.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from _sender import cpu_seconds

PAGE = os.sysconf("SC_PAGE_SIZE")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--connect-timeout", type=float, default=60.0)
    p.add_argument("--idle", type=float, default=2.0, help="seconds idle before RSS is read")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of 1 msg/s per device")
    p.add_argument("--ack-timeout", type=float, default=15.0, help="bound on the final ack wait")
    return p.parse_args()


def raise_nofile() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (one socket per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_bytes() -> int:
    """Resident set size of this process (``/proc/<pid>/statm``, second field)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def threads() -> int:
    """OS threads of this process (entries of ``/proc/<pid>/task``)."""
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


def fd_report(states: list[tuple[bool, int | None]]) -> dict:
    """Open file descriptors, and whether unconnected clients sit above select()'s limit.

    Args:
        states: per client, (connected, its socket's fd or None).
    """
    fds = [fd for _, fd in states if fd is not None and fd >= 0]
    down = [fd for ok, fd in states if not ok]
    return {
        "open_fds": len(os.listdir(f"/proc/{os.getpid()}/fd")),
        "max_socket_fd": max(fds, default=None),
        "unconnected": len(down),
        "unconnected_fd_ge_1024": sum(1 for fd in down if fd is not None and fd >= 1024),
        "unconnected_no_socket": sum(1 for fd in down if fd is None or fd < 0),
        "connected_max_fd": max((fd for ok, fd in states if ok and fd is not None), default=None),
    }


def socket_fd(sock) -> int | None:
    """The file descriptor of ``sock``; None if there is no socket or it is closed."""
    try:
        return sock.fileno() if sock is not None else None
    except OSError:
        return None


@dataclass
class Started:
    """What ``start_one_by_one`` leaves: the clients started, the seconds spent constructing
    them, why it stopped early (None: all started), when the phase began and must end, and when
    the next progress line is due."""

    t: float
    deadline: float
    next_report: float
    clients: list = field(default_factory=list)
    create_s: float = 0.0
    error: str | None = None


def start_one_by_one(
    fleet: Fleet,
    make: Callable[[int], Any],
    connect: Callable[[Any], None],
    connected: Callable[[], int] | None = None,
) -> Started:
    """Makes and connects ``--devices`` clients in turn, the way a rival's README connects one.

    Stops at ``--connect-timeout`` or at the first client that cannot be made or connected (no
    more threads, no more file descriptors): the reason a rival stops is the result.

    Args:
        fleet: the run (progress lines once a second).
        make: builds client ``d``; its time counts as creation.
        connect: starts that client's connection.
        connected: how many are connected so far, for the progress lines (None: not shown).

    Returns:
        The phase's ``Started`` record.
    """
    n = fleet.n
    t = time.monotonic()
    st = Started(t=t, deadline=t + fleet.args.connect_timeout, next_report=t + 1)
    try:
        for d in range(n):
            c0 = time.monotonic()
            c = make(d)
            st.create_s += time.monotonic() - c0
            connect(c)
            st.clients.append(c)
            now = time.monotonic()
            if now > st.next_report:
                st.next_report = now + 1
                extra = {} if connected is None else {"connected": connected()}
                fleet.progress("connecting", started=len(st.clients), **extra)
            if now > st.deadline:
                st.error = (
                    f"only {len(st.clients)}/{n} clients started within "
                    f"{fleet.args.connect_timeout} s"
                )
                break
    except Exception as e:  # noqa: BLE001 - the reason a rival stops is the result
        st.error = f"client {len(st.clients)}: {type(e).__name__}: {e}"
    return st


def emit(kind: str, **fields) -> None:
    sys.stdout.write(f"{kind} " + json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


class Fleet:
    """Collects the figures of one fleet run, in the order the phases happen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = args.devices
        self.out: dict = {"devices": self.n, "nofile": raise_nofile()}
        self.out["rss0"] = rss_bytes()
        self.out["threads0"] = threads()
        self.t0 = time.monotonic()

    def progress(self, phase: str, **fields) -> None:
        self.out.update(fields)
        emit(
            "PROGRESS",
            phase=phase,
            t=round(time.monotonic() - self.t0, 3),
            threads=threads(),
            rss=rss_bytes(),
            **fields,
        )

    def connected(self, count: int, create_s: float, connect_s: float, error: str | None) -> bool:
        """Record the connect phase, idle, then take RSS and threads. False: stop here."""
        self.out.update(connected=count, create_s=create_s, connect_s=connect_s, error=error)
        c0, t0 = cpu_seconds(), time.monotonic()
        time.sleep(self.args.idle)
        idle_wall = time.monotonic() - t0
        self.out["idle_cpu_frac"] = (cpu_seconds() - c0) / idle_wall
        self.out["rss1"] = rss_bytes()
        self.out["threads1"] = threads()
        growth = self.out["rss1"] - self.out["rss0"]
        self.out["rss_per_device"] = growth / max(1, count)
        self.progress("idle", connected=count)
        return count >= self.n and error is None

    def sent(self, acked: int, sent: int, first: float, last_ack: float, cpu: float, lag: float):
        d = self.args.duration
        self.out.update(
            sent=sent,
            acked=acked,
            send_wall_s=last_ack - first,
            # Offered: every device once a second for ``duration`` s. If the loop keeps up the
            # rate is devices/s; if it falls behind, the run stretches and the rate drops.
            msgs_per_s=acked / max(d, last_ack - first),
            cpu_send_s=cpu,
            max_tick_lag_s=lag,
            t0_monotonic=first,
            rss2=rss_bytes(),
            threads2=threads(),
        )

    def finish(self, **extra) -> None:
        self.out.update(extra)
        self.out["total_s"] = time.monotonic() - self.t0
        emit("RESULT", **self.out)
        os._exit(0)


def ticks(duration: float, wait=time.sleep):
    """Yield (k, lag): tick k of one per second; ``wait(seconds)`` until it is due (a sleep, or
    a client loop serving callbacks meanwhile); lag is how late the tick starts."""
    start = time.monotonic()
    for k in range(int(duration)):
        due = start + k
        now = time.monotonic()
        while now < due:
            wait(due - now)
            now = time.monotonic()
        yield k, now - due
