"""``collections``/``ucollections`` stand-in: ``namedtuple``, ``OrderedDict`` and MicroPython's
``deque``, whose ``maxlen`` is required (``deque((), 10)``)."""

from collections import OrderedDict, namedtuple  # noqa: F401
from collections import deque as _deque


class deque(_deque):  # noqa: N801 - MicroPython's name
    """A bounded double-ended queue; ``flags=1`` makes overflow raise ``IndexError``."""

    def __init__(self, iterable, maxlen, flags=0):
        super().__init__((), maxlen)
        self._strict = bool(flags & 1)
        for item in iterable:
            self.append(item)

    def append(self, item):
        if self._strict and len(self) == self.maxlen:
            raise IndexError("full")
        super().append(item)

    def appendleft(self, item):
        if self._strict and len(self) == self.maxlen:
            raise IndexError("full")
        super().appendleft(item)
