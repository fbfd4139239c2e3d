"""``TBDeviceMqttClient``: the MicroPython SDK's client, on CPython.

Every documented method keeps its name, signature and behaviour
(``spec/api-contract.md``); host extras are keyword-only. The protocol runs in the Rust engine
(``thingsboard_sdk._engine``); this module keeps the Python side: callbacks, and the thread
they run on. Callbacks run only on the thread that calls ``connect``, ``check_for_msg``,
``wait_for_msg``, ``request_attributes`` or ``send_rpc_call``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import time
import uuid
from typing import Any, Callable, Iterable, Optional

from . import _engine
from ._engine import MessageHandle
from .exceptions import MessageRefusedError, ProvisionError, QueueFullError
from .provision_client import _provision

__all__ = [
    "TBDeviceMqttClient",
    "ProvisionError",
    "QueueFullError",
    "MessageRefusedError",
    "MessageHandle",
    "TBPublishInfo",
]

log = logging.getLogger("thingsboard_sdk.client")


class TBPublishInfo:
    """tb-mqtt-client's result codes, to compare a handle's ``get()`` and ``rc()`` with
    (``handle.get() == TBPublishInfo.TB_ERR_SUCCESS``). The handles themselves are
    ``MessageHandle``; only ``TB_ERR_SUCCESS`` (0), ``TB_ERR_AGAIN`` (-1) and, for a message
    the server refused (``MessageRefusedError``), ``TB_ERR_PAYLOAD_SIZE`` (9) occur."""

    TB_ERR_AGAIN = -1
    TB_ERR_SUCCESS = 0
    TB_ERR_NOMEM = 1
    TB_ERR_PROTOCOL = 2
    TB_ERR_INVAL = 3
    TB_ERR_NO_CONN = 4
    TB_ERR_CONN_REFUSED = 5
    TB_ERR_NOT_FOUND = 6
    TB_ERR_CONN_LOST = 7
    TB_ERR_TLS = 8
    TB_ERR_PAYLOAD_SIZE = 9
    TB_ERR_NOT_SUPPORTED = 10
    TB_ERR_AUTH = 11
    TB_ERR_ACL_DENIED = 12
    TB_ERR_UNKNOWN = 13
    TB_ERR_ERRNO = 14
    TB_ERR_QUEUE_SIZE = 15


FW_TITLE_ATTR = "fw_title"
FW_VERSION_ATTR = "fw_version"
FW_CHECKSUM_ATTR = "fw_checksum"
FW_CHECKSUM_ALG_ATTR = "fw_checksum_algorithm"
FW_SIZE_ATTR = "fw_size"
FW_STATE_ATTR = "fw_state"

RPC_REQUEST_TOPIC = "v1/devices/me/rpc/request/"
RPC_RESPONSE_TOPIC = "v1/devices/me/rpc/response/"
ATTRIBUTES_TOPIC = "v1/devices/me/attributes"
ATTRIBUTE_REQUEST_TOPIC = "v1/devices/me/attributes/request/"
ATTRIBUTE_TOPIC_RESPONSE = "v1/devices/me/attributes/response/"
CLAIMING_TOPIC = "v1/devices/me/claim"


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path, encoding="ascii") as f:
                value = f.read().strip()
            if value:
                return value
        except OSError:
            continue
    return format(uuid.getnode(), "012x")


def default_client_id(access_token: Optional[str] = None) -> str:
    """A client id that is stable for this machine (and device token).

    The reference uses the hex of ``machine.unique_id()``. The host equivalent hashes the
    machine id; the token is mixed in so that two devices run from one machine do not share
    an MQTT client id (a broker such as mosquitto would make them take over each other's
    session).
    """
    seed = _machine_id() + "/" + (access_token or "")
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def _keys(keys: Optional[Iterable[str]], name: str) -> list:
    if not keys:
        return []
    if isinstance(keys, str):
        return [keys]
    out = []
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"{name} must be a list of str, got item {k!r}")
        out.append(k)
    return out


def _manual_limits(**given: Any) -> Optional[dict]:
    """The limits set by hand, for the engine; None when none is. tb-mqtt-client's
    ``"DEFAULT_..."`` placeholders count as not set."""
    limits = {
        k: None if isinstance(v, str) and v.startswith("DEFAULT_") else v for k, v in given.items()
    }
    for k, v in limits.items():
        if v is not None and k != "max_payload_size" and not isinstance(v, str):
            raise TypeError(f"rate limits are strings such as '100:1,3000:60', got {v!r}")
    size = limits.get("max_payload_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 64):
        raise ValueError(f"max_payload_size must be an int of at least 64 bytes, got {size!r}")
    if all(v is None for v in limits.values()):
        return None
    for key in (
        "messages",
        "telemetry_messages",
        "telemetry_data_points",
        "gateway_messages",
        "gateway_telemetry_messages",
        "gateway_telemetry_data_points",
        "max_payload_size",
    ):
        limits.setdefault(key, None)
    return limits


def _check_callback(name: str, cb: Any, *, optional: bool = True) -> None:
    """Refuses a callback that cannot be called now, not when a message arrives later.

    Accepts the reference's ``(function, extra)`` pair as well.
    """
    if cb is None and optional:
        return
    if isinstance(cb, tuple) and len(cb) == 2 and callable(cb[0]):
        return
    if not callable(cb):
        raise TypeError(f"{name} must be callable, got {cb!r}")


def _check_timeout(name: str, value: Any) -> float:
    """A number of seconds that is not NaN (which would wait forever), or a clear exception
    naming it. A negative one means "do not wait", as ``deadline - now`` may well give."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


class TBDeviceMqttClient:
    """A ThingsBoard device over MQTT.

    Args:
        host: ThingsBoard host name or address.
        port: MQTT port (1883 plain, 8883 TLS).
        access_token: the device's access token, sent as the MQTT user name.
        quality_of_service: 0 or 1 (None means 1) for telemetry, attributes, claims, RPC and
            subscriptions.
        client_id: MQTT client id; None derives a stable one from this machine.
        chunk_size: firmware download chunk size in bytes; 0 means one chunk.

    Keyword-only host extras:
        username, password: MQTT basic credentials (instead of an access token).
        keepalive: MQTT keepalive in seconds (default 120, as the reference).
        tls, ca_certs, cert_file, key_file: TLS (rustls); ``cert_file``/``key_file`` give
            X.509 device authentication. ``tls_verify=False`` turns certificate verification
            off; it is on unless asked.
        reconnect: reconnect automatically after a drop (default True), with a backoff from
            ``reconnect_min_delay`` to ``reconnect_max_delay`` seconds.
        request_timeout: seconds ``request_attributes``/``send_rpc_call`` wait (default 10).
        max_queued_messages: bound on messages not yet acknowledged; beyond it ``send_*``
            raises ``QueueFullError``.
        max_inflight: MQTT QoS 1 window per client.
        firmware_updates: download firmware the server assigns (default True, as the
            reference); False neither subscribes to the firmware topics nor downloads.
        firmware_dir: folder the verified image is written to, named after ``fw_title``
            (default: the current folder). It is written to a hidden ``.part`` file first
            and renamed only once its checksum matched.
        firmware_chunk_timeout: seconds a requested chunk may take before the update ends
            FAILED (default 30).
        on_firmware_update: ``callback(path, info)`` called instead of the reference's
            ``machine.reset()`` once an image is verified and saved: ``path`` is the file,
            ``info`` the ``fw_*`` attributes that offered it.
        on_firmware_progress: ``callback(received, total)`` in bytes, at most once per percent
            of a download.
        queue_dir: folder for a durable queue: every QoS 1 message ``send_*`` accepts is
            stored there (one file per client id) before the call returns and removed once the
            broker acknowledged it; a new process with the same folder and client id sends
            what is left, so even ``kill -9`` loses nothing. Default: in memory only.
        session_limits: ask the server for its limits (``getSessionLimits``) after each
            connect, then split and pace by them (a server that does not answer is fine).
            Default False here, so that the device sends exactly what the MicroPython SDK
            sends; True for ``TBGatewayMqttClient``, as tb-mqtt-client does.
            ``pacing=False`` keeps only the packet-size bound.
        messages_rate_limit, telemetry_rate_limit, telemetry_dp_rate_limit: limits set by
            hand, as ThingsBoard writes them (``"100:1,3000:60"``: 100 per second and 3000
            per minute at once); given, the server is not asked. tb-mqtt-client's
            ``"DEFAULT_..."`` values mean "not set". ``max_payload_size``: the largest packet.
            Data bigger than a packet is split into several messages under one handle.

    Raises:
        ValueError: a QoS other than 0 or 1, a bad port or timeout.
        OSError: ``queue_dir`` cannot be opened or written.
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        access_token: Optional[str] = None,
        quality_of_service: Optional[int] = None,
        client_id: Optional[str] = None,
        chunk_size: int = 0,
        *,
        username: Optional[str] = None,
        password: Optional[str] = None,
        keepalive: float = 120,
        tls: bool = False,
        ca_certs: Optional[str] = None,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        tls_verify: bool = True,
        reconnect: bool = True,
        reconnect_min_delay: float = 0.1,
        reconnect_max_delay: float = 0.5,
        request_timeout: float = 10.0,
        max_queued_messages: int = 100_000,
        max_inflight: int = 64,
        firmware_updates: bool = True,
        firmware_dir: Optional[str] = None,
        firmware_chunk_timeout: float = 30.0,
        on_firmware_update: Optional[Callable[[str, dict], Any]] = None,
        on_firmware_progress: Optional[Callable[[int, int], Any]] = None,
        queue_dir: Optional[str] = None,
        session_limits: Optional[bool] = None,
        pacing: bool = True,
        messages_rate_limit: Optional[str] = None,
        telemetry_rate_limit: Optional[str] = None,
        telemetry_dp_rate_limit: Optional[str] = None,
        max_payload_size: Optional[int] = None,
    ) -> None:
        qos = 1 if quality_of_service is None else quality_of_service
        if isinstance(qos, bool) or not isinstance(qos, int) or qos not in (0, 1):
            raise ValueError(f"quality_of_service must be 0 or 1, got {quality_of_service!r}")
        if isinstance(port, str) and port.strip().isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"port must be an int, got {port!r}")
        if isinstance(host, (bytes, bytearray)):
            host = host.decode()
        if not isinstance(host, str):
            raise TypeError(f"host must be a str, got {host!r}")
        for name, value in (("access_token", access_token), ("username", username)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {value!r}")
        if (
            isinstance(request_timeout, bool)
            or not isinstance(request_timeout, (int, float))
            or not math.isfinite(request_timeout)
            or request_timeout <= 0
        ):
            raise ValueError(f"request_timeout must be a positive number, got {request_timeout!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 0:
            raise ValueError(f"chunk_size must be an int >= 0 (bytes), got {chunk_size!r}")
        if firmware_dir is not None:
            firmware_dir = os.fspath(firmware_dir)
            if not os.path.isdir(firmware_dir):
                raise ValueError(f"firmware_dir {firmware_dir!r} is not an existing folder")
        for name, cb in (
            ("on_firmware_update", on_firmware_update),
            ("on_firmware_progress", on_firmware_progress),
        ):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable, got {cb!r}")
        self._host = host
        self._port = port
        self.quality_of_service = qos
        self.current_firmware_info = {
            "current_" + FW_TITLE_ATTR: "Initial",
            "current_" + FW_VERSION_ATTR: "v0",
        }
        self._engine_firmware = ("Initial", "v0")
        self.on_firmware_update = on_firmware_update
        self.on_firmware_progress = on_firmware_progress
        self._firmware_offer: dict = {}
        self.firmware_info: Optional[dict] = None
        self.firmware_data: Optional[bytes] = None
        if not access_token and username is None and cert_file is None:
            log.warning("token is not set, connection without tls wont be established")
        self._access_token = access_token
        if isinstance(client_id, (bytes, bytearray)):
            client_id = client_id.decode()
        if not client_id:
            client_id = default_client_id(access_token or username)
        self._client_id = client_id
        self._chunk_size = chunk_size
        self._request_timeout = float(request_timeout)
        self._engine = _engine.Client(
            str(host),
            port,
            client_id,
            username=username if username is not None else access_token,
            password=password,
            qos=qos,
            keepalive=_check_timeout("keepalive", keepalive),
            tls=tls,
            ca_certs=ca_certs,
            cert_file=cert_file,
            key_file=key_file,
            tls_verify=tls_verify,
            reconnect=reconnect,
            reconnect_min_delay=_check_timeout("reconnect_min_delay", reconnect_min_delay),
            reconnect_max_delay=_check_timeout("reconnect_max_delay", reconnect_max_delay),
            max_queued_messages=max_queued_messages,
            max_inflight=max_inflight,
            chunk_size=chunk_size,
            firmware=bool(firmware_updates),
            firmware_dir=firmware_dir,
            firmware_chunk_timeout=_check_timeout("firmware_chunk_timeout", firmware_chunk_timeout),
            gateway=self._GATEWAY,
            queue_dir=None if queue_dir is None else os.fspath(queue_dir),
            session_limits=self._ASK_LIMITS if session_limits is None else bool(session_limits),
            pacing=bool(pacing),
            rate_limits=_manual_limits(
                messages=messages_rate_limit,
                telemetry_messages=telemetry_rate_limit,
                telemetry_data_points=telemetry_dp_rate_limit,
                max_payload_size=max_payload_size,
                **getattr(self, "_gateway_limits", {}),
            ),
        )
        self._rpc_handler: Optional[Callable[[str, Any], Any]] = None
        self._subscriptions: dict = {}
        self._attr_callbacks: dict = {}
        self._rpc_callbacks: dict = {}

    # ---- state -----------------------------------------------------------------------------

    def is_connected(self) -> bool:
        """tb-mqtt-client's spelling of ``connected``."""
        return self.connected

    @property
    def connected(self) -> bool:
        """True while an MQTT session is up (False while reconnecting)."""
        return self._engine.connected

    @property
    def last_error(self) -> Optional[str]:
        """Why the last ``connect()`` failed or the link last dropped (host extra)."""
        return self._engine.last_error

    # ---- connection --------------------------------------------------------------------------

    def connect(self, timeout: float = 10) -> Optional[int]:
        """Opens the MQTT session and subscribes to the device topics.

        Returns:
            The CONNACK session-present flag (0 or 1), or None if the connection failed; the
            reason is logged at ERROR and kept in ``last_error``.
        """
        self._sync_current_firmware()
        present = self._engine.connect(_check_timeout("timeout", timeout))
        if present is None:
            log.error(
                "cannot connect to %s:%s: %s", self._host, self._port, self._engine.last_error
            )
            return None
        self._dispatch(self._engine.poll_events(0.0))
        return 1 if present else 0

    def disconnect(self) -> None:
        """Flushes queued QoS 1 messages (bounded), sends DISCONNECT and closes the socket."""
        self._engine.disconnect(5.0)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every accepted QoS 1 message is acknowledged (host extra).

        Returns:
            True when all are acknowledged, False if ``timeout`` seconds passed first.
        """
        return self._engine.flush(timeout)

    # ---- uplinks -------------------------------------------------------------------------------

    def send_telemetry(self, data: Any) -> MessageHandle:
        """Publishes telemetry: a dict, a ``{"ts", "values"}`` dict, or a list of those.

        Returns:
            A handle whose ``wait(timeout)`` tells whether the broker acknowledged it.

        Raises:
            TypeError, ValueError: data JSON cannot encode, or of the wrong shape; nothing is
                published.
            QueueFullError: ``max_queued_messages`` messages are unacknowledged.
        """
        return self._engine.send_telemetry(data)

    def send_attributes(self, data: dict) -> MessageHandle:
        """Publishes client-side attributes (a dict). Same rules as ``send_telemetry``."""
        return self._engine.send_attributes(data)

    def claim_device(
        self, secret_key: Optional[str] = None, duration_ms: Optional[int] = None
    ) -> MessageHandle:
        """Publishes a claiming request; each field is sent only when given."""
        if secret_key is not None and not isinstance(secret_key, str):
            raise TypeError(f"secret_key must be a str, got {secret_key!r}")
        if duration_ms is not None and (
            isinstance(duration_ms, bool)
            or not isinstance(duration_ms, int)
            or not 0 <= duration_ms < 2**63
        ):
            raise ValueError(f"duration_ms must be a non-negative int, got {duration_ms!r}")
        return self._engine.claim_device(secret_key, duration_ms)

    def send_rpc_reply(self, request_id: Any, response: Any) -> MessageHandle:
        """Replies to server-side RPC ``request_id`` (str or int, as the handler got it)."""
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            raise TypeError(f"request_id must be a str or int, got {request_id!r}")
        return self._engine.send_rpc_reply(str(request_id), response)

    # ---- requests ------------------------------------------------------------------------------

    def request_attributes(
        self,
        client_keys: Optional[Iterable[str]] = None,
        shared_keys: Optional[Iterable[str]] = None,
        callback: Optional[Callable[..., Any]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> int:
        """Requests attributes and waits for this request's own response.

        Other messages are dispatched meanwhile. ``callback(result, None)`` gets the response
        (``{"client": {...}, "shared": {...}}``); after ``timeout`` seconds (default:
        ``request_timeout``) it gets ``(None, TimeoutError)`` instead. As in the reference,
        ``callback`` may also be ``(function, extra)``: ``function(result, exc, extra)``.

        Returns:
            The request id (host extra).
        """
        _check_callback("callback", callback)
        t = self._request_timeout if timeout is None else _check_timeout("timeout", timeout)
        rid = self._engine.request_attributes(
            _keys(client_keys, "client_keys"), _keys(shared_keys, "shared_keys"), t
        )
        self._attr_callbacks[rid] = callback
        self._wait_request(self._attr_callbacks, rid, t)
        return rid

    def send_rpc_call(
        self,
        method: str,
        params: Any,
        callback: Optional[Callable[..., Any]],
        *,
        timeout: Optional[float] = None,
    ) -> int:
        """Client-side RPC: waits for the response and calls ``callback(id, response, None)``,
        or ``callback(id, None, TimeoutError)`` after ``timeout`` seconds.

        Returns:
            The request id (host extra).
        """
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {method!r}")
        _check_callback("callback", callback)
        t = self._request_timeout if timeout is None else _check_timeout("timeout", timeout)
        rid = self._engine.send_rpc_call(method, params, t)
        self._rpc_callbacks[rid] = callback
        self._wait_request(self._rpc_callbacks, rid, t)
        return rid

    def _wait_request(self, table: dict, rid: int, timeout: float) -> None:
        # The engine delivers the response or the timeout as an event; the guard only matters
        # if the engine forgot the request.
        guard = time.monotonic() + timeout + 5.0
        try:
            while rid in table:
                self._dispatch(self._engine.poll_events(1.0))
                if rid in table and time.monotonic() > guard:
                    cb = table.pop(rid)
                    self._engine.cancel_request(rid)
                    self._deliver_timeout(table, cb, rid, timeout)
        except BaseException:
            # Interrupted (Ctrl-C): forget the request so a late answer is dropped.
            if table.pop(rid, None) is not None or rid not in table:
                self._engine.cancel_request(rid)
            raise

    def _deliver_timeout(self, table: dict, cb: Any, rid: int, timeout: float) -> None:
        if cb is None:
            return
        if table is self._attr_callbacks:
            exc = TimeoutError(f"no response to attribute request {rid} within {timeout:g} s")
            self._call_attr(cb, None, exc)
        else:
            exc = TimeoutError(f"no response to RPC call {rid} within {timeout:g} s")
            self._call(cb, rid, None, exc)

    # ---- server RPC and attribute subscriptions ------------------------------------------

    def set_server_side_rpc_request_handler(self, handler: Callable[[str, Any], Any]) -> None:
        """Registers ``handler(request_id: str, request_body)``; only the last one is kept."""
        _check_callback("handler", handler)
        self._rpc_handler = handler

    def subscribe_to_attribute(self, key: str, callback: Callable[..., Any]) -> int:
        """Calls ``callback(result, None)`` for shared-attribute updates containing ``key``.

        Returns:
            The subscription id (1, 2, ... per client). No MQTT traffic.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {key!r}")
        _check_callback("callback", callback, optional=False)
        sid = self._engine.subscribe_to_attribute(key)
        self._subscriptions[sid] = (key, callback)
        log.debug("Subscribed to %s with id %d", key, sid)
        return sid

    def subscribe_to_all_attributes(self, callback: Callable[..., Any]) -> int:
        """Calls ``callback(result, None)`` for every shared-attribute update."""
        return self.subscribe_to_attribute("*", callback)

    def unsubscribe_from_attribute(self, subscription_id: Any) -> None:
        """Removes a subscription; an unknown id is a no-op (``"*"`` removes all)."""
        if subscription_id == "*":
            self.clean_device_sub_dict()
            return
        if isinstance(subscription_id, int) and not isinstance(subscription_id, bool):
            if 0 <= subscription_id < 2**32:
                self._engine.unsubscribe_from_attribute(subscription_id)
            self._subscriptions.pop(subscription_id, None)

    def clean_device_sub_dict(self) -> None:
        """Removes every attribute subscription."""
        self._engine.clear_subscriptions()
        self._subscriptions.clear()

    # ---- receiving -------------------------------------------------------------------------------

    def _raise_if_down(self) -> None:
        if not self._engine.connected:
            reason = self._engine.last_error or "connect() has not succeeded"
            raise OSError(errno.ENOTCONN, f"not connected to ThingsBoard: {reason}")

    def check_for_msg(self) -> None:
        """Processes every message already received; never blocks.

        Raises:
            OSError: the link is down (the client reconnects by itself meanwhile).
        """
        self._sync_current_firmware()
        self._dispatch(self._engine.poll_events(0.0))
        self._raise_if_down()

    def wait_for_msg(self, *, timeout: Optional[float] = None) -> bool:
        """Blocks until at least one message has been processed (Ctrl-C interrupts).

        Returns:
            True once a message was processed, False if ``timeout`` seconds passed first.

        Raises:
            OSError: the link is down.
        """
        if timeout is not None:
            timeout = _check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._sync_current_firmware()
        while True:
            self._raise_if_down()
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return False
            events = self._engine.poll_events(left)
            if events:
                self._dispatch(events)
                return True

    # ---- dispatch ------------------------------------------------------------------------------

    def _call(self, cb: Callable[..., Any], *args: Any) -> None:
        try:
            cb(*args)
        except Exception:
            log.exception("callback %r raised; the client goes on", cb)

    def _sync_current_firmware(self) -> None:
        """Tells the engine the firmware the script declares in ``current_firmware_info``
        (scripts set or edit that dict, as on MicroPython), so offers compare against it."""
        info = self.current_firmware_info
        if not isinstance(info, dict):
            return
        current = (
            str(info.get("current_" + FW_TITLE_ATTR, "Initial")),
            str(info.get("current_" + FW_VERSION_ATTR, "v0")),
        )
        if current != self._engine_firmware:
            self._engine.set_current_firmware(*current)
            self._engine_firmware = current

    def _set_firmware_info(self, data: dict) -> None:
        self.firmware_info = data
        if isinstance(data, dict) and FW_TITLE_ATTR in data:
            self._firmware_offer = {k: v for k, v in data.items() if k.startswith("fw_")}

    # A gateway session (tb_gateway_mqtt.TBGatewayMqttClient) sets these.
    _GATEWAY = False
    _ASK_LIMITS = False

    def _gateway_event(self, ev: tuple) -> None:
        log.debug("gateway event on a device session: %r", ev[0])

    def _firmware_event(self, ev: tuple) -> None:
        kind = ev[0]
        if kind == "firmware_progress":
            if self.on_firmware_progress is not None:
                self._call(self.on_firmware_progress, ev[1], ev[2])
        elif kind == "firmware_started":
            # As the reference: the download state is mirrored in current_firmware_info.
            self.firmware_data = b""
            if isinstance(self.current_firmware_info, dict):
                self.current_firmware_info[FW_STATE_ATTR] = "DOWNLOADING"
            log.info("firmware %s %s: downloading %d bytes", ev[1], ev[2], ev[3])
        elif kind == "firmware_updated":
            title, version, path = ev[1], ev[2], ev[4]
            self.current_firmware_info = {
                "current_" + FW_TITLE_ATTR: title,
                "current_" + FW_VERSION_ATTR: version,
                FW_STATE_ATTR: "UPDATED",
            }
            self._engine_firmware = (title, version)
            log.info("firmware %s %s saved to %s", title, version, path)
            if self.on_firmware_update is not None:
                self._call(self.on_firmware_update, path, self._updated_info(title, version, ev[3]))
        elif kind == "firmware_failed":
            # The engine has logged it (thingsboard_sdk.firmware): once is enough.
            if isinstance(self.current_firmware_info, dict):
                self.current_firmware_info[FW_STATE_ATTR] = "FAILED"

    def _updated_info(self, title: str, version: str, size: int) -> dict:
        """The ``fw_*`` attributes of the offer that brought ``title`` ``version``."""
        offer = self._firmware_offer
        same = (offer.get(FW_TITLE_ATTR), offer.get(FW_VERSION_ATTR)) == (title, version)
        info = dict(offer) if same else {}
        info.setdefault(FW_TITLE_ATTR, title)
        info.setdefault(FW_VERSION_ATTR, version)
        info.setdefault(FW_SIZE_ATTR, size)
        return info

    def _call_attr(self, cb: Any, result: Any, exc: Optional[BaseException]) -> None:
        # The reference also takes ``(callback, extra)`` and calls callback(result, exc, extra).
        if isinstance(cb, tuple) and len(cb) == 2 and callable(cb[0]):
            self._call(cb[0], result, exc, cb[1])
        else:
            self._call(cb, result, exc)

    def _dispatch(self, events: list) -> None:
        for ev in events:
            kind = ev[0]
            if kind.startswith("firmware_"):
                self._firmware_event(ev)
                continue
            if kind.startswith("gw_"):
                self._gateway_event(ev)
                continue
            if kind == "attributes":
                data, subs = ev[1], ev[2]
                self._set_firmware_info(data)
                for sid in subs:
                    entry = self._subscriptions.get(sid)
                    if entry is not None:
                        self._call(entry[1], data, None)
            elif kind == "rpc_request":
                if self._rpc_handler is not None:
                    self._call(self._rpc_handler, ev[1], ev[2])
                else:
                    log.debug("server RPC %s with no handler set: %r", ev[1], ev[2])
            elif kind == "attribute_response":
                rid, value, timed_out = ev[1], ev[2], ev[3]
                cb = self._attr_callbacks.pop(rid, None)
                if timed_out is not None:
                    self._deliver_timeout(self._attr_callbacks, cb, rid, timed_out)
                    continue
                if isinstance(value, dict):
                    shared = value.get("shared", {})
                    self._set_firmware_info(shared if isinstance(shared, dict) else {})
                if cb is not None:
                    self._call_attr(cb, value, None)
            elif kind == "rpc_response":
                rid, value, timed_out = ev[1], ev[2], ev[3]
                cb = self._rpc_callbacks.pop(rid, None)
                if timed_out is not None:
                    self._deliver_timeout(self._rpc_callbacks, cb, rid, timed_out)
                elif cb is not None:
                    self._call(cb, rid, value, None)
            elif kind == "dropped":
                if ev[3]:
                    log.debug("ignored the broker's echo of our own publish on %r", ev[1])
                else:
                    log.warning("dropped a message on %r: %s", ev[1], ev[2])

    # ---- provisioning ----------------------------------------------------------------------------

    @staticmethod
    def get_provision_request(
        provision_key: Optional[str] = None,
        provision_secret: Optional[str] = None,
        device_name: Optional[str] = None,
        access_token: Optional[str] = None,
        client_id: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        hash: Optional[str] = None,  # noqa: A002 - the reference's parameter name
        gateway: Optional[bool] = None,
        *,
        provision_device_key: Optional[str] = None,
        provision_device_secret: Optional[str] = None,
    ) -> dict:
        """Builds a provisioning request (spec 10.2). Optional fields are omitted, never None.

        The first two parameters also go by the reference's names ``provision_device_key``
        and ``provision_device_secret``.
        """
        key = provision_key if provision_key is not None else provision_device_key
        secret = provision_secret if provision_secret is not None else provision_device_secret
        if key is None or secret is None:
            raise TypeError("get_provision_request needs provision_key and provision_secret")
        request: dict = {"provisionDeviceKey": key, "provisionDeviceSecret": secret}
        if access_token:
            request["token"] = access_token
            request["credentialsType"] = "ACCESS_TOKEN"
        elif username or password or client_id:
            for field, value in (
                ("username", username),
                ("password", password),
                ("clientId", client_id),
            ):
                if value:
                    request[field] = value
            request["credentialsType"] = "MQTT_BASIC"
        elif hash:
            request["hash"] = hash
            request["credentialsType"] = "X509_CERTIFICATE"
        if device_name:
            request["deviceName"] = device_name
        if gateway:
            request["gateway"] = gateway
        return request

    @staticmethod
    def provision(host: str, port: int, provision_request: dict, *, timeout: float = 10.0) -> dict:
        """Provisions a device in a separate session; works on the class and on an instance.

        Returns:
            The SUCCESS response (``credentialsType``, ``credentialsValue``, ``status``).

        Raises:
            ProvisionError: any other status, no answer within ``timeout``, or no connection;
                ``.status`` and ``.error_msg`` carry ThingsBoard's ``status`` and ``errorMsg``.
        """
        status, error_msg, response = _provision(host, port, provision_request, timeout)
        if status != "SUCCESS":
            raise ProvisionError(status, error_msg)
        return response
