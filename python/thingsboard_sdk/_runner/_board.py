"""The simulated board behind the stand-ins: its profile, its inputs and its outputs.

One :class:`Board` exists per run (:func:`current`). The stand-ins read inputs from it (pin
levels, ADC readings, sensor values) and report outputs to it (pin levels, PWM duty, NeoPixel
colours); a scenario, a test or the user sets the inputs and watches the outputs from outside
the script (``_scenario``, ``--outputs``, ``thingsboard_sdk.testing``).

Keys are strings: a pin is ``str(id)`` of the id the script gave (``"4"``, ``"GP15"``,
``"LED"``).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional


# Figures of each board: heap size as gc.mem_free()+gc.mem_alloc() show it after boot,
# sys.platform, CPU frequency, the length of machine.unique_id().
@dataclass(frozen=True)
class Profile:
    """What a board looks like to a script."""

    name: str
    platform: str
    machine: str
    heap: int
    freq: int
    unique_id_len: int


PROFILES = {
    "esp32": Profile("esp32", "esp32", "Generic ESP32 module with ESP32", 111_168, 160_000_000, 6),
    "esp8266": Profile("esp8266", "esp8266", "ESP module with ESP8266", 37_952, 80_000_000, 4),
    "rp2040": Profile("rp2040", "rp2", "Raspberry Pi Pico with RP2040", 192_064, 125_000_000, 8),
    "picow": Profile("picow", "rp2", "Raspberry Pi Pico W with RP2040", 166_016, 125_000_000, 8),
}
DEFAULT_BOARD = "esp32"

# Share of the heap in use right after boot (interpreter, network stack, the script's code).
_BOOT_USE = 0.09
# Share of the heap in use at which a board's allocator collects by itself.
_AUTO_COLLECT = 0.8
# Bytes a board would allocate per block CPython allocated (a rough, deterministic figure).
_BYTES_PER_BLOCK = 16


def pin_key(pin: Any) -> str:
    """The key of a pin id (or of a ``Pin`` object) in the board's tables."""
    ident = getattr(pin, "_id", pin)
    return str(ident)


class Board:
    """Inputs, outputs and figures of the simulated board of one run.

    Args:
        profile: the board's figures (``PROFILES``).
        heap: heap size in bytes instead of the profile's.
    """

    def __init__(self, profile: Profile, heap: Optional[int] = None) -> None:
        self.profile = profile
        self.heap = int(heap) if heap else profile.heap
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self.pins: Dict[str, int] = {}
        self.adc: Dict[str, int] = {}
        self.touch: Dict[str, int] = {}
        self.sensors: Dict[str, Dict[str, Dict[str, float]]] = {}  # kind -> key -> values
        self.outputs: Dict[str, Any] = {}  # "pin:2" -> 1, "pwm:5" -> {...}, "neopixel:4" -> [...]
        self._pin_watchers: Dict[str, List[Callable[[int, int], None]]] = {}
        self._output_listeners: List[Callable[[dict], None]] = []
        self._seen_listeners: List[Callable[[str, str, Any], None]] = []
        self._seen: Dict[tuple, Any] = {}
        self._blocks_at_collect = sys.getallocatedblocks()
        self._noise = random.Random(0x7B)
        self.resets = 0
        self.reset_cause: Optional[int] = None

    # ---- time ---------------------------------------------------------------------------------

    def uptime(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.start

    # ---- memory -------------------------------------------------------------------------------

    def mem_alloc(self) -> int:
        """Bytes in use: what boot takes plus what the script allocated since the last
        collection. As on a board, a collection runs by itself when the heap is 80 % full,
        so the figure falls like a saw tooth while a script allocates."""
        grown = max(0, sys.getallocatedblocks() - self._blocks_at_collect) * _BYTES_PER_BLOCK
        if grown > self.heap * (_AUTO_COLLECT - _BOOT_USE):
            self.collected()
            grown = 0
        return int(self.heap * _BOOT_USE) + grown

    def mem_free(self) -> int:
        """Bytes free: the heap minus :meth:`mem_alloc`."""
        return self.heap - self.mem_alloc()

    def collected(self) -> None:
        """``gc.collect()`` ran: the garbage counted since the last one is gone."""
        self._blocks_at_collect = sys.getallocatedblocks()

    # ---- inputs -------------------------------------------------------------------------------

    def set_pin(self, pin: Any, level: Any) -> None:
        """Sets the level an input pin reads; fires the pin's watchers (irq) on a change."""
        key = pin_key(pin)
        new = 1 if level else 0
        with self._lock:
            old = self.pins.get(key)
            self.pins[key] = new
            watchers = list(self._pin_watchers.get(key, ()))
        if old is not None and old != new:
            for fn in watchers:
                fn(old, new)

    def pin_level(self, pin: Any, default: int) -> int:
        """The level set for input ``pin``, or ``default`` (its pull) if none was set."""
        level = self.pins.get(pin_key(pin), default)
        self._first_read("pin", pin_key(pin), level)
        return level

    def _first_read(self, kind: str, key: str, value: Any) -> None:
        if (kind, key) in self._seen:
            return
        with self._lock:
            self._seen[(kind, key)] = value
            listeners = list(self._seen_listeners)
        for fn in listeners:
            try:
                fn(kind, key, value)
            except Exception:  # a listener must not break the script's read
                pass

    def on_input_seen(self, fn: Callable[[str, str, Any], None]) -> None:
        """Calls ``fn(kind, key, value)`` the first time the script reads an input (pin,
        adc, touch), and at once for those already read."""
        with self._lock:
            self._seen_listeners.append(fn)
            seen = list(self._seen.items())
        for (kind, key), value in seen:
            fn(kind, key, value)

    def watch_pin(self, pin: Any, fn: Callable[[int, int], None], default: int) -> None:
        """Calls ``fn(old, new)`` whenever the input level of ``pin`` changes."""
        key = pin_key(pin)
        with self._lock:
            self.pins.setdefault(key, default)
            self._pin_watchers.setdefault(key, []).append(fn)

    def set_adc(self, pin: Any, value: Any) -> None:
        """Sets the 16-bit reading (0..65535) of an analog input."""
        v = int(value)
        if not 0 <= v <= 65535:
            raise ValueError(f"ADC reading for pin {pin_key(pin)} must be 0..65535, got {value!r}")
        self.adc[pin_key(pin)] = v

    def adc_value(self, pin: Any) -> int:
        """The 16-bit reading of ``pin``: what was set, else ``TB_RUN_ADC_<pin>`` from the
        environment, else mid-scale (32768)."""
        key = pin_key(pin)
        if key in self.adc:
            value = self.adc[key]
        else:
            raw = os.environ.get(f"TB_RUN_ADC_{key}", "")
            value = max(0, min(65535, int(raw))) if raw.strip().isdigit() else 32768
        self._first_read("adc", key, value)
        return value

    def set_sensor(self, kind: str, values: Dict[str, Any], key: str = "*") -> None:
        """Fixes sensor values, e.g. ``set_sensor("dht", {"temperature": 25.0})``; ``key`` is
        a pin (``"4"``) or a 1-Wire ROM in hex, ``"*"`` every sensor of that kind."""
        clean = {}
        for name, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{kind} {name} must be a number, got {v!r}")
            clean[str(name)] = float(v)
        self.sensors.setdefault(kind, {}).setdefault(str(key), {}).update(clean)

    def sensor(self, kind: str, key: str, name: str, model: Callable[[float], float]) -> float:
        """The value ``name`` of a sensor: set for this key, set for all, or ``model(t)``."""
        table = self.sensors.get(kind, {})
        for k in (str(key), "*"):
            if name in table.get(k, {}):
                return table[k][name]
        return model(self.uptime())

    def set_touch(self, pin: Any, value: Any) -> None:
        """Sets what ``TouchPad(pin).read()`` returns."""
        self.touch[pin_key(pin)] = int(value)

    def apply(self, step: Dict[str, Any]) -> None:
        """Applies one scenario step: ``{"pins": {...}, "adc": {...}, "touch": {...},
        "dht": {...}, "ds18x20": {...}, ...}`` (see docs/runner.md).

        Raises:
            ValueError: a key or value that is not understood.
        """
        for key, value in step.items():
            if key in ("at", "after", "comment"):
                continue
            if not isinstance(value, dict):
                raise ValueError(f"scenario: {key!r} must be an object, got {value!r}")
            if key == "pins":
                for pin, level in value.items():
                    self.set_pin(pin, level)
            elif key == "adc":
                for pin, reading in value.items():
                    self.set_adc(pin, reading)
            elif key == "touch":
                for pin, reading in value.items():
                    self.set_touch(pin, reading)
            elif key in SENSOR_KINDS:
                if all(isinstance(v, dict) for v in value.values()) and value:
                    for sensor_key, values in value.items():
                        self.set_sensor(key, values, sensor_key)
                else:
                    self.set_sensor(key, value)
            else:
                known = ", ".join(["pins", "adc", "touch", *SENSOR_KINDS])
                raise ValueError(f"scenario: unknown input {key!r} (known: {known})")

    # ---- outputs ------------------------------------------------------------------------------

    def output(self, kind: str, ident: Any, value: Any) -> None:
        """Records an output (``kind`` ``pin``/``pwm``/``neopixel``) and tells listeners."""
        key = f"{kind}:{pin_key(ident)}"
        with self._lock:
            self.outputs[key] = value
            listeners = list(self._output_listeners)
        event = {"t": round(self.uptime(), 3), "kind": kind, "id": pin_key(ident), "value": value}
        for fn in listeners:
            try:
                fn(event)
            except Exception:  # a listener must not break the script's output call
                pass

    def on_output(self, fn: Callable[[dict], None]) -> None:
        """Calls ``fn(event)`` for every output change."""
        with self._lock:
            self._output_listeners.append(fn)

    def snapshot(self) -> dict:
        """Inputs and outputs as JSON-ready data."""
        with self._lock:
            return {
                "board": self.profile.name,
                "inputs": {
                    "pins": dict(self.pins),
                    "adc": dict(self.adc),
                    "touch": dict(self.touch),
                    **{k: {s: dict(v) for s, v in t.items()} for k, t in self.sensors.items()},
                },
                "outputs": json.loads(json.dumps(self.outputs)),
            }


SENSOR_KINDS = ("dht", "ds18x20")

_current: Optional[Board] = None


def current() -> Board:
    """The board of the running script (a default one outside a run)."""
    global _current
    if _current is None:
        _current = Board(PROFILES[DEFAULT_BOARD])
    return _current


def start(board: Optional[str] = None, heap: Optional[int] = None) -> Board:
    """Makes a fresh board the current one (a run starts)."""
    global _current
    _current = Board(PROFILES[board or DEFAULT_BOARD], heap)
    return _current
