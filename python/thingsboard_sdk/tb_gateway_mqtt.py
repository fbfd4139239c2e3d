"""A ThingsBoard gateway: a device that relays for sub-devices (Gateway MQTT API).

``TBGatewayMqttClient`` takes tb-mqtt-client's gateway method names and argument order, so a
gateway script written for tb-mqtt-client runs after changing its import. It is also a
``TBDeviceMqttClient``: every device method works for the gateway's own traffic, with the same
engine and guarantees (QoS 1 handles, reconnect with the connected sub-devices announced again,
bounded queue, big uploads split, pacing by the server's limits).

Callbacks: as tb-mqtt-client users expect, ``connect()`` starts a background thread that
serves callbacks (RPC handlers, attribute subscriptions, request callbacks) as messages arrive
(``loop_start()``/``loop_stop()`` control it). With ``callback_thread=False`` nothing runs in
the background and callbacks run on the thread that calls ``check_for_msg()`` or
``wait_for_msg()``, as for ``TBDeviceMqttClient``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any, Callable, Iterable, Optional

from . import _engine
from .exceptions import ProvisionError
from .tb_device_mqtt import TBDeviceMqttClient, _check_callback

log = logging.getLogger("thingsboard_sdk.gateway")


def _text(name: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` if it is a str (or None when ``optional``), else a TypeError naming it."""
    if isinstance(value, str) or (optional and value is None):
        return value
    raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")


def _millis(name: str, value: Any) -> Optional[int]:
    """A duration in whole milliseconds (an int or a numeric str, as tb-mqtt-client's
    example), or None."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{name} must be whole milliseconds >= 0, got {value!r}")
    return value


def _keys(value: Any) -> list:
    """Attribute keys: one str or an iterable of str."""
    if isinstance(value, str):
        return [value]
    try:
        keys = list(value)
    except TypeError:
        raise TypeError(f"keys must be a str or a list of str, got {value!r}") from None
    for key in keys:
        _text("every key", key)
    return keys


def _parameters(fn: Callable[..., Any]) -> Any:
    """The names ``fn`` takes (none when its signature cannot be read, as for some builtins)."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


__all__ = ["TBGatewayMqttClient", "RequestId", "ConnackCode"]

# MQTT 3.1.1 CONNACK return codes (3.2.2.3), named as paho names them.
_CONNACK_NAMES = {
    0: "Success",
    1: "Unsupported protocol version",
    2: "Client identifier not valid",
    3: "Server unavailable",
    4: "Bad user name or password",
    5: "Not authorized",
}


class ConnackCode(int):
    """The ``rc`` the connect callback gets: the CONNACK return code (0 connected, 1-5 the
    server refused), an int that also answers paho's ``ReasonCode`` calls that tb-mqtt-client
    scripts make (``rc.value``, ``rc.getName()``)."""

    @property
    def value(self) -> int:
        """The code as a plain int."""
        return int(self)

    def getName(self) -> str:  # noqa: N802 (paho's name)
        """The code's name, as paho gives it (``"Not authorized"`` for 5)."""
        return _CONNACK_NAMES.get(int(self), f"Unknown ({int(self)})")


class RequestId(int):
    """The id of an attribute request, usable as tb-mqtt-client's ``TBPublishInfo``.

    tb-mqtt-client's ``gw_request_*_attributes`` return a ``TBPublishInfo``; scripts call
    ``.get()`` or ``.rc()`` on it. The request's answer comes to its callback, so these only
    say that the request was accepted: 0 (``TB_ERR_SUCCESS``), as tb-mqtt-client's ``get()``
    does without a PUBACK."""

    def rc(self) -> int:
        """0: the request was accepted (queued)."""
        return 0

    def get(self, timeout: Optional[float] = 1.0) -> int:
        """0: the request was accepted; its answer goes to the callback."""
        return 0

    def mid(self) -> int:
        """The request id."""
        return int(self)


class TBGatewayMqttClient(TBDeviceMqttClient):
    """A gateway session. ``username`` is the gateway device's access token.

    Args:
        host: server address.
        port: MQTT port.
        username: the gateway's access token (or MQTT user name).
        password: MQTT password, if any.
        gateway: accepted for tb-mqtt-client compatibility; unused.
        quality_of_service: QoS of the gateway's own messages (0 or 1).
        client_id: MQTT client id (derived from the token when empty).
        messages_rate_limit, telemetry_rate_limit, telemetry_dp_rate_limit: limits of the
            gateway's own traffic, set by hand (``"DEFAULT_..."`` or None: not set).
        device_messages_rate_limit, device_telemetry_rate_limit,
            device_telemetry_dp_rate_limit: limits of everything the gateway relays for its
            sub-devices (the server's ``gatewayRateLimits``), set by hand;
        callback_thread: serve callbacks from a background thread started by ``connect()``
            (default True, as tb-mqtt-client); False: callbacks run in ``check_for_msg()`` /
            ``wait_for_msg()`` on the caller's thread.
        **kwargs: the keyword-only host extras of ``TBDeviceMqttClient``; ``request_timeout``
            defaults to 20 s here, tb-mqtt-client's wait for an attribute response.
    """

    _GATEWAY = True
    _ASK_LIMITS = True

    def __init__(
        self,
        host: str,
        port: int = 1883,
        username: Optional[str] = None,
        password: Optional[str] = None,
        gateway: Any = None,
        quality_of_service: int = 1,
        client_id: str = "",
        messages_rate_limit: Optional[str] = None,
        telemetry_rate_limit: Optional[str] = None,
        telemetry_dp_rate_limit: Optional[str] = None,
        device_messages_rate_limit: Optional[str] = None,
        device_telemetry_rate_limit: Optional[str] = None,
        device_telemetry_dp_rate_limit: Optional[str] = None,
        *,
        callback_thread: bool = True,
        **kwargs: Any,
    ) -> None:
        # For connect(tls=..., keepalive=...), tb-mqtt-client's place for them (see there).
        self._init_args = (
            (host, port, username, password, gateway, quality_of_service, client_id),
            dict(
                messages_rate_limit=messages_rate_limit,
                telemetry_rate_limit=telemetry_rate_limit,
                telemetry_dp_rate_limit=telemetry_dp_rate_limit,
                device_messages_rate_limit=device_messages_rate_limit,
                device_telemetry_rate_limit=device_telemetry_rate_limit,
                device_telemetry_dp_rate_limit=device_telemetry_dp_rate_limit,
                callback_thread=callback_thread,
                **kwargs,
            ),
        )
        self._connect_called = False
        self._on_connect: Optional[Callable[..., Any]] = None
        self._sessions_seen = 0
        self._refusals_seen = 0
        # tb-mqtt-client gives up on an attribute request after 20 s (the device client: 10).
        kwargs.setdefault("request_timeout", 20.0)
        # tb-mqtt-client's legacy names override the new ones as there: ``rate_limit`` sets
        # every message limit, ``dp_rate_limit`` both data-point limits.
        rate_limit = kwargs.pop("rate_limit", None)
        dp_rate_limit = kwargs.pop("dp_rate_limit", None)
        if rate_limit and rate_limit != "DEFAULT_RATE_LIMIT":
            messages_rate_limit = telemetry_rate_limit = rate_limit
            device_messages_rate_limit = device_telemetry_rate_limit = rate_limit
        if dp_rate_limit and dp_rate_limit != "DEFAULT_RATE_LIMIT":
            telemetry_dp_rate_limit = device_telemetry_dp_rate_limit = dp_rate_limit
        # Read by TBDeviceMqttClient.__init__: limits of what the gateway relays.
        self._gateway_limits = {
            "gateway_messages": device_messages_rate_limit,
            "gateway_telemetry_messages": device_telemetry_rate_limit,
            "gateway_telemetry_data_points": device_telemetry_dp_rate_limit,
        }
        super().__init__(
            host,
            port,
            access_token=username,
            quality_of_service=quality_of_service,
            client_id=client_id or None,
            password=password,
            messages_rate_limit=messages_rate_limit,
            telemetry_rate_limit=telemetry_rate_limit,
            telemetry_dp_rate_limit=telemetry_dp_rate_limit,
            **kwargs,
        )
        # tb-mqtt-client's flag: scripts wait with ``while not client.stopped``; set by stop().
        self.stopped = False
        self._gw = _engine.Gateway(self._engine)
        # Design: the uploads are the hot path (one call per sub-device message); unless a
        # subclass overrides them, the engine's methods (same names, arguments and checks)
        # serve them with no Python frame in between: about 0.8 us of ~10 per call.
        cls = type(self)
        if cls.gw_send_telemetry is TBGatewayMqttClient.gw_send_telemetry:
            self.gw_send_telemetry = self._gw.send_telemetry  # type: ignore[method-assign]
        if cls.gw_send_attributes is TBGatewayMqttClient.gw_send_attributes:
            self.gw_send_attributes = self._gw.send_attributes  # type: ignore[method-assign]
        self._gw_subs: dict = {}
        self._gw_attr_callbacks: dict = {}
        self._gw_connected: set = set()
        self.devices_server_side_rpc_request_handler: Optional[Callable[..., Any]] = None
        self.device_disconnect_callback: Optional[Callable[..., Any]] = None
        self._callback_thread = callback_thread
        self._loop: Optional[threading.Thread] = None
        self._loop_stop = threading.Event()

    # ---- tb-mqtt-client's session calls ------------------------------------------------------

    def connect(  # type: ignore[override]
        self,
        callback: Optional[Callable[..., Any]] = None,
        min_reconnect_delay: float = 1,
        timeout: float = 10,
        tls: bool = False,
        ca_certs: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        keepalive: float = 120,
    ) -> Optional[int]:
        """Connects (waiting up to ``timeout`` seconds for the CONNACK) and, with
        ``callback_thread``, starts serving callbacks in the background.

        tb-mqtt-client's arguments are accepted. ``tls=True`` (with ``ca_certs``,
        ``cert_file``, ``key_file``) and ``keepalive`` apply when given to the first
        ``connect()`` before anything was sent, subscribed or requested (they are host extras
        of the constructor here); later they are ignored with a warning. The reconnect delays
        are the ``reconnect_*_delay`` host extras.
        ``callback(client, userdata, flags, rc)`` is called once connected (rc 0) and, as
        there, again after every reconnect (from the callback thread; with
        ``callback_thread=False`` only here); a callback with a ``tb_client`` parameter gets
        ``(client, userdata, flags, rc, properties, tb_client=client)``, tb-mqtt-client's
        second form. As there, a refused connect calls it too, with the CONNACK's return code
        as ``rc`` (5: not authorised, e.g. a wrong access token; an int with paho's
        ``value`` and ``getName()``).

        Returns:
            The CONNACK session-present flag, or None if the connection failed.
        """
        self._session_options(tls, ca_certs, cert_file, key_file, keepalive)
        self._connect_called = True
        self._on_connect = callback
        refusals = self._engine.refusals
        present = super().connect(timeout=timeout)
        self._sessions_seen = self._engine.sessions
        self._refusals_seen = self._engine.refusals
        if present is not None:
            self._connected_callback(present)
        elif self._refusals_seen != refusals:
            self._connected_callback(0, self._engine.last_refusal or 0)
        if self._callback_thread:
            # Also after a failed first attempt: the engine goes on trying in the background
            # (reconnect on), and handlers set meanwhile must be served once it is up.
            self.loop_start()
        return present

    def _connected_callback(self, present: Any, code: int = 0) -> None:
        callback = self._on_connect
        if callback is None:
            return
        flags = {"session present": present}
        rc = ConnackCode(code)
        if "tb_client" in _parameters(callback):
            # tb-mqtt-client's second form: properties too, and itself as tb_client.
            self._call(functools.partial(callback, tb_client=self), self, None, flags, rc, None)
        else:
            self._call(callback, self, None, flags, rc)

    def _session_options(
        self,
        tls: bool,
        ca_certs: Optional[str],
        cert_file: Optional[str],
        key_file: Optional[str],
        keepalive: float,
    ) -> None:
        """Applies connect()'s TLS and keepalive: the engine takes them at construction, so a
        client that has not used its engine yet is built again with them."""
        args, kwargs = self._init_args
        wanted: dict = {}
        if tls and not kwargs.get("tls"):
            wanted.update(tls=True, ca_certs=ca_certs, cert_file=cert_file, key_file=key_file)
        if keepalive != kwargs.get("keepalive", 120):
            wanted["keepalive"] = keepalive
        if not wanted:
            return
        pristine = not (
            self._connect_called
            or self._engine.queued
            or self._subscriptions
            or self._attr_callbacks
            or self._rpc_callbacks
            or self._gw_subs
            or self._gw_attr_callbacks
            or self._gw_connected
        )
        if not pristine:
            log.warning(
                "connect(): %s ignored: this client was used before; pass them to the "
                "constructor (host extras)",
                ", ".join(sorted(wanted)),
            )
            return
        # Handlers are plain attributes that scripts may set before connect(): keep them.
        keep = {
            name: getattr(self, name)
            for name in (
                "_rpc_handler",
                "devices_server_side_rpc_request_handler",
                "device_disconnect_callback",
                "on_firmware_update",
                "on_firmware_progress",
                "current_firmware_info",
            )
        }
        self.__init__(*args, **dict(kwargs, **wanted))  # type: ignore[misc]
        for name, value in keep.items():
            setattr(self, name, value)

    def disconnect(self) -> None:
        """Stops the callback thread, flushes (bounded) and disconnects."""
        self.loop_stop()
        super().disconnect()

    def stop(self) -> None:
        """tb-mqtt-client's ``stop()``: sets ``stopped`` (scripts loop ``while not
        client.stopped``) and disconnects as ``disconnect()`` does."""
        self.stopped = True
        self.disconnect()

    def loop_start(self) -> None:
        """Serves callbacks from a background daemon thread until ``loop_stop()``."""
        if self._loop is not None and self._loop.is_alive():
            return
        self._loop_stop.clear()
        self._loop = threading.Thread(
            target=self._serve, name="thingsboard-gateway-callbacks", daemon=True
        )
        self._loop.start()

    def loop_stop(self) -> None:
        """Stops the background callback thread (waits for a callback under way)."""
        self._loop_stop.set()
        loop, self._loop = self._loop, None
        if loop is not None and loop is not threading.current_thread():
            loop.join(5)

    def _serve(self) -> None:
        while not self._loop_stop.is_set():
            try:
                self.wait_for_msg(timeout=0.2)
            except OSError:
                # Down: the engine reconnects by itself; try again shortly.
                self._loop_stop.wait(0.2)
            except Exception:
                log.exception("callback thread: unexpected error; going on")
            # tb-mqtt-client calls the connect callback on every (re)connect (paho's
            # on_connect); the engine reconnects by itself: its session count tells.
            sessions = self._engine.sessions
            if sessions != self._sessions_seen and not self._loop_stop.is_set():
                self._sessions_seen = sessions
                # session present: 0, what ThingsBoard answers a clean session (spec 2.7).
                self._connected_callback(0)
            # A reconnect the server refused (paho's on_connect with rc != 0 there).
            refusals = self._engine.refusals
            if refusals != self._refusals_seen and not self._loop_stop.is_set():
                self._refusals_seen = refusals
                self._connected_callback(0, self._engine.last_refusal or 0)

    def send_telemetry(  # type: ignore[override]
        self, telemetry: Any, quality_of_service: Optional[int] = None, timeout: Any = None
    ) -> Any:
        """The gateway's own telemetry (``quality_of_service`` is the session's here)."""
        return super().send_telemetry(telemetry)

    def send_attributes(  # type: ignore[override]
        self, attributes: dict, quality_of_service: Optional[int] = None, timeout: Any = None
    ) -> Any:
        """The gateway's own client attributes."""
        return super().send_attributes(attributes)

    def send_rpc_reply(  # type: ignore[override]
        self,
        req_id: Any,
        resp: Any,
        quality_of_service: Optional[int] = None,
        wait_for_publish: bool = False,
    ) -> Any:
        """Replies to an RPC to the gateway itself."""
        handle = super().send_rpc_reply(req_id, resp)
        if wait_for_publish:
            handle.wait(10)
        return handle

    def request_attributes(
        self,
        client_keys: Optional[Iterable[str]] = None,
        shared_keys: Optional[Iterable[str]] = None,
        callback: Optional[Callable[..., Any]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> RequestId:
        """The gateway's own attributes, as ``TBDeviceMqttClient.request_attributes``.

        Returns:
            The request id, with tb-mqtt-client's ``get()``/``rc()`` (there a
            ``TBPublishInfo``).
        """
        rid = super().request_attributes(client_keys, shared_keys, callback, timeout=timeout)
        return RequestId(rid)

    def claim(self, secret_key: Optional[str], duration: int = 30000) -> Any:
        """tb-mqtt-client's ``claim()`` for the gateway itself."""
        return self.claim_device(secret_key, duration)

    @staticmethod
    def provision(  # type: ignore[override]
        host: str,
        provision_device_key: Any,
        provision_device_secret: Any,
        port: int = 1883,
        device_name: Optional[str] = None,
        access_token: Optional[str] = None,
        client_id: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        hash: Optional[str] = None,  # noqa: A002 - tb-mqtt-client's parameter name
        gateway: Optional[bool] = None,
        *,
        timeout: float = 10.0,
    ) -> Optional[dict]:
        """tb-mqtt-client's ``provision()`` (the gateway inherits it there).

        ``TBDeviceMqttClient``'s form ``provision(host, port, provision_request)`` (a port and
        a request dict) is taken too, and then behaves as there (raises ``ProvisionError``).

        Returns:
            The SUCCESS response (``credentialsType``, ``credentialsValue``, ...), or None
            when provisioning failed (logged at ERROR), as tb-mqtt-client.

        Raises:
            TypeError: key or secret missing.
        """
        if isinstance(provision_device_secret, dict) and isinstance(provision_device_key, int):
            port, request = provision_device_key, provision_device_secret
            return TBDeviceMqttClient.provision(host, port, request, timeout=timeout)
        request = TBDeviceMqttClient.get_provision_request(
            provision_device_key,
            provision_device_secret,
            device_name,
            access_token,
            client_id,
            username,
            password,
            hash,
            gateway,
        )
        try:
            return TBDeviceMqttClient.provision(host, port, request, timeout=timeout)
        except ProvisionError as e:
            log.error("%s", e)  # "provisioning failed: STATUS: errorMsg"
            return None

    def request_service_configuration(self, callback: Callable[..., Any]) -> int:
        """Asks ``getSessionLimits`` and passes the answer to ``callback(id, response, exc)``."""
        return self.send_rpc_call("getSessionLimits", {"timeout": 5000}, callback)

    def max_inflight_messages_set(self, inflight: int) -> None:
        """Accepted for compatibility; the window is the ``max_inflight`` host extra."""
        log.debug("max_inflight_messages_set(%r): set max_inflight= at construction", inflight)

    def max_queued_messages_set(self, queue_size: int) -> None:
        """Accepted for compatibility; the bound is the ``max_queued_messages`` host extra."""
        log.debug("max_queued_messages_set(%r): set max_queued_messages= instead", queue_size)

    def reconnect_delay_set(self, min_delay: float = 1, max_delay: float = 120) -> None:
        """Accepted for compatibility; see the ``reconnect_*_delay`` host extras."""
        log.debug("reconnect_delay_set(%r, %r): set at construction", min_delay, max_delay)

    # ---- sub-device sessions -----------------------------------------------------------------

    def gw_connect_device(self, device_name: str, device_type: str = "default") -> Any:
        """Connects a sub-device (created by the server on first use); it is announced again
        after every reconnect.

        Returns:
            A delivery handle (``wait()``, ``get()``).
        """
        _text("device_name", device_name)
        _text("device_type", device_type, optional=True)
        handle = self._gw.connect_device(device_name, device_type or "default", 1)
        self._gw_connected.add(device_name)
        return handle

    def gw_disconnect_device(self, device_name: str) -> Any:
        """Disconnects a sub-device; returns a delivery handle."""
        handle = self._gw.disconnect_device(_text("device_name", device_name), 1)
        self._gw_connected.discard(device_name)
        return handle

    # ---- uploads -----------------------------------------------------------------------------

    def _qos(self, quality_of_service: Any) -> int:
        """tb-mqtt-client's rule: None means the session's QoS; else 0 or 1."""
        if quality_of_service is None:
            return self.quality_of_service
        if quality_of_service not in (0, 1) or not isinstance(quality_of_service, int):
            raise ValueError(f"quality_of_service must be 0 or 1, got {quality_of_service!r}")
        return int(quality_of_service)

    def gw_send_telemetry(
        self, device: str, telemetry: Any, quality_of_service: Optional[int] = 1
    ) -> Any:
        """Sends sub-device telemetry (a dict, a ``{"ts", "values"}`` dict or a list of them);
        split into several messages when too big, one handle for all.

        Raises:
            ValueError: ``quality_of_service`` not 0, 1 or None (None: the session's QoS).
        """
        return self._gw.send_telemetry(
            _text("device", device), telemetry, self._qos(quality_of_service)
        )

    def gw_send_attributes(
        self, device: str, attributes: dict, quality_of_service: Optional[int] = 1
    ) -> Any:
        """Sends sub-device client attributes; returns a delivery handle.

        Raises:
            ValueError: ``quality_of_service`` not 0, 1 or None (None: the session's QoS).
        """
        return self._gw.send_attributes(
            _text("device", device), attributes, self._qos(quality_of_service)
        )

    def gw_claim(
        self,
        device_name: str,
        secret_key: Optional[str],
        duration: Optional[int],
        claiming_request: Any = None,
    ) -> Any:
        """Sends a claiming request for a sub-device (``durationMs`` = ``duration``).

        ``claiming_request`` (tb-mqtt-client's ``{device: {"secretKey", "durationMs"}}``, one
        or more devices) replaces the other arguments: one message per device, in order.

        Returns:
            A delivery handle (for several devices, the last one's: it is acknowledged last).

        Raises:
            TypeError, ValueError: a ``claiming_request`` of the wrong shape; nothing is sent.
        """
        if claiming_request is None:
            _text("device_name", device_name)
            _text("secret_key", secret_key, optional=True)
            return self._gw.claim(device_name, secret_key, _millis("duration", duration), 1)
        if not isinstance(claiming_request, dict) or not claiming_request:
            raise TypeError(
                "claiming_request must be a non-empty dict {device: {secretKey, durationMs}}, "
                f"got {claiming_request!r}"
            )
        claims = []
        for device, claim in claiming_request.items():
            if not isinstance(claim, dict):
                raise TypeError(f"claiming_request[{device!r}] must be a dict, got {claim!r}")
            where = f"claiming_request[{device!r}]"
            _text("every device of claiming_request", device)
            key = _text(f"{where}['secretKey']", claim.get("secretKey"), optional=True)
            ms = _millis(f"{where}['durationMs']", claim.get("durationMs"))
            claims.append((device, key, ms))
        handle = None
        for device, key, ms in claims:
            handle = self._gw.claim(device, key, ms, 1)
        return handle

    # ---- attribute requests and subscriptions ------------------------------------------------

    def _gw_request(self, device: str, keys: Any, callback: Any, client: bool) -> RequestId:
        _check_callback("callback", callback)
        _text("device_name", device)
        rid = self._gw.request_attributes(device, _keys(keys), client, self._request_timeout)
        if callback is not None:
            self._gw_attr_callbacks[rid] = callback
        return RequestId(rid)

    def gw_request_shared_attributes(self, device_name: str, keys: Any, callback: Any) -> RequestId:
        """Requests shared attributes of a sub-device; ``callback(response, None)`` with the
        whole response (``{"id", "device", "value"}`` or ``"values"``), or
        ``callback(None, TimeoutError)``.

        Returns:
            The request id (an int that also has tb-mqtt-client's ``get()``/``rc()``)."""
        return self._gw_request(device_name, keys, callback, False)

    def gw_request_client_attributes(self, device_name: str, keys: Any, callback: Any) -> RequestId:
        """Requests client attributes of a sub-device (see ``gw_request_shared_attributes``)."""
        return self._gw_request(device_name, keys, callback, True)

    def gw_subscribe_to_attribute(self, device: str, attribute: str, callback: Any) -> Any:
        """Calls ``callback({"device", "data"})`` on every shared-attribute change of
        ``device`` naming ``attribute``. Returns the subscription id, or False when the device
        was not connected with ``gw_connect_device`` (as tb-mqtt-client)."""
        _check_callback("callback", callback, optional=False)
        if device != "*" and device not in self._gw_connected:
            log.error("Device %s is not connected", device)
            return False
        sid = self._gw.subscribe(device, _text("attribute", attribute))
        self._gw_subs[sid] = callback
        return sid

    def gw_subscribe_to_all_device_attributes(self, device: str, callback: Any) -> Any:
        """Subscribes to every shared-attribute change of one sub-device."""
        return self.gw_subscribe_to_attribute(device, "*", callback)

    def gw_subscribe_to_all_attributes(self, callback: Any) -> Any:
        """Subscribes to every shared-attribute change of every sub-device."""
        return self.gw_subscribe_to_attribute("*", "*", callback)

    def gw_unsubscribe(self, subscription_id: Any) -> None:
        """Removes a subscription (``"*"`` removes all)."""
        ids = list(self._gw_subs) if subscription_id == "*" else [subscription_id]
        for sid in ids:
            if sid in self._gw_subs:
                del self._gw_subs[sid]
                self._gw.unsubscribe(sid)

    # ---- RPC ---------------------------------------------------------------------------------

    def gw_set_server_side_rpc_request_handler(self, handler: Callable[..., Any]) -> None:
        """``handler(client, {"device", "data": {"id", "method", "params"}})`` for sub-device
        RPCs."""
        _check_callback("handler", handler)
        self.devices_server_side_rpc_request_handler = handler

    def gw_send_rpc_reply(
        self, device: str, req_id: int, resp: Any, quality_of_service: Optional[int] = None
    ) -> Any:
        """Replies to a sub-device RPC; returns a delivery handle (None for a QoS not 0/1)."""
        qos = self.quality_of_service if quality_of_service is None else quality_of_service
        if qos not in (0, 1):
            log.error("Quality of service (qos) value must be 0 or 1")
            return None
        _text("device", device)
        try:
            rid = int(req_id)  # tb-mqtt-client passes the request's id on as it came
        except (TypeError, ValueError):
            raise TypeError(f"req_id must be the request's int id, got {req_id!r}") from None
        return self._gw.send_rpc_reply(device, rid, resp, qos)

    # ---- events ------------------------------------------------------------------------------

    def _gateway_event(self, ev: tuple) -> None:
        kind = ev[0]
        if kind == "gw_attributes":
            content = {"device": ev[1], "data": ev[2]}
            for sid in ev[3]:
                cb = self._gw_subs.get(sid)
                if cb is not None:
                    self._call(cb, content)
        elif kind == "gw_rpc_request":
            content = {"device": ev[1], "data": ev[2]}
            if self.devices_server_side_rpc_request_handler is not None:
                self._call(self.devices_server_side_rpc_request_handler, self, content)
            else:
                log.debug("sub-device RPC with no handler set: %r", content)
        elif kind == "gw_attribute_response":
            rid, value, timed_out = ev[1], ev[3], ev[4]
            cb = self._gw_attr_callbacks.pop(rid, None)
            if cb is None:
                return
            if timed_out is not None:
                exc = TimeoutError(f"no response to attribute request {rid} within {timed_out:g} s")
                self._call_attr(cb, None, exc)
            else:
                self._call_attr(cb, value, None)
        elif kind == "gw_device_disconnected":
            log.info("Device %r disconnected by the server, reason %s", ev[1], ev[2])
            if self.device_disconnect_callback is not None:
                notice = {"device": ev[1], "reason": ev[2]}
                self._call(self.device_disconnect_callback, self, notice)
