"""State shared by the runner and its stand-in modules while one script runs.

The stand-ins (``stubs/``) are loaded under their MicroPython names (``machine``,
``network``, ...); they reach the runner only through this module.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Tuple

# Exit code when the script calls machine.reset()/soft_reset()/deepsleep(): a board would
# restart; the host ends the run instead (documented in docs/runner.md).
EXIT_RESET = 3


class MachineReset(BaseException):
    """Raised by ``machine.reset()``: ends the script as a board reset would.

    A ``BaseException`` so that a script's ``except Exception`` does not swallow it, just as
    nothing in a script runs after a real reset.
    """

    def __init__(self, what: str, cause: int = 2, sleep_ms: Any = None) -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause  # machine.HARD_RESET, SOFT_RESET or DEEPSLEEP_RESET
        self.sleep_ms = sleep_ms  # deepsleep's time, slept before a restart


# Callables run once the script ended (stop timers, ...); guarded for timer threads.
_cleanups: List[Callable[[], Any]] = []
_lock = threading.Lock()


def at_end(fn: Callable[[], Any]) -> None:
    """Registers ``fn`` to run when the script ends (any way)."""
    with _lock:
        _cleanups.append(fn)


def run_cleanups() -> None:
    """Runs (and forgets) everything registered with :func:`at_end`, newest first."""
    with _lock:
        todo = _cleanups[::-1]
        _cleanups.clear()
    for fn in todo:
        try:
            fn()
        except Exception:  # a cleanup must not hide the script's own outcome
            pass


def _as_given(
    server: Any, port: Any, user: Optional[Any], tls: bool = False
) -> Tuple[Any, Any, Optional[Any]]:
    return server, port, user


# Where a umqtt client connects: ``mqtt_target(server, port, user, tls) -> (server, port,
# user)``. The runner's Redirect replaces it for a run (``--server``, ``--devserver``,
# ``--token``, ``-v``).
mqtt_target: Callable[..., Tuple[Any, Any, Optional[Any]]] = _as_given
