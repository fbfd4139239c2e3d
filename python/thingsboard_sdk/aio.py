"""asyncio API: ``AsyncTBDeviceClient``, the device client for event loops.

The same Rust engine as ``TBDeviceMqttClient`` (no second MQTT stack, no thread per client):
each client's network loop is a task on the engine's shared runtime, and the engine wakes the
event loop through one socket per loop (``loop.add_reader``) when a client has something for it.
Works with the default loop and with uvloop. A client belongs to the loop that connected it.

    async with AsyncTBDeviceClient("127.0.0.1", access_token="TOKEN") as client:
        handle = await client.send_telemetry({"temperature": 21.5})
        await handle                      # the broker acknowledged it (PUBACK)
        shared = await client.request_attributes(shared_keys=["targetTemperature"])
        async for request in client.rpc_requests():
            await request.reply({"ok": True})

See docs/asyncio.md.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, Type

from . import _engine
from ._aio_loop import Callbacks, Stream, _LoopWaker, wait_future, waker_for
from .exceptions import MessageRefusedError, ProvisionError, QueueFullError
from .tb_device_mqtt import TBDeviceMqttClient, _check_timeout, _keys

__all__ = [
    "AsyncTBDeviceClient",
    "AsyncTBGatewayClient",
    "GatewayRpcRequest",
    "AsyncMessageHandle",
    "RpcRequest",
    "FirmwareEvent",
    "Stream",
    "ProvisionError",
    "QueueFullError",
    "MessageRefusedError",
]

log = logging.getLogger("thingsboard_sdk.aio")

# How long disconnect() waits for the DISCONNECT to go out before closing the socket anyway.
_CLOSE_TIMEOUT = 2.0


class AsyncMessageHandle:
    """The delivery of one message accepted by ``send_*``.

    ``await handle`` (or ``await handle.wait()``) returns True once the broker acknowledged the
    message (QoS 1) or it was written (QoS 0), False if the client disconnected first.
    """

    __slots__ = ("_handle", "_client")

    def __init__(self, handle: _engine.MessageHandle, client: AsyncTBDeviceClient) -> None:
        self._handle = handle
        self._client = client

    @property
    def done(self) -> bool:
        """Whether the message was delivered already."""
        return self._handle.done

    async def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the delivery.

        Args:
            timeout: seconds to wait at most; None waits as long as it takes.

        Returns:
            True once delivered; False if ``timeout`` passed or the client disconnected first.

        Raises:
            MessageRefusedError: the server refused the message (it kept closing the connection
                right after it, e.g. bigger than its maxPayloadSize); the client gave it up.
        """
        fut = self._client._watch_message(self._handle)
        finished = True if fut is None else await wait_future(fut, timeout)
        if finished and self._handle.error is not None:
            raise MessageRefusedError(self._handle.error)
        return finished

    def __await__(self) -> Any:
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"<AsyncMessageHandle done={self.done}>"


class RpcRequest(NamedTuple):
    """A server-side RPC request, as ``rpc_requests()`` yields it.

    Attributes:
        id: the request id (str, as in the topic).
        method: the ``method`` field (None if absent).
        params: the ``params`` field (None if absent).
        body: the whole request body as received.
    """

    id: str
    method: Optional[str]
    params: Any
    body: Any
    client: AsyncTBDeviceClient

    async def reply(self, response: Any) -> AsyncMessageHandle:
        """Sends the response to this request (``send_rpc_reply``)."""
        return await self.client.send_rpc_reply(self.id, response)


class FirmwareEvent(NamedTuple):
    """One step of a firmware update, as ``firmware_updates()`` yields it.

    Attributes:
        kind: "started", "progress", "updated" or "failed".
        title, version: the firmware offered ("" for progress).
        received, total: bytes so far and the image size.
        path: the saved image (for "updated").
        error: why it failed (for "failed").
    """

    kind: str
    title: str = ""
    version: str = ""
    received: int = 0
    total: int = 0
    path: Optional[str] = None
    error: Optional[str] = None


def _firmware_callbacks(extras: Dict[str, Any]) -> Tuple[Any, Any]:
    """Takes ``on_firmware_update`` and ``on_firmware_progress`` out of ``extras``, checked."""
    on_update = extras.pop("on_firmware_update", None)
    on_progress = extras.pop("on_firmware_progress", None)
    for name, cb in (("on_firmware_update", on_update), ("on_firmware_progress", on_progress)):
        if cb is not None and not callable(cb):
            raise TypeError(f"{name} must be callable, got {cb!r}")
    return on_update, on_progress


class AsyncTBDeviceClient:
    """A ThingsBoard device over MQTT, for asyncio.

    Takes the arguments of ``TBDeviceMqttClient`` (see docs/host-api.md), with these
    differences: ``on_firmware_update`` and ``on_firmware_progress`` may be coroutine
    functions, and ``connect()``/``__aenter__`` raise instead of returning None.

    Raises:
        ValueError, TypeError: bad arguments, as ``TBDeviceMqttClient``.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        access_token: Optional[str] = None,
        quality_of_service: Optional[int] = None,
        client_id: Optional[str] = None,
        chunk_size: int = 0,
        **extras: Any,
    ) -> None:
        on_update, on_progress = _firmware_callbacks(extras)
        # The sync client validates the arguments, builds the engine and keeps the firmware
        # bookkeeping (current_firmware_info); its own dispatch is never used.
        sync = TBDeviceMqttClient(
            host, port, access_token, quality_of_service, client_id, chunk_size, **extras
        )
        self._init_from(sync, host, port, extras, on_update, on_progress)

    def _init_from(
        self,
        sync: TBDeviceMqttClient,
        host: str,
        port: int,
        extras: Dict[str, Any],
        on_update: Optional[Callable[[str, Dict[str, Any]], Any]],
        on_progress: Optional[Callable[[int, int], Any]],
    ) -> None:
        self._sync = sync
        self._engine = sync._engine
        self._host = host
        self._port = port
        self._request_timeout = self._sync._request_timeout
        self._max_queued = int(extras.get("max_queued_messages", 100_000))
        self.on_firmware_update: Optional[Callable[[str, Dict[str, Any]], Any]] = on_update
        self.on_firmware_progress: Optional[Callable[[int, int], Any]] = on_progress
        self._waker: Optional[_LoopWaker] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._callbacks = Callbacks()
        self._rpc_handler: Optional[Callable[[str, Any], Any]] = None
        self._subs: Dict[int, Any] = {}  # subscription id -> callback or Stream
        self._rpc_streams: List[Stream[RpcRequest]] = []
        self._fw_streams: List[Stream[FirmwareEvent]] = []
        self._requests: Dict[int, asyncio.Future[Any]] = {}  # attribute requests and RPC calls
        self._messages: Dict[int, List[asyncio.Future[Any]]] = {}  # one future per waiter
        self._flushes: List[asyncio.Future[Any]] = []
        self._rooms: List[asyncio.Future[Any]] = []
        self._links: List[asyncio.Future[Any]] = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at = 0.0

    # ---- state -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while an MQTT session is up (False while reconnecting)."""
        return self._engine.connected

    @property
    def last_error(self) -> Optional[str]:
        """Why the last ``connect()`` failed or the link last dropped."""
        return self._engine.last_error

    @property
    def queued(self) -> int:
        """Messages queued or awaiting acknowledgement."""
        return self._engine.queued

    @property
    def current_firmware_info(self) -> Dict[str, Any]:
        """The firmware running, as on MicroPython (``current_fw_title``, ...)."""
        return self._sync.current_firmware_info

    @current_firmware_info.setter
    def current_firmware_info(self, value: Dict[str, Any]) -> None:
        self._sync.current_firmware_info = value

    # ---- connection --------------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> bool:
        """Opens the MQTT session and subscribes to the device topics.

        Args:
            timeout: seconds for the CONNACK and the SUBACK.

        Returns:
            The CONNACK session-present flag.

        Raises:
            ConnectionError: the server refused or could not be reached (``last_error`` says
                why).
            TimeoutError: no CONNACK (or SUBACK) within ``timeout``.
        """
        timeout = _check_timeout("timeout", timeout)
        loop = asyncio.get_running_loop()
        self._attach(loop)
        self._sync._sync_current_firmware()
        self._engine.connect(timeout, wait=False)
        deadline = loop.time() + timeout
        try:
            while not self._engine.connected:
                link = self._engine.link
                left = deadline - loop.time()
                # "down": the first attempt failed (the engine would go on retrying). A failure
                # seen only after our own deadline (a loop slow to run us) is our timeout.
                if link in ("failed", "idle", "down") and left > 0:
                    reason = self._engine.last_error or "connection failed"
                    raise ConnectionError(f"cannot connect to {self._host}:{self._port}: {reason}")
                if left <= 0:
                    raise TimeoutError(
                        f"no CONNACK from {self._host}:{self._port} within {timeout:g} s"
                    )
                fut = loop.create_future()
                self._links.append(fut)
                await wait_future(fut, left)
        except BaseException:
            self._waker_call("abort")
            self._detach()
            raise
        self._service()
        return True if self._engine.connect(0.0, wait=False) else False

    async def disconnect(self, flush_timeout: float = 5.0) -> None:
        """Waits (bounded) for queued QoS 1 messages, sends DISCONNECT and closes the socket.

        Pending requests then raise ``ConnectionError``; handles not yet delivered give False;
        iterators end.
        """
        if self._waker is None:
            return
        done = False
        try:
            if self._engine.link == "up":
                await self.flush(flush_timeout)
            if self._waker is not None and self._waker.engine.begin_close(self._engine):
                loop = asyncio.get_running_loop()
                deadline = loop.time() + _CLOSE_TIMEOUT
                while self._engine.link == "up" and loop.time() < deadline:
                    fut = loop.create_future()
                    self._links.append(fut)
                    await wait_future(fut, deadline - loop.time())
            done = True
        finally:
            if not done or self._engine.link == "up":
                self._waker_call("abort")
            self._detach()

    async def __aenter__(self) -> AsyncTBDeviceClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.disconnect()

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every accepted QoS 1 message is acknowledged.

        Returns:
            True when all are; False if ``timeout`` seconds passed or the client disconnected.
        """
        w = self._need_waker()
        if not w.engine.watch_flush(self._engine):
            return True
        fut = w.loop.create_future()
        self._flushes.append(fut)
        return await wait_future(fut, timeout)

    # ---- uplinks -------------------------------------------------------------------------------

    async def send_telemetry(self, data: Any) -> AsyncMessageHandle:
        """Publishes telemetry: a dict, a ``{"ts", "values"}`` dict, or a list of those.

        Returns once the message is accepted into the queue. While ``max_queued_messages``
        messages are unacknowledged it waits for room (the sync client raises instead).

        Returns:
            A handle; ``await handle`` completes on the PUBACK.

        Raises:
            TypeError, ValueError: data JSON cannot encode, or of the wrong shape.
        """
        return await self._send(self._engine.send_telemetry, data)

    async def send_attributes(self, data: Dict[str, Any]) -> AsyncMessageHandle:
        """Publishes client-side attributes (a dict). Same rules as ``send_telemetry``."""
        return await self._send(self._engine.send_attributes, data)

    async def claim_device(
        self, secret_key: Optional[str] = None, duration_ms: Optional[int] = None
    ) -> AsyncMessageHandle:
        """Publishes a claiming request; each field is sent only when given."""
        return await self._send(self._sync.claim_device, secret_key, duration_ms)

    async def send_rpc_reply(self, request_id: Any, response: Any) -> AsyncMessageHandle:
        """Replies to server-side RPC ``request_id`` (str or int)."""
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            raise TypeError(f"request_id must be a str or int, got {request_id!r}")
        return await self._send(self._engine.send_rpc_reply, str(request_id), response)

    async def _send(self, send: Callable[..., Any], *args: Any) -> AsyncMessageHandle:
        """Queues a message with ``send(*args)``; while the queue is full, waits for room."""
        try:
            return AsyncMessageHandle(send(*args), self)
        except QueueFullError:
            pass
        w = self._need_waker()
        # Wake at three quarters full, not at the first free slot: one wake-up per batch.
        below = max(1, self._max_queued * 3 // 4)
        while True:
            try:
                return AsyncMessageHandle(send(*args), self)
            except QueueFullError:
                if not w.engine.watch_room(self._engine, below):
                    continue
                fut = w.loop.create_future()
                self._rooms.append(fut)
                if not await wait_future(fut, None):
                    raise ConnectionError(
                        "the client disconnected while the queue was full"
                    ) from None

    # ---- requests ------------------------------------------------------------------------------

    async def request_attributes(
        self,
        client_keys: Optional[Iterable[str]] = None,
        shared_keys: Optional[Iterable[str]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Requests attributes and returns this request's response.

        Returns:
            ``{"client": {...}, "shared": {...}}`` as the server sent it.

        Raises:
            TimeoutError: no response within ``timeout`` seconds (default: ``request_timeout``).
            ConnectionError: the client disconnected first.
        """
        t = self._request_timeout if timeout is None else _check_timeout("timeout", timeout)
        rid = self._engine.request_attributes(
            _keys(client_keys, "client_keys"), _keys(shared_keys, "shared_keys"), t
        )
        result = await self._await_request(rid, t)
        return result if isinstance(result, dict) else {}

    async def send_rpc_call(
        self, method: str, params: Any = None, *, timeout: Optional[float] = None
    ) -> Any:
        """Client-side RPC: returns the server's response.

        Raises:
            TimeoutError: no response within ``timeout`` seconds (default: ``request_timeout``).
            ConnectionError: the client disconnected first.
        """
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {method!r}")
        t = self._request_timeout if timeout is None else _check_timeout("timeout", timeout)
        rid = self._engine.send_rpc_call(method, params, t)
        return await self._await_request(rid, t)

    async def _await_request(self, rid: int, timeout: float) -> Any:
        w = self._need_waker()
        fut = w.loop.create_future()
        self._requests[rid] = fut
        self._arm(timeout)
        try:
            return await fut
        finally:
            # Cancelled (or asyncio.timeout()): forget the request so a late answer is dropped.
            if self._requests.pop(rid, None) is not None:
                self._engine.cancel_request(rid)

    # ---- server RPC, attribute updates, firmware ------------------------------------------

    def set_server_side_rpc_request_handler(self, handler: Callable[[str, Any], Any]) -> None:
        """Registers ``handler(request_id, body)`` (a function or a coroutine function); only
        the last one is kept. Reply with ``await client.send_rpc_reply(request_id, ...)``."""
        self._rpc_handler = handler

    def rpc_requests(self) -> Stream[RpcRequest]:
        """Server-side RPC requests as an async iterator (every iterator sees every request)."""
        stream: Stream[RpcRequest] = Stream(lambda: self._drop_stream(self._rpc_streams, stream))
        self._rpc_streams.append(stream)
        return stream

    def subscribe_to_attribute(self, key: str, callback: Callable[..., Any]) -> int:
        """Calls ``callback(result, None)`` (function or coroutine function) for shared
        attribute updates containing ``key``.

        Returns:
            The subscription id.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {key!r}")
        sid = self._engine.subscribe_to_attribute(key)
        self._subs[sid] = callback
        return sid

    def subscribe_to_all_attributes(self, callback: Callable[..., Any]) -> int:
        """Calls ``callback(result, None)`` for every shared-attribute update."""
        return self.subscribe_to_attribute("*", callback)

    def unsubscribe_from_attribute(self, subscription_id: int) -> None:
        """Removes a subscription; an unknown id is a no-op."""
        if isinstance(subscription_id, int) and 0 <= subscription_id < 2**32:
            self._engine.unsubscribe_from_attribute(subscription_id)
        self._subs.pop(subscription_id, None)

    def attribute_updates(self, *keys: str) -> Stream[Dict[str, Any]]:
        """Shared-attribute updates as an async iterator: those containing any of ``keys``, or
        every update when no key is given. Closing it removes its subscriptions."""
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(f"keys must be str, got {k!r}")
        sids: List[int] = []

        def close() -> None:
            for sid in sids:
                self.unsubscribe_from_attribute(sid)

        stream: Stream[Dict[str, Any]] = Stream(close)
        for k in keys or ("*",):
            sid = self._engine.subscribe_to_attribute(k)
            self._subs[sid] = stream
            sids.append(sid)
        return stream

    def firmware_updates(self) -> Stream[FirmwareEvent]:
        """Firmware update steps (started, progress, updated, failed) as an async iterator."""
        stream: Stream[FirmwareEvent] = Stream(lambda: self._drop_stream(self._fw_streams, stream))
        self._fw_streams.append(stream)
        return stream

    @staticmethod
    def _drop_stream(streams: List[Any], stream: Any) -> None:
        if stream in streams:
            streams.remove(stream)

    @staticmethod
    async def provision(
        host: str, port: int, provision_request: Dict[str, Any], *, timeout: float = 10.0
    ) -> Dict[str, Any]:
        """Provisions a device (in a separate session, on a worker thread).

        Raises:
            ProvisionError: as ``TBDeviceMqttClient.provision``.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: TBDeviceMqttClient.provision(host, port, provision_request, timeout=timeout),
        )

    # ---- the loop side -----------------------------------------------------------------------

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._waker is not None:
            if self._loop is not loop:
                raise RuntimeError("this client is connected from another event loop")
            return
        self._loop = loop
        self._waker = waker_for(loop)
        self._waker.attach(self)

    def _need_waker(self) -> _LoopWaker:
        # A wait before connect() (on a message queued meanwhile, say) attaches to this loop.
        if self._waker is None:
            self._attach(asyncio.get_running_loop())
        assert self._waker is not None
        return self._waker

    def _waker_call(self, what: str) -> None:
        if self._waker is not None:
            getattr(self._waker.engine, what)(self._engine)

    def _detach(self) -> None:
        w = self._waker
        if w is None:
            return
        w.detach(self)
        self._waker = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gone = ConnectionError("the client disconnected")
        for fut in self._requests.values():
            if not fut.done():
                fut.set_exception(gone)
        self._requests.clear()
        waiting = [f for futs in self._messages.values() for f in futs]
        for futs in (waiting, self._flushes, self._rooms, self._links):
            for fut in futs:
                if not fut.done():
                    fut.set_result(False)
        self._messages.clear()
        self._flushes.clear()
        self._rooms.clear()
        self._links.clear()
        streams: List[Stream[Any]] = [*self._rpc_streams, *self._fw_streams]
        for s in streams:
            s.close()
        for sub in list(self._subs.values()):
            if isinstance(sub, Stream):
                sub.close()

    def _watch_message(self, handle: _engine.MessageHandle) -> Optional[asyncio.Future[Any]]:
        w = self._need_waker()
        mid = w.engine.watch_message(handle)
        if mid is None:
            return None
        fut: asyncio.Future[Any] = w.loop.create_future()
        waiters = [f for f in self._messages.get(mid, ()) if not f.done()]  # drop timed-out ones
        waiters.append(fut)
        self._messages[mid] = waiters
        return fut

    def _arm(self, delay: float) -> None:
        """Services this client again in ``delay`` seconds (a request or chunk deadline)."""
        w = self._waker
        if w is None:
            return
        when = w.loop.time() + delay + 0.001
        if self._timer is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = w.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._service()

    def _service(self) -> None:
        w = self._waker
        if w is None:
            return
        events, delivered, flushed, room, next_deadline = w.engine.service(self._engine)
        for mid in delivered:
            for fut in self._messages.pop(mid, ()):
                if not fut.done():
                    fut.set_result(True)
        for flag, futs in ((flushed, self._flushes), (room, self._rooms)):
            if flag:
                for fut in futs:
                    if not fut.done():
                        fut.set_result(True)
                futs.clear()
        if self._links:
            for fut in self._links:
                if not fut.done():
                    fut.set_result(True)
            self._links.clear()
        if events:
            self._dispatch(events)
        if next_deadline is not None:
            self._arm(next_deadline)

    def _dispatch(self, events: List[Tuple[Any, ...]]) -> None:
        for ev in events:
            kind = ev[0]
            if kind == "attributes":
                data, subs = ev[1], ev[2]
                self._sync._set_firmware_info(data)
                for sid in subs:
                    self._deliver_attributes(self._subs.get(sid), data)
            elif kind == "rpc_request":
                body = ev[2]
                method = body.get("method") if isinstance(body, dict) else None
                params = body.get("params") if isinstance(body, dict) else None
                req = RpcRequest(ev[1], method, params, body, self)
                if self._rpc_handler is not None:
                    self._callbacks.call(self._rpc_handler, ev[1], body)
                for s in self._rpc_streams:
                    s._put(req)
                if self._rpc_handler is None and not self._rpc_streams:
                    log.debug("server RPC %s with no handler set: %r", ev[1], body)
            elif kind in ("attribute_response", "rpc_response"):
                rid, value, timed_out = ev[1], ev[2], ev[3]
                if kind == "attribute_response" and timed_out is None and isinstance(value, dict):
                    shared = value.get("shared", {})
                    self._sync._set_firmware_info(shared if isinstance(shared, dict) else {})
                fut = self._requests.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if timed_out is not None:
                    what = "attribute request" if kind == "attribute_response" else "RPC call"
                    fut.set_exception(
                        TimeoutError(f"no response to {what} {rid} within {timed_out:g} s")
                    )
                else:
                    fut.set_result(value)
            elif kind.startswith("firmware_"):
                self._firmware(ev)
            elif kind.startswith("gw_"):
                self._gateway_event(ev)
            elif kind == "dropped":
                if ev[3]:
                    log.debug("ignored the broker's echo of our own publish on %r", ev[1])
                else:
                    log.warning("dropped a message on %r: %s", ev[1], ev[2])

    def _gateway_event(self, ev: Tuple[Any, ...]) -> None:
        """Sub-device events; a gateway client (``AsyncTBGatewayClient``) handles them."""
        log.debug("gateway event on a device session: %r", ev[0])

    def _deliver_attributes(self, sub: Any, data: Dict[str, Any]) -> None:
        if sub is None:
            return
        if isinstance(sub, Stream):
            sub._put(data)
        else:
            self._callbacks.call(sub, data, None)

    def _firmware(self, ev: Tuple[Any, ...]) -> None:
        # The sync client keeps current_firmware_info and the logs; callbacks run here.
        sync = self._sync
        sync.on_firmware_update = sync.on_firmware_progress = None
        sync._firmware_event(ev)
        kind = ev[0]
        if kind == "firmware_progress":
            fe = FirmwareEvent("progress", received=ev[1], total=ev[2])
            if self.on_firmware_progress is not None:
                self._callbacks.call(self.on_firmware_progress, ev[1], ev[2])
        elif kind == "firmware_started":
            fe = FirmwareEvent("started", ev[1], ev[2], 0, ev[3])
        elif kind == "firmware_updated":
            title, version, size, path = ev[1], ev[2], ev[3], ev[4]
            fe = FirmwareEvent("updated", title, version, size, size, path=path)
            if self.on_firmware_update is not None:
                info = sync._updated_info(title, version, size)
                self._callbacks.call(self.on_firmware_update, path, info)
        elif kind == "firmware_failed":
            fe = FirmwareEvent("failed", ev[1], ev[2], error=ev[3])
        else:
            return
        for s in self._fw_streams:
            s._put(fe)


# The gateway client subclasses the device client above; imported last for that reason.
from ._aio_gateway import AsyncTBGatewayClient, GatewayRpcRequest  # noqa: E402
