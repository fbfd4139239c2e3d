"""``dht`` stand-in: DHT11/DHT22 sensors that read plausible room values.

``measure()`` takes a reading; ``temperature()`` (degrees C) and ``humidity()`` (% RH) return
it. Until the board is given values (``--scenario`` ``"dht"``), temperature drifts slowly
around 22 C and humidity around 45 %, as in a room; DHT11 readings are whole numbers, DHT22
readings have one decimal, as the sensors report them.
"""

import logging
import math

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.dht")


def _room_temperature(t):
    return 22.0 + 1.5 * math.sin(2 * math.pi * t / 600) + 0.3 * math.sin(2 * math.pi * t / 47)


def _room_humidity(t):
    return 45.0 + 5.0 * math.sin(2 * math.pi * t / 900 + 1.0) + 0.5 * math.sin(t / 13)


class DHTBase:
    """A DHT sensor on ``pin``."""

    _decimals = 1

    def __init__(self, pin):
        self.pin = pin
        self._key = _board.pin_key(pin)
        self._t = None
        self._h = None
        log.info("%s(%s) created", type(self).__name__, self._key)

    def measure(self):
        """Takes a reading (a board would clock it out of the sensor)."""
        board = _board.current()
        t = board.sensor("dht", self._key, "temperature", _room_temperature)
        h = board.sensor("dht", self._key, "humidity", _room_humidity)
        self._t = round(t, self._decimals) if self._decimals else int(round(t))
        self._h = round(min(100.0, max(0.0, h)), self._decimals)
        if not self._decimals:
            self._h = int(self._h)

    def _need(self):
        if self._t is None:
            # on a board: the values of an empty buffer
            return False
        return True

    def temperature(self):
        """Degrees Celsius of the last :meth:`measure` (0 before the first)."""
        return self._t if self._need() else 0

    def humidity(self):
        """Relative humidity in % of the last :meth:`measure` (0 before the first)."""
        return self._h if self._need() else 0


class DHT11(DHTBase):
    """A DHT11: whole degrees and whole percent."""

    _decimals = 0


class DHT22(DHTBase):
    """A DHT22 (AM2302): tenths of a degree and of a percent."""

    _decimals = 1
