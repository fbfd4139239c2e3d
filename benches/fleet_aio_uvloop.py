"""``fleet_aio.py`` under uvloop (``--loop uvloop``)."""

from __future__ import annotations

import sys

import fleet_aio

if __name__ == "__main__":
    sys.argv += ["--loop", "uvloop"]
    fleet_aio.main()
