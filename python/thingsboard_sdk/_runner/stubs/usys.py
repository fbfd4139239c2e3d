"""``sys``/``usys`` stand-in: the host's ``sys`` as a board shows it.

``platform`` is the board's (``esp32``, ``esp8266``, ``rp2``), ``implementation`` names
``micropython`` and the board (``_machine``), ``print_exception(exc, file)`` exists; ``argv``,
``path``, ``modules``, ``exit``, ``stdin``/``stdout``/``stderr`` and the rest are the host's.
"""

import sys as _sys
import traceback as _traceback

from thingsboard_sdk._runner import _board

_profile = _board.current().profile
platform = _profile.platform


class _Implementation:
    """``sys.implementation`` of MicroPython."""

    name = "micropython"
    version = (1, 24, 1, "")
    _machine = _profile.machine
    _mpy = 0x0A06

    def __repr__(self):
        return f"(name='micropython', version={self.version}, _machine='{self._machine}')"


implementation = _Implementation()
version = "3.4.0; MicroPython v1.24.1 on the host runner"
version_info = (3, 4, 0)


def print_exception(exc, file=None):
    """Prints ``exc`` with its traceback, as MicroPython does."""
    _traceback.print_exception(type(exc), exc, exc.__traceback__, file=file or _sys.stdout)


def __getattr__(name):
    return getattr(_sys, name)
