"""``ds18x20`` stand-in: DS18B20 temperature sensors on a ``onewire.OneWire`` bus.

``convert_temp()`` starts a conversion (750 ms on a real sensor: a script sleeps that long
before reading); ``read_temp(rom)`` returns degrees C in 1/16 steps, drifting slowly around
21 C per sensor until the board is given values (``--scenario`` ``"ds18x20"``, per ROM in hex
or for all).
"""

import logging
import math

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.ds18x20")


class DS18X20:
    """The sensors on ``onewire``."""

    def __init__(self, onewire):
        self.ow = onewire
        self.buf = bytearray(9)
        self._converted = False

    def scan(self):
        """ROM codes of the DS18x20 sensors (family 0x10, 0x22, 0x28) on the bus."""
        return [rom for rom in self.ow.scan() if rom[0] in (0x10, 0x22, 0x28)]

    def convert_temp(self):
        """Starts a conversion on every sensor."""
        self._converted = True

    def read_scratch(self, rom):
        """The 9-byte scratchpad of ``rom`` (temperature in its first two bytes)."""
        raw = int(round(self._celsius(rom) * 16)) & 0xFFFF
        data = bytearray([raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x01, 0x10])
        from onewire import crc8

        return data + bytes([crc8(data)])

    def write_scratch(self, rom, buf):
        """Accepts alarm/resolution settings."""

    def _celsius(self, rom):
        key = bytes(rom).hex()
        phase = (rom[1] if len(rom) > 1 else 0) / 40

        def model(t):
            return 21.0 + 1.0 * math.sin(2 * math.pi * t / 480 + phase)

        board = _board.current()
        bus = board.sensor("ds18x20", self.ow._key, "temperature", model)
        return board.sensor("ds18x20", key, "temperature", lambda t: bus)

    def read_temp(self, rom):
        """Degrees C of ``rom`` (85.0, the power-on value, before a first conversion)."""
        if not self._converted:
            return 85.0
        return round(self._celsius(rom) * 16) / 16
