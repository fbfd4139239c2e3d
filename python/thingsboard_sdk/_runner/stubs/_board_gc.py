"""``gc`` as a board script sees it: the host's collector with a board's figures.

``mem_free()`` and ``mem_alloc()`` add up to the board's heap (``--board``, ``--heap``), not
the host's RAM; allocation grows ``mem_alloc()`` and ``collect()`` brings it down again.
"""

import gc as _gc

from thingsboard_sdk._runner import _board

enable = _gc.enable
disable = _gc.disable
isenabled = _gc.isenabled


def collect():
    """Runs the host's collector; the board's garbage is gone."""
    _gc.collect()
    _board.current().collected()


def mem_free():
    """Bytes of the board's heap free."""
    return _board.current().mem_free()


def mem_alloc():
    """Bytes of the board's heap in use."""
    return _board.current().mem_alloc()


def threshold(amount=None):
    """MicroPython's allocation threshold; the host's collector ignores it."""
    return -1 if amount is None else None
