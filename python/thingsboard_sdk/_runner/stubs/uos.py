"""``uos`` stand-in: CPython's ``os`` plus MicroPython's ``ilistdir`` and ``dupterm``."""

from os import *  # noqa: F403
from os import scandir as _scandir
from os import sep  # noqa: F401


def ilistdir(path="."):
    """Yields ``(name, type, inode)`` as MicroPython does (type 0x4000 dir, 0x8000 file)."""
    for entry in _scandir(path):
        kind = 0x4000 if entry.is_dir() else 0x8000
        yield (entry.name, kind, entry.inode())


def dupterm(stream=None, index=0):
    """No REPL to duplicate on the host: returns None."""
    return None
