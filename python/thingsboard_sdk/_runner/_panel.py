"""``run --devserver``: the board beside its device on the dev server's page (and REST API).

The run's board is mirrored into SERVER_SCOPE attributes of the script's device, which the
dev server's page shows and edits (server-scope attributes are never sent to the device, so
the script does not see them):

- ``out.pin.2``, ``out.pwm.5`` (``{"freq", "duty_u16", "on"}``), ``out.neopixel.13``
  (``[[r, g, b], ...]``): the board's outputs, written as they change;
- ``in.pin.4``, ``in.adc.34``, ``in.touch.4``: the inputs the script reads, written when it
  first reads them; editing one (on the page, or ``POST .../SERVER_SCOPE``) sets that input,
  as do ``in.dht.temperature``, ``in.dht.humidity`` and ``in.ds18x20.temperature`` when
  added.

Design: the runner is a REST client of its own dev server (login, ``POST
/api/plugins/telemetry/DEVICE/{id}/SERVER_SCOPE``, the dev server's event stream for the
edits), so neither the server nor the page needs to know about boards.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any, Dict, Optional

from . import _board

log = logging.getLogger("thingsboard_sdk.runner.panel")

_SENSOR_KEYS = {
    "in.dht.temperature": ("dht", "temperature"),
    "in.dht.humidity": ("dht", "humidity"),
    "in.ds18x20.temperature": ("ds18x20", "temperature"),
}


class BoardPanel:
    """Mirrors the board to one device's server-scope attributes and back.

    Args:
        url: the dev server's base URL.
        admin: ``USER:PASSWORD`` of its REST API.
        device: the device's name.
    """

    def __init__(self, url: str, admin: str, device: str) -> None:
        self.url = url
        self.admin = admin
        self.device = device
        self._queue: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        self._written: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._rest: Any = None
        self._id = ""
        self._stopped = False

    def start(self) -> None:
        """Logs in, then mirrors from now on (in background threads)."""
        from .._restcli import Rest, RestError

        user, _, password = self.admin.partition(":")
        try:
            self._rest = Rest(self.url, user, password, timeout=10)
            self._id = self._rest.device_id(self.device)
        except RestError as exc:
            log.warning("no board panel on the dev server's page: %s", exc)
            return
        board = _board.current()
        for key, value in board.outputs.items():
            self._queue.put({"out." + key.replace(":", "."): value})
        board.on_output(self._on_output)
        board.on_input_seen(self._on_input_seen)
        threading.Thread(target=self._write_loop, name="board-panel", daemon=True).start()
        threading.Thread(target=self._read_loop, name="board-panel-in", daemon=True).start()
        log.info("board panel: server attributes out.* / in.* of device %r", self.device)

    def stop(self) -> None:
        """Stops mirroring (what was queued is still written)."""
        self._stopped = True
        self._queue.put(None)

    # ---- board -> server ---------------------------------------------------------------------

    def _on_output(self, event: dict) -> None:
        self._queue.put({f"out.{event['kind']}.{event['id']}": event["value"]})

    def _on_input_seen(self, kind: str, ident: str, value: Any) -> None:
        self._queue.put({f"in.{kind}.{ident}": value})

    def _write_loop(self) -> None:

        path = f"/api/plugins/telemetry/DEVICE/{self._id}/SERVER_SCOPE"
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = dict(item)
            while True:  # coalesce what queued meanwhile
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._post(path, batch)
                    return
                batch.update(more)
            self._post(path, batch)

    def _post(self, path: str, batch: Dict[str, Any]) -> None:
        from .._restcli import RestError

        with self._lock:
            self._written.update({k: json.dumps(v, sort_keys=True) for k, v in batch.items()})
        try:
            self._rest.call("POST", path, batch)
        except RestError as exc:
            if not self._stopped:
                log.warning("board panel: cannot write %s: %s", sorted(batch), exc)

    # ---- server -> board ---------------------------------------------------------------------

    def _read_loop(self) -> None:
        from .._restcli import RestError, _events

        try:
            for event in _events(self._rest, self._id):
                if event.get("type") != "attributes" or event.get("scope") != "SERVER_SCOPE":
                    continue
                for key, value in (event.get("values") or {}).items():
                    self._apply(key, value)
        except (RestError, OSError) as exc:
            if not self._stopped:
                log.warning("board panel: event stream ended: %s", exc)

    def _apply(self, key: str, value: Any) -> None:
        if not key.startswith("in."):
            return
        with self._lock:
            if self._written.get(key) == json.dumps(value, sort_keys=True):
                return  # our own write, echoed
            self._written[key] = json.dumps(value, sort_keys=True)
        board = _board.current()
        try:
            if key in _SENSOR_KEYS:
                kind, name = _SENSOR_KEYS[key]
                board.set_sensor(kind, {name: value})
            else:
                _, kind, ident = key.split(".", 2)
                if kind == "pin":
                    board.set_pin(ident, value)
                elif kind == "adc":
                    board.set_adc(ident, value)
                elif kind == "touch":
                    board.set_touch(ident, value)
                else:
                    raise ValueError(f"unknown input kind {kind!r}")
        except (ValueError, TypeError) as exc:
            log.warning("board panel: %s = %r ignored: %s", key, value, exc)
            return
        log.info("board panel: %s = %r", key, value)
