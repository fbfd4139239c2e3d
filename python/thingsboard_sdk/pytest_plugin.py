"""pytest plugin (entry point ``pytest11``): a ThingsBoard-compatible dev server fixture.

Installed with the package, so device scripts can be tested without ThingsBoard::

    def test_my_device(tb_devserver):
        token = tb_devserver.add_device("my-device")
        run_my_device(tb_devserver.host, tb_devserver.port, token)
        assert tb_devserver.wait_for(
            lambda: tb_devserver.latest_telemetry("my-device").get("temperature")
        ) == 25.5
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from .devserver import DevServer


@pytest.fixture
def tb_devserver() -> Iterator[DevServer]:
    """A :class:`thingsboard_sdk.devserver.DevServer` on 127.0.0.1 and a free port, with no
    devices yet; stopped after the test."""
    from .devserver import DevServer

    server = DevServer("127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()
