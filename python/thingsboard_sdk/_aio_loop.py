"""The asyncio side of the engine's wake-up: one reader per event loop, streams, waits.

Private to ``thingsboard_sdk.aio``. The engine lists clients that have news (events, delivered
messages that a coroutine awaits, link changes) and rings a socket the loop watches with
``add_reader``; ``_LoopWaker`` then services each listed client on the loop's thread. No thread,
no timer polls: an idle loop sleeps in its selector.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import weakref
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    Generic,
    Optional,
    Protocol,
    Set,
    TypeVar,
)

from . import _engine

log = logging.getLogger("thingsboard_sdk.aio")

T = TypeVar("T")


class _Serviced(Protocol):
    """What a client implements to be serviced by a ``_LoopWaker``."""

    _engine: _engine.Client

    def _service(self) -> None: ...


class _LoopWaker:
    """The wake-up of one event loop, shared by every client connected from that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.engine = _engine.Waker()
        self.fd = self.engine.fileno()
        # Weak: a client dropped without disconnect() is freed (the engine then closes it).
        self.clients: weakref.WeakValueDictionary[int, _Serviced] = weakref.WeakValueDictionary()
        loop.add_reader(self.fd, self._on_ready)

    def attach(self, client: _Serviced) -> None:
        key = id(client)
        self.clients[key] = client
        self.engine.attach(client._engine, key)

    def detach(self, client: _Serviced) -> None:
        self.engine.detach(client._engine)
        self.clients.pop(id(client), None)
        if not self.clients:
            _WAKERS.pop(id(self.loop), None)
            if not self.loop.is_closed():
                self.loop.remove_reader(self.fd)

    def _on_ready(self) -> None:
        # Keys may repeat (one per link change); each client is serviced once per wake-up.
        for key in dict.fromkeys(self.engine.take()):
            client = self.clients.get(key)
            if client is not None:
                try:
                    client._service()
                except Exception:
                    log.exception("servicing a client failed; it goes on")


# Keyed by id(loop): uvloop's loops cannot be weakly referenced. An entry lives while a
# client of that loop is attached.
_WAKERS: Dict[int, _LoopWaker] = {}


def waker_for(loop: asyncio.AbstractEventLoop) -> _LoopWaker:
    """The wake-up of ``loop``, created on first use."""
    w = _WAKERS.get(id(loop))
    if w is None or w.loop is not loop:
        w = _LoopWaker(loop)
        _WAKERS[id(loop)] = w
    return w


async def wait_future(fut: asyncio.Future[Any], timeout: Optional[float]) -> bool:
    """Waits for ``fut``, a future of this waiter's own (cancelling the wait cancels it).

    Design: one timer per wait and a plain ``await``; ``asyncio.wait`` costs several objects
    and callbacks per call, which showed when 10,000 clients connect from one loop.

    Returns:
        The future's result, or False once ``timeout`` seconds passed first.
    """
    if fut.done():
        return bool(fut.result())
    if timeout is None:
        return bool(await fut)
    timer = asyncio.get_running_loop().call_later(max(0.0, timeout), _expire, fut)
    try:
        return bool(await fut)
    finally:
        timer.cancel()


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(False)


class Stream(Generic[T]):
    """An async iterator over items the client pushes (RPC requests, attribute updates, ...).

    Every item is kept until taken (nothing is dropped). It ends when ``close()`` is called
    (or the ``async with`` block ends) or the client disconnects.
    """

    def __init__(self, on_close: Optional[Callable[[], None]] = None) -> None:
        self._items: Deque[T] = collections.deque()
        self._waiter: Optional[asyncio.Future[None]] = None
        self._closed = False
        self._on_close = on_close

    def _put(self, item: T) -> None:
        if self._closed:
            return
        self._items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def close(self) -> None:
        """Ends the iteration once the items already received are taken."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def aclose(self) -> None:
        """The same as ``close()``, for ``contextlib.aclosing``."""
        self.close()

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class Callbacks:
    """Runs user callbacks that may be plain functions or coroutine functions.

    A coroutine becomes a task, kept referenced until it ends; an exception in either kind is
    logged with its traceback and the client goes on.
    """

    def __init__(self) -> None:
        self._tasks: Set[asyncio.Future[Any]] = set()

    def call(self, cb: Callable[..., Any], *args: Any) -> None:
        try:
            result = cb(*args)
        except Exception:
            log.exception("callback %r raised; the client goes on", cb)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("callback task raised; the client goes on", exc_info=task.exception())
