"""``select``/``uselect`` stand-in: ``poll`` (with MicroPython's ``ipoll``) and ``select``."""

import select as _select
from select import POLLERR, POLLHUP, POLLIN, POLLOUT, select  # noqa: F401


class _Poll:
    def __init__(self):
        self._p = _select.poll()
        self._objs = {}

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        self._objs[obj.fileno()] = obj
        self._p.register(obj, eventmask)

    def unregister(self, obj):
        self._objs.pop(obj.fileno(), None)
        self._p.unregister(obj)

    def modify(self, obj, eventmask):
        self._p.modify(obj, eventmask)

    def poll(self, timeout=-1):
        """``[(obj, event), ...]``; ``timeout`` in ms, -1 forever."""
        ready = self._p.poll(None if timeout is None or timeout < 0 else timeout)
        return [(self._objs.get(fd, fd), ev) for fd, ev in ready]

    def ipoll(self, timeout=-1, flags=0):
        """Like :meth:`poll`, as an iterator."""
        return iter(self.poll(timeout))


def poll():
    """A poll object."""
    return _Poll()
