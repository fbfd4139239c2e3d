"""``esp`` stand-in: ESP8266/ESP32 low-level functions, with a 4 MiB flash of 0xFF."""

import logging

from thingsboard_sdk._runner import _state

log = logging.getLogger("thingsboard_sdk.runner.esp")

SLEEP_NONE = 0
SLEEP_LIGHT = 1
SLEEP_MODEM = 2
LOG_NONE = 0
LOG_ERROR = 1
LOG_WARNING = 2
LOG_INFO = 3
LOG_DEBUG = 4
LOG_VERBOSE = 5

_FLASH = bytearray(b"\xff" * (4 * 1024 * 1024))
_sleep = SLEEP_NONE


def osdebug(uart_no, level=LOG_ERROR):
    """Where vendor OS debug output goes (nowhere on the host)."""


def sleep_type(sleep_type=None):
    global _sleep
    if sleep_type is None:
        return _sleep
    _sleep = sleep_type
    return None


def deepsleep(time_us=0, *args):
    """Ends the script as ``machine.deepsleep`` does."""
    raise _state.MachineReset(f"esp.deepsleep({time_us})", 4, time_us // 1000)


def flash_id():
    return 0x1640EF


def flash_size():
    return len(_FLASH)


def flash_user_start():
    return 0x200000


def flash_read(byte_offset, length_or_buffer):
    if isinstance(length_or_buffer, int):
        return bytes(_FLASH[byte_offset : byte_offset + length_or_buffer])
    n = len(length_or_buffer)
    length_or_buffer[:] = _FLASH[byte_offset : byte_offset + n]
    return None


def flash_write(byte_offset, data):
    for i, b in enumerate(bytes(data)):
        _FLASH[byte_offset + i] &= b


def flash_erase(sector_no):
    _FLASH[sector_no * 4096 : (sector_no + 1) * 4096] = b"\xff" * 4096


def check_fw():
    return True


def freemem():
    import gc

    return gc.mem_free()


def neopixel_write(pin, buf, is800khz=True):
    log.info("neopixel_write(%s) %r", getattr(pin, "_id", pin), bytes(buf))


def apa102_write(clock_pin, data_pin, buf):
    log.info("apa102_write %r", bytes(buf))


def dht_readinto(pin, buf):
    raise OSError(110, "ETIMEDOUT: use dht.DHT11/DHT22 on the host")
