"""MicroPython's ``time`` extras (``sleep_ms``, ``ticks_ms``, ...) on CPython.

Ticks count from the start of the run, as a board's count from boot, and wrap at
``TICKS_PERIOD`` (2**30, as on most ports); use :func:`ticks_diff` to compare them.
"""

from __future__ import annotations

import time

TICKS_PERIOD = 1 << 30
_HALF = TICKS_PERIOD // 2
_MASK = TICKS_PERIOD - 1
_start_ns = time.monotonic_ns()


def restart_ticks() -> None:
    """Makes the tick counters start at 0 again (called when a run starts)."""
    global _start_ns
    _start_ns = time.monotonic_ns()


def sleep_ms(ms: int) -> None:
    """Sleeps ``ms`` milliseconds (Ctrl-C interrupts it)."""
    if ms > 0:
        time.sleep(ms / 1000)


def sleep_us(us: int) -> None:
    """Sleeps ``us`` microseconds."""
    if us > 0:
        time.sleep(us / 1_000_000)


def ticks_ms() -> int:
    """Milliseconds since the run started, wrapping at ``TICKS_PERIOD``."""
    return ((time.monotonic_ns() - _start_ns) // 1_000_000) & _MASK


def ticks_us() -> int:
    """Microseconds since the run started, wrapping at ``TICKS_PERIOD``."""
    return ((time.monotonic_ns() - _start_ns) // 1_000) & _MASK


def ticks_cpu() -> int:
    """The finest counter there is (nanoseconds here), wrapping at ``TICKS_PERIOD``."""
    return (time.monotonic_ns() - _start_ns) & _MASK


def ticks_add(ticks: int, delta: int) -> int:
    """``ticks`` moved by ``delta`` (may be negative), wrapped like the counters."""
    return (ticks + delta) & _MASK


def ticks_diff(ticks1: int, ticks2: int) -> int:
    """The signed distance ``ticks1 - ticks2``, correct across one wrap of the counter."""
    return ((ticks1 - ticks2 + _HALF) & _MASK) - _HALF


EXTRAS = {
    "sleep_ms": sleep_ms,
    "sleep_us": sleep_us,
    "ticks_ms": ticks_ms,
    "ticks_us": ticks_us,
    "ticks_cpu": ticks_cpu,
    "ticks_add": ticks_add,
    "ticks_diff": ticks_diff,
}
