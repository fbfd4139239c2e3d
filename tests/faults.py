"""Fault injection for the tests: the proxy (one home: ``thingsboard_sdk._faultproxy``, shared
with ``benches/faults.py``) and ``LinkWatch``, which records when a client's link goes down and up.
"""

from __future__ import annotations

import threading
import time

from thingsboard_sdk._faultproxy import FaultProxy

__all__ = ["FaultProxy", "LinkWatch"]


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
