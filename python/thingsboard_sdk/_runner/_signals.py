"""Ctrl-C and SIGTERM for a run: one stop request, never a traceback from the runner.

While the script runs, the first SIGINT raises ``KeyboardInterrupt`` and the first SIGTERM
:class:`Terminated` in the script, where the runner reports its line. A repeat of either that
arrives within :data:`REPEAT_WINDOW` seconds of the one that stopped the script is dropped:
``timeout``, systemd and container runtimes deliver SIGTERM both to the process and to its
group, so two arrive together. Once the script has ended (the runner disconnects its clients
and stops its timers), signals are only noted: cleanup is bounded and must not be cut into
pieces that print the runner's own traceback.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable, Optional

# Seconds after a stop request during which the same request again is a duplicate.
REPEAT_WINDOW = 1.0


class Terminated(BaseException):
    """SIGTERM, handled like Ctrl-C (a ``BaseException``: ``except Exception`` in a script
    does not swallow it)."""


class Guard:
    """Owns the SIGINT/SIGTERM handlers for one run (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}
        self._armed = False
        self._last_stop: Optional[float] = None
        self.requests = 0  # stop requests seen while not armed (cleanup)

    def _handler(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self._armed:
            self.requests += 1
            return
        if self._last_stop is not None and now - self._last_stop < REPEAT_WINDOW:
            return
        self._last_stop = now
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated

    def install(self) -> Callable[[], None]:
        """Takes over SIGINT and SIGTERM, not armed yet (signals are noted).

        Returns:
            A function that puts the previous handlers back.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._saved[signum] = signal.signal(signum, self._handler)

        def undo() -> None:
            for signum, previous in self._saved.items():
                signal.signal(signum, previous)
            self._saved.clear()

        return undo

    def arm(self) -> None:
        """The script starts (or starts again): the next signal stops it."""
        self._armed = True
        self._last_stop = None

    def disarm(self) -> None:
        """The script has ended: from now on signals are only noted."""
        self._armed = False
