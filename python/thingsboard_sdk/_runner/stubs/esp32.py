"""``esp32`` stand-in: wake sources, the internal temperature sensor, heap info, NVS (kept
in memory for the run), partitions (this image is "ota_0"), RMT (logged)."""

import logging
import math

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.esp32")

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
HEAP_DATA = 4
HEAP_EXEC = 1


def wake_on_touch(wake):
    log.info("wake_on_touch(%s)", wake)


def wake_on_ulp(wake):
    log.info("wake_on_ulp(%s)", wake)


def wake_on_ext0(pin, level):
    log.info("wake_on_ext0(%s, %s)", getattr(pin, "_id", pin), level)


def wake_on_ext1(pins, level):
    log.info("wake_on_ext1(%s, %s)", [getattr(p, "_id", p) for p in pins], level)


def gpio_deep_sleep_hold(enable):
    pass


def raw_temperature():
    """The chip's temperature sensor in Fahrenheit (older ESP32), about 120 F."""
    return int(mcu_temperature() * 9 / 5 + 32)


def mcu_temperature():
    """The chip's temperature in C (about 48 C, slowly varying)."""
    t = _board.current().uptime()
    return round(48 + 2 * math.sin(2 * math.pi * t / 300), 1)


def hall_sensor():
    return 42


def idf_heap_info(capabilities):
    """``[(total, free, largest_free, min_free), ...]`` per heap region."""
    board = _board.current()
    free = board.mem_free()
    return [(board.heap, free, free // 2, free - 4096)]


class NVS:
    """Non-volatile storage of one namespace (kept for the run)."""

    _store = {}

    def __init__(self, namespace):
        self._ns = self._store.setdefault(namespace, {})

    def set_i32(self, key, value):
        self._ns[key] = int(value)

    def get_i32(self, key):
        if key not in self._ns:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        return self._ns[key]

    def set_blob(self, key, value):
        self._ns[key] = bytes(value)

    def get_blob(self, key, buffer):
        if key not in self._ns:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")
        data = self._ns[key]
        buffer[: len(data)] = data
        return len(data)

    def erase_key(self, key):
        if self._ns.pop(key, None) is None:
            raise OSError(-4354, "ESP_ERR_NVS_NOT_FOUND")

    def commit(self):
        pass


class Partition:
    """A flash partition; the running image is "ota_0"."""

    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):  # noqa: A002
        self._label = "ota_0" if id in (0, 1) else str(id)

    def info(self):
        return (self.TYPE_APP, 16, 0x10000, 0x180000, self._label, False)

    def get_next_update(self):
        return Partition("ota_1")

    def set_boot(self):
        log.info("Partition(%s).set_boot()", self._label)

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=4096):  # noqa: A002
        return [Partition(label or "ota_0")]

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        pass


class RMT:
    """The remote-control peripheral; pulses are logged."""

    def __init__(self, channel, *, pin=None, clock_div=8, idle_level=False, tx_carrier=None):
        self._channel = channel

    def write_pulses(self, duration, data=True):
        log.info("RMT(%d) write_pulses(%r)", self._channel, duration)

    def wait_done(self, *, timeout=0):
        return True

    def loop(self, enable_loop):
        pass

    def deinit(self):
        pass

    def source_freq(self):
        return 80_000_000

    def clock_div(self):
        return 8


class ULP:
    def set_wakeup_period(self, period_index, period_us):
        pass

    def load_binary(self, load_addr, program_binary):
        pass

    def run(self, entry_point):
        pass
