"""pytest plugin (entry point ``pytest11``): a ThingsBoard-compatible dev server and helpers to
test device code against it.

Installed with the package, so device scripts can be tested without ThingsBoard
(docs/testing.md)::

    def test_my_device(tb_devserver, tb_run_script):
        run = tb_run_script("main.py", device="my-device")
        assert tb_devserver.wait_for(
            lambda: tb_devserver.latest_telemetry("my-device").get("temperature")
        ) == 25.5

Fixtures:
    tb_devserver: a :class:`~thingsboard_sdk.devserver.DevServer` on free ports: MQTT on
        ``port``; its REST API and web page on ``http_port`` and ``url`` (log in as
        ``admin_username`` / ``tenant``).
    tb_run_script: ``(script, device=..., ...) -> ScriptRun``: runs a board script through
        the runner against ``tb_devserver`` (see :class:`thingsboard_sdk.testing.ScriptRun`).
    tb_client: a connected ``TBDeviceMqttClient`` of the device ``"tb-client"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

import pytest

if TYPE_CHECKING:
    from .devserver import DevServer
    from .tb_device_mqtt import TBDeviceMqttClient
    from .testing import ScriptRun

# The device the tb_client fixture connects as.
CLIENT_DEVICE = "tb-client"


@pytest.fixture
def tb_devserver() -> Iterator[DevServer]:
    """A :class:`thingsboard_sdk.devserver.DevServer` on 127.0.0.1 and free ports (MQTT:
    ``port``; REST API and web page: ``http_port``, ``url``), with no devices yet; stopped
    after the test."""
    from .devserver import DevServer

    server = DevServer("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tb_run_script(tb_devserver: DevServer) -> Iterator[Callable[..., ScriptRun]]:
    """Runs board scripts through ``python -m thingsboard_sdk run`` against ``tb_devserver``.

    Call it as ``tb_run_script(script, device=None, *, token=None, args=(), options=())``:
    with ``device``, that device is created (unless it exists) and its access token replaces
    the script's; every connection of the script goes to the dev server. Returns a
    :class:`~thingsboard_sdk.testing.ScriptRun` (output, exit status, stop, board inputs
    and outputs). Every run is stopped after the test.
    """
    from .testing import ScriptRun

    runs: list[ScriptRun] = []

    def start(
        script: Union[str, Path],
        device: Optional[str] = None,
        *,
        token: Optional[str] = None,
        args: Sequence[str] = (),
        options: Sequence[str] = (),
        **kwargs: Any,
    ) -> ScriptRun:
        if device is not None and token is None:
            if device in tb_devserver.devices():
                raise ValueError(
                    f"device {device!r} exists; pass its token= (add_device returned it)"
                )
            token = tb_devserver.add_device(device)
        run = ScriptRun(
            script,
            tb_devserver.host,
            tb_devserver.port,
            token=token,
            args=args,
            options=options,
            **kwargs,
        )
        runs.append(run)
        return run

    try:
        yield start
    finally:
        for run in runs:
            run.close()


@pytest.fixture
def tb_client(tb_devserver: DevServer) -> Iterator[TBDeviceMqttClient]:
    """A ``TBDeviceMqttClient`` connected to ``tb_devserver`` as the device ``"tb-client"``;
    disconnected after the test."""
    from .tb_device_mqtt import TBDeviceMqttClient

    token = tb_devserver.add_device(CLIENT_DEVICE)
    client = TBDeviceMqttClient(
        tb_devserver.host, tb_devserver.port, access_token=token, client_id=CLIENT_DEVICE
    )
    if client.connect(timeout=10) is None:
        raise RuntimeError(f"tb_client could not connect: {client.last_error}")
    try:
        yield client
    finally:
        client.disconnect()
