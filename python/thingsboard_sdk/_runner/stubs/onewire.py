"""``onewire`` stand-in: a 1-Wire bus with one simulated DS18B20 on each pin.

``scan()`` finds the sensors the board holds for the pin (one DS18B20 by default, or as many
as ``--scenario`` ``"ds18x20": {"count": N}`` asks); ROM codes carry the family code 0x28 and
a valid CRC. Raw byte traffic is accepted and logged.
"""

import hashlib
import logging

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.onewire")


class OneWireError(Exception):
    """A bus error (no presence pulse)."""


def crc8(data):
    """Dallas/Maxim CRC-8 of ``data`` (0 for a ROM code including its CRC byte)."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def _rom(pin_key, n):
    serial = hashlib.sha256(f"ds18b20:{pin_key}:{n}".encode()).digest()[:6]
    body = bytes([0x28]) + serial
    return bytearray(body + bytes([crc8(body)]))


class OneWire:
    """The bus on ``pin``."""

    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        self._key = _board.pin_key(pin)
        log.info("OneWire(%s) created", self._key)

    def _count(self):
        board = _board.current()
        return int(board.sensor("ds18x20", self._key, "count", lambda t: 1.0))

    def reset(self, required=False):
        """True: a device answered with its presence pulse."""
        present = self._count() > 0
        if required and not present:
            raise OneWireError("no presence pulse on the 1-Wire bus")
        return present

    def scan(self):
        """The ROM codes of the devices on the bus."""
        return [_rom(self._key, n) for n in range(self._count())]

    def readbit(self):
        """A bit from the bus (1: idle high)."""
        return 1

    def readbyte(self):
        """A byte from the bus."""
        return 0xFF

    def readinto(self, buf):
        """Fills ``buf`` from the bus (idle high)."""
        for i in range(len(buf)):
            buf[i] = 0xFF

    def writebit(self, value):
        """Writes a bit."""

    def writebyte(self, value):
        """Writes a byte."""

    def write(self, buf):
        """Writes bytes (logged at DEBUG)."""
        log.debug("OneWire(%s) write %r", self._key, bytes(buf))

    def select_rom(self, rom):
        """Addresses one device."""
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def crc8(self, data):
        """See :func:`crc8`."""
        return crc8(data)
