"""``utime`` stand-in: CPython's ``time`` plus MicroPython's ``sleep_ms``/``ticks_*``."""

from time import *  # noqa: F403

from thingsboard_sdk._runner._mptime import (  # noqa: F401
    sleep_ms,
    sleep_us,
    ticks_add,
    ticks_cpu,
    ticks_diff,
    ticks_ms,
    ticks_us,
)
