"""Points every connection a script makes (client and provisioning) at another server.

The script's own code is not edited: for the run, ``TBDeviceMqttClient.__init__`` and the two
provisioning entry points are wrapped so that the host, the port (even a placeholder string
such as ``"YOUR_PORT"``) and, when asked, the access token are replaced before the client sees
them. Access tokens the script obtained by provisioning during the run are never replaced.
"""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from typing import Any, Callable, Optional

from .. import provision_client, tb_device_mqtt
from . import _state
from ._progress import FirmwareProgress, firmware_saved

log = logging.getLogger("thingsboard_sdk.runner")


class Redirect:
    """The run's connection policy; :meth:`install` applies it, the returned function undoes it.

    Args:
        host, port: where every connection goes (None: where the script says).
        token: access token for the script's clients (None: the script's own).
        on_token: called with each access token a client is created with (after
            replacement), e.g. to register it with an embedded dev server.
        on_provision: called with each provisioning request before it is sent.
        tap: a ``_wire.WireTap`` that shows each connection's packets (``-v``).
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        token: Optional[str] = None,
        on_token: Optional[Callable[[str], None]] = None,
        on_provision: Optional[Callable[[dict], None]] = None,
        tap: Optional[Any] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.on_token = on_token
        self.on_provision = on_provision
        self.tap = tap  # a _wire.WireTap with -v: connections go through its relays
        self.provisioned_tokens: set[str] = set()
        self._clients: weakref.WeakSet = weakref.WeakSet()

    # ---- the clients the script made ----------------------------------------------------------

    def clients(self) -> list[Any]:
        """Every ``TBDeviceMqttClient`` created during the run and still alive."""
        return list(self._clients)

    def disconnect_all(self) -> int:
        """Disconnects every client of the run (flushing queued messages, bounded).

        Returns:
            How many were connected.
        """
        n = 0
        for client in self.clients():
            try:
                if client.connected:
                    n += 1
                client.disconnect()
            except Exception as exc:  # the run is ending: report, go on
                log.warning("disconnect failed: %s", exc)
        return n

    # ---- installing ---------------------------------------------------------------------------

    def _target(self, host: Any, port: Any, tls: bool = False) -> tuple[Any, Any]:
        if self.host is not None:
            host = self.host
        if self.port is not None:
            port = self.port
        if self.tap is not None and not tls:  # TLS checks the host name: not relayed
            host, port = self.tap.via(host, port)
        return host, port

    def umqtt_target(
        self, server: Any, port: Any, user: Any, tls: bool = False
    ) -> tuple[Any, Any, Any]:
        """Where a ``umqtt`` client of the script connects, and with which user name (the
        access token, for ThingsBoard)."""
        server, port = self._target(server, port, tls)
        if self.token is not None and user not in self.provisioned_tokens:
            user = self.token
        if self.on_token is not None and user:
            name = user.decode() if isinstance(user, (bytes, bytearray)) else str(user)
            self.on_token(name)
        return server, port, user

    def install(self) -> Callable[[], None]:
        """Wraps the client constructor and provisioning for the run.

        Returns:
            A function that restores the originals.
        """
        cls = tb_device_mqtt.TBDeviceMqttClient
        original_init = cls.__dict__["__init__"]
        signature = inspect.signature(original_init)
        original_tb_provision = tb_device_mqtt._provision
        original_pc_provision = provision_client._provision

        @functools.wraps(original_init)
        def init(client: Any, *args: Any, **kwargs: Any) -> None:
            try:
                bound = signature.bind(client, *args, **kwargs)
            except TypeError:
                return original_init(client, *args, **kwargs)  # the natural error
            bound.apply_defaults()
            a = bound.arguments
            a["host"], a["port"] = self._target(a["host"], a["port"], bool(a.get("tls")))
            # A firmware update shows a progress bar and where the image went, unless the
            # script handles those itself.
            if a.get("on_firmware_progress") is None:
                a["on_firmware_progress"] = FirmwareProgress()
            if a.get("on_firmware_update") is None:
                a["on_firmware_update"] = firmware_saved
            token = a.get("access_token")
            if self.token is not None and token not in self.provisioned_tokens:
                a["access_token"] = self.token
            original_init(*bound.args, **bound.kwargs)
            self._clients.add(client)
            if self.on_token is not None and a.get("access_token"):
                self.on_token(a["access_token"])
            return None

        def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(original)
            def provision(host: Any, port: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
                host, port = self._target(host, port)
                if self.on_provision is not None and isinstance(request, dict):
                    self.on_provision(request)
                result = original(host, port, request, *args, **kwargs)
                status, _msg, response = result
                if status == "SUCCESS" and isinstance(response, dict):
                    value = response.get("credentialsValue")
                    if isinstance(value, str):
                        self.provisioned_tokens.add(value)
                return result

            return provision

        cls.__init__ = init
        original_target = _state.mqtt_target
        _state.mqtt_target = self.umqtt_target
        tb_device_mqtt._provision = wrap(original_tb_provision)
        provision_client._provision = wrap(original_pc_provision)

        def uninstall() -> None:
            cls.__init__ = original_init
            _state.mqtt_target = original_target
            tb_device_mqtt._provision = original_tb_provision
            provision_client._provision = original_pc_provision

        return uninstall
