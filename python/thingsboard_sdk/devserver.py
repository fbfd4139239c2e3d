"""An embedded ThingsBoard-compatible MQTT server for tests and tools.

It behaves as ThingsBoard's device transport does (access tokens, MQTT basic credentials,
telemetry and attributes typed as ThingsBoard types them, attribute requests and pushes,
server- and client-side RPC, claiming, provisioning) and keeps everything in memory::

    from thingsboard_sdk.devserver import DevServer
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    with DevServer() as server:                      # 127.0.0.1, a free port
        token = server.add_device("Thermostat")      # a fresh access token
        client = TBDeviceMqttClient(server.host, server.port, access_token=token)
        client.connect()
        client.send_telemetry({"temperature": 25.5})
        server.wait_for(lambda: server.latest_telemetry("Thermostat"))
        assert server.latest_telemetry("Thermostat") == {"temperature": 25.5}

Every method may be called from any thread; waiting methods release the GIL, take a timeout
and can be interrupted with Ctrl-C. Await stored data with :meth:`DevServer.wait_for` (it
wakes on every change to the store) rather than sleeping.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, TypeVar

from . import _engine

__all__ = [
    "Claim",
    "ClientRpcRecord",
    "ConnectionEvent",
    "DevServer",
    "PendingRpc",
    "ProvisionedDevice",
    "RpcRecord",
    "TelemetryPoint",
    "write_self_signed",
]

T = TypeVar("T")

#: The REST API's default user, ThingsBoard's demo tenant administrator.
DEFAULT_ADMIN = "tenant@thingsboard.org:tenant"


def parse_admin(text: str) -> tuple[str, str]:
    """Splits ``"USER:PASSWORD"`` at the first colon.

    Args:
        text: the login, e.g. ``tenant@thingsboard.org:tenant``.

    Returns:
        (user, password).

    Raises:
        ValueError: no colon, or an empty user or password.
    """
    user, sep, password = str(text).partition(":")
    if not sep or not user or not password:
        raise ValueError(f"admin must be USER:PASSWORD with both non-empty, got {text!r}")
    return user, password


# ThingsBoard's value types, as ``TelemetryPoint.type`` and ``typed=True`` report them.
TYPES = ("BOOLEAN", "LONG", "DOUBLE", "STRING", "JSON")


def _value(kind: str, value: Any) -> Any:
    """A stored value as Python: JSON values (sent as text by the engine) are parsed."""
    return json.loads(value) if kind == "JSON" else value


def _json_or_text(text: Optional[str]) -> Any:
    """A payload as Python data if it is JSON, else the text itself."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _dumps(data: Any, what: str) -> str:
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable, got {data!r}: {exc}") from None


@dataclass(frozen=True)
class TelemetryPoint:
    """One stored telemetry value.

    Attributes:
        ts: Unix milliseconds (the device's ``ts`` or the server's receive time).
        key: telemetry key.
        value: the value as Python (bool, int, float, str, or parsed JSON for ``JSON``).
        type: ThingsBoard's type: ``BOOLEAN``, ``LONG``, ``DOUBLE``, ``STRING`` or ``JSON``.
    """

    ts: int
    key: str
    value: Any
    type: str


@dataclass(frozen=True)
class Claim:
    """A claim request (``v1/devices/me/claim``)."""

    ts: int
    secret_key: str
    duration_ms: int


@dataclass(frozen=True)
class ProvisionedDevice:
    """A device created or handed out by provisioning.

    Attributes:
        credentials: ``{"type": "ACCESS_TOKEN", "token": ...}``, ``{"type": "MQTT_BASIC",
            "client_id": ..., "username": ..., "password": ...}`` or
            ``{"type": "X509_CERTIFICATE", "hash": ...}``.
    """

    ts: int
    name: str
    profile_key: str
    credentials: dict
    gateway: bool


@dataclass(frozen=True)
class ConnectionEvent:
    """What happened to a connection.

    Attributes:
        kind: ``connected``, ``provision_session``, ``refused`` (CONNACK refusal),
            ``rejected`` (closed without CONNACK) or ``disconnected``.
        device: device name once authenticated, else None.
        version: ``3.1``, ``3.1.1`` or ``5`` once the CONNECT was decoded.
        return_code: the CONNACK code sent, for ``connected``/``refused``.
        reason: human-readable (``accepted``, ``unknown access token``, ``client DISCONNECT``).
    """

    ts: int
    conn_id: int
    peer: str
    kind: str
    device: Optional[str]
    client_id: str
    version: Optional[str]
    return_code: Optional[int]
    reason: str


@dataclass(frozen=True)
class RpcRecord:
    """A server-side RPC and its ThingsBoard status (``QUEUED``, ``SENT``, ``DELIVERED``,
    ``SUCCESSFUL``, ``TIMEOUT``, ``EXPIRED``); ``reply`` is parsed JSON (or text)."""

    id: int
    method: str
    params: Any
    oneway: bool
    status: str
    reply: Any


@dataclass(frozen=True)
class ClientRpcRecord:
    """A client-side RPC request a device made, and the reply it got (None: not yet)."""

    ts: int
    id: int
    method: str
    params: Any
    reply: Any


class PendingRpc:
    """A server-side RPC on its way, from :meth:`DevServer.start_rpc`."""

    def __init__(self, call: Any):
        self._call = call

    @property
    def id(self) -> int:
        """Per-device RPC id (the ``{id}`` of ``v1/devices/me/rpc/request/{id}``)."""
        return self._call.id

    @property
    def device(self) -> str:
        """Device name."""
        return self._call.device

    def wait(self, timeout: Optional[float] = None) -> Any:
        """Waits for the device's reply.

        Args:
            timeout: seconds to wait at most; None waits until the RPC expires.

        Returns:
            The reply payload as Python data (text if it is not JSON).

        Raises:
            TimeoutError: no reply within ``timeout``, or the RPC expired.
        """
        text = self._call.wait(timeout)
        if text is None:
            raise TimeoutError(f"no reply to RPC {self.id} from {self.device!r} in {timeout} s")
        return _json_or_text(text)

    def poll(self) -> tuple[bool, Any]:
        """``(True, reply)`` once replied, ``(False, None)`` while pending, without waiting.

        Raises:
            TimeoutError: the RPC expired.
        """
        text = self._call.wait(0.0)
        return (False, None) if text is None else (True, _json_or_text(text))

    def __repr__(self) -> str:
        return f"<PendingRpc {self.id} to {self.device!r}>"


def _describe(predicate: Callable[[], Any]) -> str:
    """The source of a predicate (``lambda: ...``) for an error message, else its repr."""
    try:
        import inspect

        source = inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
    if getattr(predicate, "__name__", "") == "<lambda>" and "lambda" in source:
        source = source[source.index("lambda") :]
        depth, end = 0, len(source)
        for i, ch in enumerate(source):  # cut at the bracket that closes the call around it
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth < 0 or (depth == 0 and ch == ","):
                end = i
                break
        source = source[:end].strip()
    return source if len(source) <= 200 else source[:200] + "..."


def write_self_signed(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Writes certificates for trying TLS on one machine, or keeps them if all are there.

    A CA (``ca.pem``, ``ca-key.pem``), a server certificate for ``localhost`` and
    ``127.0.0.1`` signed by it (``server.pem``, ``server-key.pem``) and a device certificate
    signed by it (``device.pem``, ``device-key.pem``); ECDSA P-256, valid 2024-2049.

    Args:
        folder: where to write them (created if missing).

    Returns:
        Their paths by role: ``ca_cert``, ``ca_key``, ``server_cert``, ``server_key``,
        ``device_cert``, ``device_key``.

    Raises:
        ValueError: they cannot be made or written.
    """
    return dict(_engine.write_self_signed(os.fspath(folder)))


class DevServer:
    """A running dev server; it starts listening in the constructor.

    Use it as a context manager (or call :meth:`stop`). Stored data stays readable after
    :meth:`stop`.

    Args:
        host: address to bind (default ``127.0.0.1``), for MQTT and HTTP.
        port: MQTT port to bind; 0 (the default) picks a free one, see :attr:`port`.
        http_port: port of the REST API and web page (ThingsBoard's shapes, see
            docs/devserver.md); 0 (the default) picks a free one, see :attr:`http_port`
            and :attr:`url`; None: no HTTP listener.
        admin: the REST API's user as ``"USER:PASSWORD"`` (ThingsBoard's demo tenant
            ``tenant@thingsboard.org:tenant`` by default).
        **options: server settings, keyword-only, with ThingsBoard's defaults:
            ``max_payload_size`` (65536), ``inactivity_timeout`` (600 s),
            ``client_rpc_timeout`` (60 s: unanswered client RPCs then get
            ``{"error":"timeout"}``), ``rpc_delivery_timeout`` (10 s),
            ``provision_close_delay`` (60 s), ``claim_duration_ms`` (24 h),
            ``type_cast_enabled`` (True), ``max_string_value_length`` (0 = off),
            ``send_puback_on_validation_failure`` (False), ``max_telemetry_per_device``
            (10,000), ``rate_limits``/``telemetry_rate_limits``/
            ``telemetry_data_point_rate_limits`` (``"capacity:seconds,..."`` or None),
            ``gateway_rate_limits``/``gateway_telemetry_rate_limits``/
            ``gateway_telemetry_data_point_rate_limits`` (what each gateway relays for its
            sub-devices, reported as ``gatewayRateLimits``), ``worker_threads`` (1).
        data: a folder (created if missing) for a persistent store: devices, credentials,
            attributes, telemetry, RPC records, claims, provisioning profiles and firmware
            are kept in a SQLite database there and come back when a server starts again on
            the same folder. None (the default): everything is in memory only. With it, a
            device's PUBACK (and every other answer) waits until what it sent is committed,
            so what a device saw acknowledged survives even ``kill -9`` of the process (not
            an OS crash or a power cut: the database is never synced to the disk).
        tls_cert, tls_key: PEM files of the server certificate (chain) and its private key:
            an MQTTS listener is added on ``tls_port`` (0, the default: a free one, see
            :attr:`tls_port`). Devices may authenticate there with a client certificate
            registered with ``add_device(name, cert_pem=...)`` (ThingsBoard's
            X509_CERTIFICATE credentials; the CONNECT username is then ignored), or as on the
            plain port.
        tls_selfsigned: a folder: writes a CA, a server certificate for ``localhost`` and
            ``127.0.0.1`` and a device certificate there (kept if already there, see
            :func:`write_self_signed`) and serves TLS with them; :attr:`tls_files` has
            their paths. Replaces ``tls_cert``/``tls_key``.

    Raises:
        OSError: the address cannot be bound (``errno.EADDRINUSE`` when the port is taken),
            or the ``data`` folder cannot be used (not creatable, in use by another dev
            server, not a dev server database).
        ValueError: an invalid option (``admin`` without a ``:``, an empty user or password,
            a TLS file that cannot be read, a key that does not match its certificate).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        http_port: Optional[int] = 0,
        admin: str = DEFAULT_ADMIN,
        data: Optional[str | os.PathLike[str]] = None,
        tls_cert: Optional[str | os.PathLike[str]] = None,
        tls_key: Optional[str | os.PathLike[str]] = None,
        tls_port: int = 0,
        tls_selfsigned: Optional[str | os.PathLike[str]] = None,
        **options: Any,
    ):
        user, password = parse_admin(admin)
        self._admin_username = user
        self._data = None if data is None else os.fspath(data)
        self._tls_files: Optional[dict[str, str]] = None
        if tls_selfsigned is not None:
            self._tls_files = write_self_signed(tls_selfsigned)
            tls_cert, tls_key = self._tls_files["server_cert"], self._tls_files["server_key"]
        self._server = _engine.DevServer(
            host,
            port,
            http_port=http_port,
            admin_username=user,
            admin_password=password,
            data=self._data,
            tls_cert=None if tls_cert is None else os.fspath(tls_cert),
            tls_key=None if tls_key is None else os.fspath(tls_key),
            tls_port=tls_port,
            **options,
        )

    # ---- life cycle ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The bound address (e.g. ``127.0.0.1``)."""
        return self._server.host

    @property
    def port(self) -> int:
        """The bound port (the chosen one when 0 was asked)."""
        return self._server.port

    @property
    def tls_port(self) -> Optional[int]:
        """The bound MQTTS (TLS) port, or None without a TLS listener."""
        return self._server.tls_port

    @property
    def tls_files(self) -> Optional[dict[str, str]]:
        """With ``tls_selfsigned``: the certificate files by role (see
        :func:`write_self_signed`), else None."""
        return None if self._tls_files is None else dict(self._tls_files)

    @property
    def http_port(self) -> Optional[int]:
        """The bound HTTP port (REST API, web page), or None without an HTTP listener."""
        return self._server.http_port

    @property
    def url(self) -> Optional[str]:
        """The web page's URL (``http://127.0.0.1:PORT/``), or None without HTTP."""
        if self.http_port is None:
            return None
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}/"

    @property
    def admin_username(self) -> str:
        """The REST API's user name (log in with it and the password given as ``admin``)."""
        return self._admin_username

    @property
    def data(self) -> Optional[str]:
        """The folder of the persistent store, or None (memory only)."""
        return self._data

    def sync(self, timeout: Optional[float] = None) -> bool:
        """Waits until every change made so far is committed to the ``data`` folder.

        Devices need no such call (their acknowledgements wait for the commit); use it
        after changes made through this API (``add_device``, ``set_shared_attributes``...)
        that must survive the process being killed right after.

        Args:
            timeout: seconds to wait at most; None waits as long as it takes.

        Returns:
            True once committed (at once without ``data``), False after ``timeout``.
        """
        return self._server.sync(timeout)

    @property
    def running(self) -> bool:
        """False once :meth:`stop` was called."""
        return self._server.running

    def stop(self) -> None:
        """Stops accepting and closes every connection (waits at most about a second).

        Idempotent; the stored data stays readable.
        """
        self._server.stop()

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        http = f" http {self.http_port}" if self.http_port is not None else ""
        return f"<DevServer {self.host}:{self.port}{http} {state}>"

    # ---- devices and profiles ------------------------------------------------------------------

    def add_device(
        self,
        name: str,
        token: Optional[str] = None,
        *,
        client_id: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        gateway: bool = False,
        profile: Optional[str] = None,
        cert_pem: Optional[str] = None,
    ) -> Optional[str]:
        """Registers a device.

        Args:
            name: unique device name.
            token: access token (the MQTT user name the device connects with). When no
                token, MQTT basic credentials or certificate is given, a fresh token is made.
            client_id, username, password: MQTT basic credentials instead of a token (at
                least a client id or a user name; a password needs a user name).
            cert_pem: an X.509 certificate (PEM text) instead: a client presenting it on the
                TLS port is this device (ThingsBoard's X509_CERTIFICATE credentials).
            gateway: the device may use ``v1/gateway/*``.
            profile: provisioning profile key the device belongs to (for the
                ``CHECK_PRE_PROVISIONED_DEVICES`` strategy).

        Returns:
            The access token, or None for MQTT basic credentials and certificates.

        Raises:
            ValueError: the name exists, or the credentials are taken or invalid.
        """
        basic = client_id is not None or username is not None or password is not None
        if token is None and not basic and cert_pem is None:
            token = secrets.token_urlsafe(15)
        self._server.add_device(
            name,
            token,
            client_id=client_id,
            username=username,
            password=password,
            gateway=gateway,
            profile=profile,
            cert_pem=cert_pem,
        )
        return token

    def devices(self) -> list[str]:
        """Names of all devices (including provisioned ones), sorted."""
        return self._server.devices()

    def add_provision_profile(
        self, key: str, secret: str, *, strategy: str = "ALLOW_CREATE_NEW_DEVICES"
    ) -> None:
        """Registers (or replaces) a device profile with provisioning enabled.

        Args:
            key: ``provisionDeviceKey``.
            secret: ``provisionDeviceSecret``.
            strategy: ``ALLOW_CREATE_NEW_DEVICES`` or ``CHECK_PRE_PROVISIONED_DEVICES``.

        Raises:
            ValueError: an unknown strategy.
        """
        self._server.add_provision_profile(key, secret, strategy)

    # ---- shared attributes ---------------------------------------------------------------------

    def set_shared_attributes(self, device: str, attributes: Any) -> None:
        """Sets shared attributes and pushes them, as ThingsBoard does, to the device if it is
        subscribed to ``v1/devices/me/attributes``.

        Args:
            device: device name.
            attributes: a dict (or JSON object text) of key/value pairs.

        Raises:
            KeyError: no such device.
            ValueError: not a JSON object.
        """
        text = attributes if isinstance(attributes, str) else _dumps(attributes, "attributes")
        self._server.set_shared_attributes(device, text)

    def delete_shared_attributes(self, device: str, keys: Iterable[str]) -> None:
        """Deletes shared attributes and pushes ``{"deleted": [keys]}`` to a subscribed device.

        Raises:
            KeyError: no such device.
        """
        self._server.delete_shared_attributes(device, list(keys))

    # ---- server-side RPC -----------------------------------------------------------------------

    def start_rpc(
        self,
        device: str,
        method: str,
        params: Any = None,
        *,
        expiry: float = 10.0,
        oneway: bool = False,
    ) -> PendingRpc:
        """Starts a server-side RPC without waiting for the reply.

        It is published once the device subscribes to ``v1/devices/me/rpc/request/+``
        (at once if it is), unless it expires first.

        Args:
            device: device name.
            method: RPC method.
            params: JSON-able parameters.
            expiry: seconds until the RPC expires.
            oneway: a one-way RPC takes no reply.

        Returns:
            A :class:`PendingRpc` to wait on.

        Raises:
            KeyError: no such device.
            TypeError: params cannot be JSON-encoded.
        """
        call = self._server.start_rpc(device, method, _dumps(params, "params"), expiry, oneway)
        return PendingRpc(call)

    def send_rpc(self, device: str, method: str, params: Any = None, *, timeout: float = 10.0):
        """Sends a two-way server-side RPC and waits for the device's reply.

        The device must process messages meanwhile (in another thread or process).

        Returns:
            The reply payload as Python data (text if it is not JSON).

        Raises:
            KeyError: no such device.
            TimeoutError: no reply within ``timeout`` seconds (also the RPC's expiry).
        """
        return _json_or_text(
            self._server.send_rpc(device, method, _dumps(params, "params"), timeout)
        )

    def rpc_records(self, device: str) -> list[RpcRecord]:
        """The device's server-side RPCs, by id.

        Raises:
            KeyError: no such device.
        """
        return [
            RpcRecord(
                r["id"],
                r["method"],
                _json_or_text(r["params"]),
                r["oneway"],
                r["status"],
                _json_or_text(r["reply"]),
            )
            for r in self._server.rpc_records(device)
        ]

    # ---- client-side RPC -----------------------------------------------------------------------

    def set_client_rpc_reply(self, method: str, reply: Any) -> None:
        """Answers every client-side RPC ``method`` (any device) at once with ``reply``.

        Args:
            method: RPC method.
            reply: JSON-able reply payload.
        """
        self._server.set_client_rpc_reply(method, _dumps(reply, "reply"))

    def clear_client_rpc_reply(self, method: str) -> None:
        """Removes the scripted reply to ``method``."""
        self._server.set_client_rpc_reply(method, None)

    def set_client_rpc_handler(self, handler: Optional[Callable[[str, str, Any], Any]]) -> None:
        """Answers client-side RPCs that have no scripted reply.

        Args:
            handler: ``handler(device, method, params) -> reply`` (JSON-able); returning None
                gives ThingsBoard's default (``{"error":"timeout"}`` after
                ``client_rpc_timeout``). It runs on a server thread; an exception in it is
                printed and the default applies. None removes the handler.
        """
        if handler is None:
            self._server.set_client_rpc_handler(None)
            return

        def call(device: str, _id: int, method: str, params: str) -> Optional[str]:
            reply = handler(device, method, _json_or_text(params))
            return None if reply is None else _dumps(reply, "client RPC reply")

        self._server.set_client_rpc_handler(call)

    def client_rpc_requests(self, device: str) -> list[ClientRpcRecord]:
        """Client-side RPC requests the device made (oldest first, last 1000).

        Raises:
            KeyError: no such device.
        """
        return [
            ClientRpcRecord(ts, rid, method, _json_or_text(params), _json_or_text(reply))
            for ts, rid, method, params, reply in self._server.client_rpc_requests(device)
        ]

    # ---- stored data ---------------------------------------------------------------------------

    def telemetry(self, device: str, key: Optional[str] = None) -> list[TelemetryPoint]:
        """Stored telemetry in arrival order (of one ``key`` if given).

        Raises:
            KeyError: no such device.
        """
        return [
            TelemetryPoint(ts, k, _value(kind, v), kind)
            for ts, k, kind, v in self._server.telemetry(device)
            if key is None or k == key
        ]

    def latest_telemetry(self, device: str, *, typed: bool = False) -> dict[str, Any]:
        """The latest value per key (highest ``ts``).

        Args:
            typed: map keys to :class:`TelemetryPoint` instead of bare values.

        Raises:
            KeyError: no such device.
        """
        latest = self._server.latest_telemetry(device)
        if typed:
            return {k: TelemetryPoint(ts, k, _value(t, v), t) for k, (ts, t, v) in latest.items()}
        return {k: _value(t, v) for k, (ts, t, v) in latest.items()}

    def client_attributes(self, device: str, *, typed: bool = False) -> dict[str, Any]:
        """Client-scope attributes the device sent.

        Args:
            typed: map keys to ``(type, value)`` instead of bare values.

        Raises:
            KeyError: no such device.
        """
        return self._attrs(self._server.client_attributes(device), typed)

    def shared_attributes(self, device: str, *, typed: bool = False) -> dict[str, Any]:
        """Shared-scope attributes (as :meth:`client_attributes`)."""
        return self._attrs(self._server.shared_attributes(device), typed)

    @staticmethod
    def _attrs(raw: dict, typed: bool) -> dict[str, Any]:
        if typed:
            return {k: (t, _value(t, v)) for k, (t, v) in raw.items()}
        return {k: _value(t, v) for k, (t, v) in raw.items()}

    def claims(self, device: str) -> list[Claim]:
        """Claim requests of the device.

        Raises:
            KeyError: no such device.
        """
        return [Claim(*c) for c in self._server.claims(device)]

    def provisioned_devices(self) -> list[ProvisionedDevice]:
        """Devices created or handed out by provisioning, oldest first."""
        return [ProvisionedDevice(**d) for d in self._server.provisioned_devices()]

    def connection_events(self, device: Optional[str] = None) -> list[ConnectionEvent]:
        """Connection events, oldest first (of one ``device`` if given; last 100,000)."""
        return [
            ConnectionEvent(**e)
            for e in self._server.connection_events()
            if device is None or e["device"] == device
        ]

    def device_info(self, device: str) -> dict[str, Any]:
        """What ThingsBoard shows about a device: its type and gateways.

        A device a gateway created with ``gw_connect_device(name, device_type)`` has that
        type; one created by any other gateway message, or added here, has ``"default"``.

        Args:
            device: the device's name.

        Returns:
            A dict with ``name``, ``id`` (its entity id), ``type``, ``gateway`` (whether it
            is a gateway), ``last_connected_gateway`` (name of the gateway that last
            connected it, ``additionalInfo.lastConnectedGateway`` on REST) and
            ``created_by`` (name of the gateway that created it, ThingsBoard's ``Created``
            relation); the last two are None when no gateway did.

        Raises:
            KeyError: no such device.
        """
        return self._server.device_info(device)

    def is_connected(self, device: str) -> bool:
        """Whether the device has a live session.

        Raises:
            KeyError: no such device.
        """
        return self._server.is_connected(device)

    def disconnect_device(self, device: str) -> bool:
        """Closes the device's session as an administrator would.

        Returns:
            False if it had none.

        Raises:
            KeyError: no such device.
        """
        return self._server.disconnect_device(device)

    def set_firmware(
        self,
        device: str,
        data: bytes | bytearray | memoryview | str | os.PathLike[str],
        title: str,
        version: str,
        algorithm: str = "SHA256",
        *,
        checksum: Optional[str] = None,
        tag: Optional[str] = None,
    ) -> str:
        """Assigns a firmware package to the device, as ThingsBoard does (spec 11.1).

        The device gets the shared attributes ``fw_title``, ``fw_version``, ``fw_size``,
        ``fw_checksum_algorithm`` and ``fw_checksum`` (plus ``fw_tag`` with a tag), pushed as
        one message if it is subscribed to ``v1/devices/me/attributes``, then a separate
        ``{"deleted": ["fw_tag", "fw_url"]}`` push; telemetry ``fw_state`` becomes
        ``INITIATED``. The image is served on ``v2/fw/request/{id}/chunk/{n}``. A new call
        replaces the package; a download already running keeps its image.

        Args:
            device: device name.
            data: the image as bytes (``bytes``, ``bytearray``, ``memoryview``), or the path
                of a file holding it (``str`` or path-like).
            title: ``fw_title``, not empty.
            version: ``fw_version``, not empty.
            algorithm: ``fw_checksum_algorithm``: ``MD5``, ``SHA256`` (default), ``SHA384``,
                ``SHA512``, ``CRC32``, ``MURMUR3_32`` or ``MURMUR3_128`` (any case).
            checksum: ``fw_checksum`` as an uploader would type it, stored as given (to test
                a device against a wrong one); by default the server computes it as
                ThingsBoard does (lowercase hex; CRC32 and MURMUR3_32 little-endian).
            tag: ``fw_tag``; without one ``fw_tag`` is deleted.

        Returns:
            The ``fw_checksum`` set.

        Raises:
            KeyError: no such device.
            TypeError: ``data`` is neither bytes-like nor a path, or another argument is not
                a ``str``.
            ValueError: empty title or version, or an unknown algorithm.
            OSError: the file cannot be read.
        """
        for name, value in (("title", title), ("version", version), ("algorithm", algorithm)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        for name, value in (("checksum", checksum), ("tag", tag)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
        if not title or not version:
            raise ValueError(
                f"title and version must not be empty, got title={title!r}, version={version!r}"
            )
        if isinstance(data, (bytes, bytearray, memoryview)):
            image = bytes(data)
        elif isinstance(data, (str, os.PathLike)):
            with open(data, "rb") as f:
                image = f.read()
        else:
            raise TypeError(
                "data must be bytes, bytearray, memoryview or a file path, "
                f"got {type(data).__name__}"
            )
        result = self._server.set_firmware(
            device, image, title, version, algorithm, checksum=checksum, tag=tag
        )
        return result if result is not None else ""

    def clear_firmware(self, device: str) -> None:
        """Removes the device's firmware assignment: all ``fw_*`` shared attributes are
        deleted with one ``{"deleted": [...]}`` push. Does nothing if none is assigned.

        Raises:
            KeyError: no such device.
        """
        self._server.set_firmware(device)

    # ---- waiting and logs ----------------------------------------------------------------------

    def log_stream(self) -> Any:
        """A stream of the human-readable log lines from now on (one per connection, upload,
        RPC, provisioning): ``recv(timeout=None) -> str | None`` (None on timeout or once the
        server stopped and the stream is drained) and ``try_recv() -> str | None``.
        """
        return self._server.log_stream()

    def generation(self) -> int:
        """A counter bumped by every change to the store."""
        return self._server.generation()

    def wait_for_change(self, seen: int, timeout: Optional[float] = None) -> int:
        """Waits until :meth:`generation` differs from ``seen`` or ``timeout`` passes.

        Returns:
            The current generation.
        """
        return self._server.wait_for_change(seen, timeout)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Waits until ``predicate()`` returns something truthy, re-checking it after every
        change to the store, and returns that value.

        Args:
            predicate: called on this thread, e.g.
                ``lambda: server.latest_telemetry("dev").get("temperature")``.
            timeout: seconds to wait at most.
            what: described in the error message.

        Raises:
            TimeoutError: still falsy after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.generation()
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"dev server: {what or _describe(predicate)} not true within {timeout} s "
                    f"(last value {value!r})\n{self.stored()}"
                )
            self.wait_for_change(seen, left)

    def stored(self) -> str:
        """What the server stored, per device, as text (``wait_for`` failures show it):
        latest telemetry, client and shared attributes, RPC, connection state."""
        lines = ["the dev server stored:"]
        names = self.devices()
        if not names:
            lines.append("  no devices")
        for name in names:
            state = "connected" if self.is_connected(name) else "not connected"
            lines.append(f"  device {name!r} ({state}):")
            lines.append(f"    telemetry (latest): {self.latest_telemetry(name)}")
            lines.append(f"    client attributes: {self.client_attributes(name)}")
            lines.append(f"    shared attributes: {self.shared_attributes(name)}")
            for r in self.rpc_records(name):
                lines.append(
                    f"    server RPC {r.id} {r.method}({r.params}) {r.status} -> {r.reply}"
                )
            for c in self.client_rpc_requests(name):
                lines.append(f"    client RPC {c.method}({c.params}) -> {c.reply}")
        return "\n".join(lines)
