"""Device provisioning (``/provision/request`` in a separate session).

spec: thingsboard-mqtt.md, section 10.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import _engine
from .exceptions import ProvisionError

log = logging.getLogger("thingsboard_sdk.provision")


def _provision(
    host: str, port: int, provision_request: dict, timeout: float = 10.0, **tls: Any
) -> tuple[str, str, dict]:
    """Runs one provisioning session; returns ``(status, error_msg, response)``."""
    engine = _engine.Client(
        str(host),
        int(port),
        "provision",
        username="provision",
        provisioning=True,
        reconnect=False,
        **tls,
    )
    engine.provision(provision_request)
    try:
        if engine.connect(timeout) is None:
            raise ProvisionError("CONNECTION_FAILED", engine.last_error or "cannot connect")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProvisionError("TIMEOUT", f"no provisioning response within {timeout:g} s")
            for ev in engine.poll_events(timeout=min(left, 1.0)):
                if ev[0] == "provision_response":
                    return ev[1], ev[2], ev[3]
                if ev[0] == "dropped":
                    log.warning("dropped message on %r: %s", ev[1], ev[2])
    finally:
        engine.disconnect(1.0)


class ProvisionClient:
    """The reference SDK's provisioning client.

    Args:
        host: ThingsBoard host.
        port: MQTT port.
        provision_request: a dict from ``TBDeviceMqttClient.get_provision_request``.
    """

    PROVISION_REQUEST_TOPIC = b"/provision/request"
    PROVISION_RESPONSE_TOPIC = b"/provision/response"

    def __init__(self, host: str, port: int, provision_request: dict) -> None:
        self._host = host
        self._port = port
        self._client_id = b"provision"
        self._provision_request = provision_request
        self._credentials: dict | None = None
        self.error: ProvisionError | None = None

    def provision(self, *, timeout: float = 10.0) -> dict | None:
        """Sends the request and waits for the answer.

        On success ``credentials`` holds the response (``credentialsType``,
        ``credentialsValue``); otherwise it stays None, the failure is logged, and ``error``
        holds it (the reference prints it and returns).

        Returns:
            The credentials, or None.
        """
        try:
            status, error_msg, response = _provision(
                self._host, self._port, self._provision_request, timeout
            )
        except ProvisionError as e:
            self.error = e
            log.error("Provisioning failed: %s", e)
            return None
        if status == "SUCCESS":
            self._credentials = response
        else:
            self.error = ProvisionError(status, error_msg)
            log.error("Provisioning failed: %s", error_msg or status)
        return self._credentials

    @property
    def credentials(self) -> dict | None:
        """The SUCCESS response, or None."""
        return self._credentials
