"""``asyncio``/``uasyncio`` stand-in: CPython's asyncio with MicroPython's extras.

``sleep_ms``, ``wait_for_ms``, ``ThreadSafeFlag`` and ``get_event_loop()`` (``run_forever``,
``run_until_complete``, ``create_task``), as on a board.
"""

import asyncio as _asyncio
import threading as _threading
from asyncio import *  # noqa: F403
from asyncio import CancelledError, Event, Lock, TimeoutError  # noqa: F401


async def sleep_ms(ms):
    """Sleeps ``ms`` milliseconds."""
    await _asyncio.sleep(ms / 1000)


async def wait_for_ms(aw, timeout):
    """``wait_for`` with the timeout in milliseconds."""
    return await _asyncio.wait_for(aw, timeout / 1000)


class ThreadSafeFlag:
    """An event that can be set from another thread (an interrupt handler on a board)."""

    def __init__(self):
        self._flag = _threading.Event()
        self._loop = None
        self._waiter = None

    def set(self):
        """Sets the flag (any thread)."""
        self._flag.set()
        loop, waiter = self._loop, self._waiter
        if loop is not None and waiter is not None:
            loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))

    def clear(self):
        """Clears the flag."""
        self._flag.clear()

    async def wait(self):
        """Waits until the flag is set, then clears it."""
        while not self._flag.is_set():
            self._loop = _asyncio.get_running_loop()
            self._waiter = self._loop.create_future()
            if self._flag.is_set():
                break
            await self._waiter
        self._flag.clear()


class _Loop:
    def __init__(self):
        self._loop = _asyncio.new_event_loop()
        _asyncio.set_event_loop(self._loop)

    def create_task(self, coro):
        return self._loop.create_task(coro)

    def run_forever(self):
        self._loop.run_forever()

    def run_until_complete(self, aw):
        return self._loop.run_until_complete(aw)

    def stop(self):
        self._loop.stop()

    def close(self):
        self._loop.close()

    def call_exception_handler(self, context):
        self._loop.call_exception_handler(context)

    def set_exception_handler(self, handler):
        self._loop.set_exception_handler(handler)


_the_loop = None


def get_event_loop(runq_len=0, waitq_len=0):
    """The event loop (one per run, as on a board)."""
    global _the_loop
    if _the_loop is None:
        _the_loop = _Loop()
    return _the_loop


def new_event_loop():
    """A fresh event loop."""
    global _the_loop
    _the_loop = _Loop()
    return _the_loop


def create_task(coro):
    """Schedules ``coro``: on the running loop, else on the one ``get_event_loop`` returns."""
    try:
        return _asyncio.get_running_loop().create_task(coro)
    except RuntimeError:
        return get_event_loop().create_task(coro)
