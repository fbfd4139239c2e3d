"""``send_aio.py`` under uvloop (``--loop uvloop``): the same coroutine, another event loop."""

from __future__ import annotations

import sys

import send_aio

if __name__ == "__main__":
    sys.argv += ["--loop", "uvloop"]
    send_aio.main()
