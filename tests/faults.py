"""Fault injection for the tests: the proxy (one home: ``thingsboard_sdk._faultproxy``, shared
with ``benches/faults.py``), ``LinkWatch``, which records when a client's link goes down and up,
``FaultScript``, the five-fault sequence the blocking and asyncio clients both go through, and
``numbers``/``tally``, which count what a peer received.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

from thingsboard_sdk._faultproxy import FaultProxy

__all__ = ["FaultProxy", "FaultScript", "LinkWatch", "numbers", "tally"]

TELEMETRY = "v1/devices/me/telemetry"


def numbers(peer: Any) -> list[int]:
    """The ``"i"`` of each telemetry message ``peer`` received, in order, repeats included.

    Args:
        peer: a ``conftest.TBPeer`` subscribed to the device's telemetry.

    Returns:
        The numbers; a message without an integer ``"i"`` is skipped.
    """
    out = []
    for m in peer.matching(TELEMETRY):
        try:
            out.append(m.json()["i"])
        except (ValueError, KeyError, TypeError):
            pass
    return out


def tally(got: list[int], total: int) -> tuple[list[int], dict[int, int]]:
    """Compares the numbers received with ``range(total)``.

    Args:
        got: the numbers received (``numbers(peer)``).
        total: how many were sent, numbered from 0.

    Returns:
        ``(lost, dups)``: the numbers never received, sorted, and for each number received
        more than once, how many extra copies came.
    """
    counts = collections.Counter(got)
    lost = sorted(set(range(total)) - set(counts))
    dups = {n: c - 1 for n, c in counts.items() if c > 1}
    return lost, dups


class LinkWatch:
    """Samples ``client.connected`` every millisecond or so on a thread; records transitions.

    ``wait_up_after(t0)`` returns how long after ``t0`` the client was next seen connected.
    """

    def __init__(self, client, interval: float = 0.002):
        self.client = client
        self.interval = interval
        self.transitions: list[tuple[float, bool]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._state = bool(client.connected)
        self.transitions.append((time.monotonic(), self._state))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now_up = bool(self.client.connected)
            if now_up != self._state:
                with self._cond:
                    self._state = now_up
                    self.transitions.append((time.monotonic(), now_up))
                    self._cond.notify_all()
            time.sleep(self.interval)

    @property
    def up(self) -> bool:
        with self._cond:
            return self._state

    def downs(self) -> int:
        with self._cond:
            return sum(1 for _, up in self.transitions[1:] if not up)

    def wait_down(self, timeout: float) -> float:
        """Waits until the client is seen disconnected; returns when."""
        return self._wait(False, 0.0, timeout)

    def wait_up_after(self, t0: float, timeout: float) -> float:
        """Seconds from ``t0`` until the client is seen connected at or after ``t0``."""
        return self._wait(True, t0, timeout) - t0

    def _wait(self, up: bool, t0: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._state == up:
                    # the earliest transition to ``up`` at or after t0, or now if it was already
                    later = [t for t, s in self.transitions if s == up and t >= t0]
                    return later[-1] if later else max(t0, time.monotonic())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"client not {'connected' if up else 'disconnected'} within {timeout}s"
                    )
                self._cond.wait(left)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


class FaultScript:
    """Takes a client through a reset, a cut mid-packet, an outage, a blackhole and a broker
    restart, on a thread, each at a fixed offset in seconds from ``start``.

    ``reconnects`` maps each fault to the seconds from the path being back to the client being
    seen connected. ``join()`` fails the test if the thread hung or a wait failed.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        broker: Any,
        watch: LinkWatch,
        start: float,
        *,
        reset: float,
        cut: float,
        outage: tuple[float, float],
        blackhole: tuple[float, float],
        restart: float,
        blackhole_latency: float = 0.0,
    ):
        self.proxy, self.broker, self.watch, self.start = proxy, broker, watch, start
        self.times = (reset, cut, outage, blackhole, restart)
        self.blackhole_latency = blackhole_latency
        self.reconnects: dict[str, float] = {}
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def at(self, t: float) -> None:
        """Sleeps until ``t`` seconds after ``start`` (pacing, not synchronisation)."""
        left = self.start + t - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _run(self) -> None:
        proxy, watch, at = self.proxy, self.watch, self.at
        reset, cut, outage, blackhole, restart = self.times
        try:
            at(reset)
            proxy.reset()
            t0 = time.monotonic()
            watch.wait_down(5)
            self.reconnects["reset"] = watch.wait_up_after(t0, 10)

            at(cut)
            proxy.cut_mid_packet()
            t0 = time.monotonic()
            watch.wait_down(5)
            self.reconnects["cut mid-packet"] = watch.wait_up_after(t0, 10)

            at(outage[0])
            proxy.down()  # resets, then refuses
            watch.wait_down(5)
            at(outage[1])
            t0 = proxy.restore()
            self.reconnects[f"{outage[1] - outage[0]:g} s outage"] = watch.wait_up_after(t0, 10)

            at(blackhole[0])
            proxy.latency = self.blackhole_latency
            proxy.blackhole()  # a short keepalive notices it; the retry is held
            watch.wait_down(6)
            at(blackhole[1])
            t0 = proxy.restore()
            self.reconnects["blackhole"] = watch.wait_up_after(t0, 10)
            proxy.latency = 0.0

            at(restart)
            self.broker.stop()
            watch.wait_down(5)
            time.sleep(1.0)  # the broker stays away a while
            self.broker.start()
            t0 = time.monotonic()
            self.reconnects["broker restart"] = watch.wait_up_after(t0, 10)
        except BaseException as exc:
            self.errors.append(exc)

    def join(self, timeout: float) -> None:
        """Waits for the script to end; fails the test if it hung or a wait failed."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "fault injector hung"
        assert not self.errors, self.errors
