"""``ntptime`` stand-in: the host's clock is already synchronised.

``time()`` returns the current UTC seconds (the epoch is 1970 on the host) and ``settime()``
sets the board's RTC from it; no NTP packet leaves the host.
"""

import logging
import time as _time

log = logging.getLogger("thingsboard_sdk.runner.ntptime")

host = "pool.ntp.org"
timeout = 1


def time():
    """UTC seconds since the epoch, from the host's clock."""
    return int(_time.time())


def settime():
    """Sets the RTC to UTC (the host's clock, which the host keeps synchronised)."""
    import machine

    t = _time.gmtime()
    machine.RTC().datetime(
        (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)
    )
    log.info("settime(): RTC set to UTC from the host's clock (%s asked)", host)
