"""Many devices in one process: connect them together, serve all their callbacks from one loop.

Host extras for gateways and simulators. A ``TBDeviceMqttClient`` costs no thread: every
client's network loop is a task on the engine's shared runtime. What remains per client in
Python is the callback dispatch, and ``DeviceGroup`` makes that one loop for any number of
clients instead of a ``check_for_msg()`` call per client::

    clients = [TBDeviceMqttClient(host, port, access_token=t) for t in tokens]
    connect_all(clients)
    group = DeviceGroup(clients)
    while True:
        group.wait_for_msg(timeout=1.0)   # runs the callbacks of whichever clients have messages
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

from . import _engine
from .tb_device_mqtt import TBDeviceMqttClient

__all__ = ["DeviceGroup", "connect_all"]


def connect_all(clients: Iterable[TBDeviceMqttClient], timeout: float = 30.0) -> int:
    """Connects many clients at once and waits for them all.

    Every attempt starts at once; the engine keeps at most 100 in progress at a time (a broker's
    listen backlog), so 10,000 clients connect in about a second instead of minutes of
    sequential ``connect()`` calls.

    Args:
        clients: the clients to connect.
        timeout: seconds to wait for the whole set.

    Returns:
        How many are connected. The others keep ``last_error``; the reasons are logged at
        ERROR as ``connect()`` does.
    """
    clients = list(clients)
    deadline = time.monotonic() + timeout
    for c in clients:
        c._engine.connect(timeout, wait=False)
    connected = 0
    for c in clients:
        left = max(0.001, deadline - time.monotonic())
        if c.connect(timeout=left) is not None:
            connected += 1
    return connected


class DeviceGroup:
    """Serves the callbacks of many clients from one thread.

    Args:
        clients: clients to serve; more can be added with ``add``.
    """

    def __init__(self, clients: Iterable[TBDeviceMqttClient] = ()) -> None:
        self._hub = _engine.Hub()
        self._clients: dict[int, TBDeviceMqttClient] = {}
        for c in clients:
            self.add(c)

    def add(self, client: TBDeviceMqttClient) -> None:
        """Adds a client; its pending messages are served by the next ``wait_for_msg``."""
        key = id(client)
        self._clients[key] = client
        client._engine.attach_hub(self._hub, key)

    def remove(self, client: TBDeviceMqttClient) -> None:
        """Stops serving a client (a client not in the group is ignored); poll it yourself, or
        add it to another group, from then on."""
        self._clients.pop(id(client), None)

    def __len__(self) -> int:
        return len(self._clients)

    def wait_for_msg(self, timeout: Optional[float] = None) -> int:
        """Waits until any client has messages, then processes them (callbacks run here).

        Args:
            timeout: seconds to wait at most; None waits as long as it takes. Ctrl-C
                interrupts.

        Returns:
            How many messages were processed (0 after a timeout).
        """
        processed = 0
        for key in self._hub.wait(timeout):
            client = self._clients.get(key)
            if client is not None:
                events = client._engine.poll_events(0.0)
                client._dispatch(events)
                processed += len(events)
        return processed

    def check_for_msg(self) -> int:
        """Processes whatever messages are waiting, without blocking."""
        return self.wait_for_msg(timeout=0.0)
