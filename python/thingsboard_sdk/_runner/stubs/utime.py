"""``time``/``utime`` stand-in: MicroPython's time module on the host's clock.

As on a board: ``time()`` is whole seconds, ``localtime()``/``gmtime()`` return 8-tuples
``(year, month, mday, hour, minute, second, weekday, yearday)`` and ``mktime`` takes one;
``sleep_ms``/``sleep_us``, ``ticks_*`` (from 0 at the start of the run, wrapping at 2**30) and
``time_ns``. The epoch is 1970 (the Unix port's; some boards count from 2000).
"""

import time as _time

from thingsboard_sdk._runner._mptime import (  # noqa: F401
    sleep_ms,
    sleep_us,
    ticks_add,
    ticks_cpu,
    ticks_diff,
    ticks_ms,
    ticks_us,
)


def sleep(seconds):
    """Sleeps ``seconds`` (a float is fine)."""
    _time.sleep(seconds)


def time():
    """Whole seconds since the epoch."""
    return int(_time.time())


def time_ns():
    """Nanoseconds since the epoch."""
    return _time.time_ns()


def _tuple(t):
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)


def gmtime(secs=None):
    """UTC as an 8-tuple."""
    return _tuple(_time.gmtime(secs))


def localtime(secs=None):
    """Local time as an 8-tuple."""
    return _tuple(_time.localtime(secs))


def mktime(t):
    """Seconds since the epoch of a local-time 8-tuple."""
    y, mo, d, h, mi, s = t[:6]
    return int(_time.mktime((y, mo, d, h, mi, s, 0, 0, -1)))
