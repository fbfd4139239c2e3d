"""``AsyncTBGatewayClient``: the gateway client for event loops (``thingsboard_sdk.aio``).

The asyncio counterpart of ``tb_gateway_mqtt.TBGatewayMqttClient``, on the same engine: the
``gw_*`` methods keep tb-mqtt-client's names and argument order, uplinks return awaitable
handles, attribute requests return their response, sub-device RPCs and attribute updates come
as async iterators or as callbacks (functions or coroutine functions).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from ._aio_loop import Stream
from .aio import AsyncMessageHandle, AsyncTBDeviceClient, _firmware_callbacks
from .tb_device_mqtt import _check_timeout
from .tb_gateway_mqtt import TBGatewayMqttClient

log = logging.getLogger("thingsboard_sdk.aio")


class GatewayRpcRequest(NamedTuple):
    """A sub-device RPC request, as ``gw_rpc_requests()`` yields it.

    Attributes:
        device: the sub-device's name.
        id: the request id (int).
        method, params: from the request's ``data``.
        data: the whole ``data`` object as received.
    """

    device: str
    id: int
    method: Optional[str]
    params: Any
    data: Any
    client: AsyncTBGatewayClient

    async def reply(self, response: Any) -> Optional[AsyncMessageHandle]:
        """Sends the response (``gw_send_rpc_reply``)."""
        return await self.client.gw_send_rpc_reply(self.device, self.id, response)


class AsyncTBGatewayClient(AsyncTBDeviceClient):
    """A ThingsBoard gateway session for asyncio. ``username`` is the gateway's access token.

    Takes the arguments of ``TBGatewayMqttClient``; it is also an ``AsyncTBDeviceClient`` for
    the gateway's own traffic.

    Attributes:
        device_disconnect_callback: ``callback(client, {"device", "reason"})`` (function or
            coroutine function) when the server disconnects a sub-device.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        username: Optional[str] = None,
        password: Optional[str] = None,
        gateway: Any = None,
        quality_of_service: int = 1,
        client_id: str = "",
        **extras: Any,
    ) -> None:
        on_update, on_progress = _firmware_callbacks(extras)
        sync = TBGatewayMqttClient(
            host, port, username, password, gateway, quality_of_service, client_id, **extras
        )
        self._init_from(sync, host, port, extras, on_update, on_progress)
        self._gw_sync = sync
        self._gw = sync._gw
        self._gw_subs: Dict[int, Any] = {}  # subscription id -> callback or Stream
        self._gw_requests: Dict[int, asyncio.Future[Any]] = {}
        self._gw_rpc_streams: List[Stream[GatewayRpcRequest]] = []
        self._gw_rpc_handler: Optional[Callable[..., Any]] = None
        self.device_disconnect_callback: Optional[Callable[..., Any]] = None

    # ---- sub-device sessions and uploads ----------------------------------------------------

    async def gw_connect_device(
        self, device_name: str, device_type: str = "default"
    ) -> AsyncMessageHandle:
        """Connects a sub-device; it is announced again after every reconnect."""
        return await self._send(self._gw_sync.gw_connect_device, device_name, device_type)

    async def gw_disconnect_device(self, device_name: str) -> AsyncMessageHandle:
        """Disconnects a sub-device."""
        return await self._send(self._gw_sync.gw_disconnect_device, device_name)

    async def gw_send_telemetry(
        self, device: str, telemetry: Any, quality_of_service: int = 1
    ) -> AsyncMessageHandle:
        """Sends sub-device telemetry (a dict, ``{"ts", "values"}`` or a list of them); waits
        for room while the queue is full."""
        return await self._send(self._gw.send_telemetry, device, telemetry, quality_of_service)

    async def gw_send_attributes(
        self, device: str, attributes: Dict[str, Any], quality_of_service: int = 1
    ) -> AsyncMessageHandle:
        """Sends sub-device client attributes."""
        return await self._send(self._gw.send_attributes, device, attributes, quality_of_service)

    async def gw_claim(
        self, device_name: str, secret_key: Optional[str], duration: Optional[int]
    ) -> AsyncMessageHandle:
        """Sends a claiming request for a sub-device (``durationMs`` = ``duration``)."""
        return await self._send(self._gw.claim, device_name, secret_key, duration, 1)

    # ---- attribute requests ------------------------------------------------------------------

    async def gw_request_shared_attributes(
        self, device_name: str, keys: Iterable[str], *, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Requests shared attributes of a sub-device.

        Returns:
            The whole response (``{"id", "device", "value"}`` or ``"values"``).

        Raises:
            TimeoutError: no response within ``timeout`` (default: ``request_timeout``).
        """
        return await self._gw_request(device_name, keys, False, timeout)

    async def gw_request_client_attributes(
        self, device_name: str, keys: Iterable[str], *, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Requests client attributes of a sub-device (see ``gw_request_shared_attributes``)."""
        return await self._gw_request(device_name, keys, True, timeout)

    async def _gw_request(
        self, device: str, keys: Iterable[str], client: bool, timeout: Optional[float]
    ) -> Dict[str, Any]:
        keys = [keys] if isinstance(keys, str) else list(keys)
        t = self._request_timeout if timeout is None else _check_timeout("timeout", timeout)
        rid = self._gw.request_attributes(device, keys, client, t)
        w = self._need_waker()
        fut: asyncio.Future[Any] = w.loop.create_future()
        self._gw_requests[rid] = fut
        self._arm(t)
        try:
            result = await fut
        finally:
            if self._gw_requests.pop(rid, None) is not None:
                self._gw.cancel_request(rid)
        return result if isinstance(result, dict) else {"value": result}

    # ---- subscriptions and RPC ---------------------------------------------------------------

    def gw_subscribe_to_attribute(
        self, device: str, attribute: str, callback: Callable[..., Any]
    ) -> Any:
        """Calls ``callback({"device", "data"})`` (function or coroutine function) on every
        shared-attribute change of ``device`` naming ``attribute``.

        Returns:
            The subscription id, or False when the device was not connected with
            ``gw_connect_device`` (as tb-mqtt-client).
        """
        if device != "*" and device not in self._gw_sync._gw_connected:
            log.error("Device %s is not connected", device)
            return False
        sid = self._gw.subscribe(device, attribute)
        self._gw_subs[sid] = callback
        return sid

    def gw_subscribe_to_all_device_attributes(
        self, device: str, callback: Callable[..., Any]
    ) -> Any:
        """Subscribes to every shared-attribute change of one sub-device."""
        return self.gw_subscribe_to_attribute(device, "*", callback)

    def gw_subscribe_to_all_attributes(self, callback: Callable[..., Any]) -> Any:
        """Subscribes to every shared-attribute change of every sub-device."""
        return self.gw_subscribe_to_attribute("*", "*", callback)

    def gw_unsubscribe(self, subscription_id: Any) -> None:
        """Removes a subscription (``"*"`` removes all)."""
        ids = list(self._gw_subs) if subscription_id == "*" else [subscription_id]
        for sid in ids:
            if self._gw_subs.pop(sid, None) is not None:
                self._gw.unsubscribe(sid)

    def gw_attribute_updates(self, device: str = "*", *attributes: str) -> Stream[Dict[str, Any]]:
        """Shared-attribute changes as an async iterator of ``{"device", "data"}``: of one
        sub-device (or every one with ``"*"``), naming any of ``attributes`` (or any)."""
        sids: List[int] = []

        def close() -> None:
            for sid in sids:
                self.gw_unsubscribe(sid)

        stream: Stream[Dict[str, Any]] = Stream(close)
        for a in attributes or ("*",):
            sid = self._gw.subscribe(device, a)
            self._gw_subs[sid] = stream
            sids.append(sid)
        return stream

    def gw_set_server_side_rpc_request_handler(self, handler: Callable[..., Any]) -> None:
        """``handler(client, {"device", "data": {"id", "method", "params"}})`` (function or
        coroutine function) for sub-device RPCs."""
        self._gw_rpc_handler = handler

    def gw_rpc_requests(self) -> Stream[GatewayRpcRequest]:
        """Sub-device RPC requests as an async iterator; ``await request.reply(...)``."""
        stream: Stream[GatewayRpcRequest] = Stream(
            lambda: self._drop_stream(self._gw_rpc_streams, stream)
        )
        self._gw_rpc_streams.append(stream)
        return stream

    async def gw_send_rpc_reply(
        self, device: str, req_id: int, resp: Any, quality_of_service: Optional[int] = None
    ) -> Optional[AsyncMessageHandle]:
        """Replies to a sub-device RPC; None (logged) for a QoS other than 0 or 1."""
        qos = self._gw_sync.quality_of_service if quality_of_service is None else quality_of_service
        if qos not in (0, 1):
            log.error("Quality of service (qos) value must be 0 or 1")
            return None
        return await self._send(self._gw.send_rpc_reply, device, int(req_id), resp, qos)

    # ---- events ------------------------------------------------------------------------------

    def _detach(self) -> None:
        super()._detach()
        gone = ConnectionError("the client disconnected")
        for fut in self._gw_requests.values():
            if not fut.done():
                fut.set_exception(gone)
        self._gw_requests.clear()
        streams: List[Stream[Any]] = list(self._gw_rpc_streams)
        streams += [s for s in self._gw_subs.values() if isinstance(s, Stream)]
        for s in streams:
            s.close()

    def _gateway_event(self, ev: Tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == "gw_attributes":
            content = {"device": ev[1], "data": ev[2]}
            for sid in ev[3]:
                sub = self._gw_subs.get(sid)
                if isinstance(sub, Stream):
                    sub._put(content)
                elif sub is not None:
                    self._callbacks.call(sub, content)
        elif kind == "gw_rpc_request":
            device, data = ev[1], ev[2]
            content = {"device": device, "data": data}
            if self._gw_rpc_handler is not None:
                self._callbacks.call(self._gw_rpc_handler, self, content)
            if self._gw_rpc_streams:
                body = data if isinstance(data, dict) else {}
                req = GatewayRpcRequest(
                    device, body.get("id", 0), body.get("method"), body.get("params"), data, self
                )
                for s in self._gw_rpc_streams:
                    s._put(req)
            if self._gw_rpc_handler is None and not self._gw_rpc_streams:
                log.debug("sub-device RPC with no handler set: %r", content)
        elif kind == "gw_attribute_response":
            rid, value, timed_out = ev[1], ev[3], ev[4]
            fut = self._gw_requests.pop(rid, None)
            if fut is None or fut.done():
                return
            if timed_out is not None:
                fut.set_exception(
                    TimeoutError(f"no response to attribute request {rid} within {timed_out:g} s")
                )
            else:
                fut.set_result(value)
        elif kind == "gw_device_disconnected":
            log.info("Device %r disconnected by the server, reason %s", ev[1], ev[2])
            self._gw_sync._gw_connected.discard(ev[1])
            if self.device_disconnect_callback is not None:
                notice = {"device": ev[1], "reason": ev[2]}
                self._callbacks.call(self.device_disconnect_callback, self, notice)
