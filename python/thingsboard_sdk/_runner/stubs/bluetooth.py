"""``bluetooth`` stand-in: a BLE radio that nobody hears.

``BLE()`` accepts activation, configuration, advertising, scanning and GATT server setup
(``gatts_register_services`` returns handles, ``gatts_write``/``gatts_read`` keep values);
scans find nothing and no central ever connects, so ``irq`` handlers only see
``_IRQ_SCAN_DONE`` after a scan.
"""

import logging
import threading

log = logging.getLogger("thingsboard_sdk.runner.bluetooth")

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_IRQ_SCAN_DONE = 6


class UUID:
    """A 16-bit or 128-bit UUID."""

    def __init__(self, value):
        if isinstance(value, int):
            self._v = value & 0xFFFF
        elif isinstance(value, str):
            self._v = value.lower()
        else:
            self._v = bytes(value)

    def __eq__(self, other):
        return isinstance(other, UUID) and self._v == other._v

    def __hash__(self):
        return hash(self._v)

    def __repr__(self):
        return "UUID(%s)" % (hex(self._v) if isinstance(self._v, int) else repr(self._v))


class BLE:
    """The (silent) radio; ``BLE()`` is the same object every time."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._active = False
            cls._instance._irq = None
            cls._instance._values = {}
            cls._instance._config = {"mac": (0, b"\x02\x00\x00\x00\x00\x01"), "gap_name": "MPY"}
            cls._instance._next = 1
        return cls._instance

    def active(self, active=None):
        if active is None:
            return self._active
        self._active = bool(active)
        log.info("BLE active(%s)", self._active)
        return None

    def config(self, *args, **kwargs):
        if kwargs:
            self._config.update(kwargs)
            return None
        return self._config.get(args[0])

    def irq(self, handler):
        self._irq = handler

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        log.info("BLE gap_advertise(%s) (nobody listens on the host)", interval_us)

    def gap_scan(self, duration_ms, interval_us=1_280_000, window_us=11_250, active=False):
        if duration_ms is None:
            return
        handler = self._irq

        def done():
            if handler is not None:
                handler(_IRQ_SCAN_DONE, None)

        threading.Timer(max(0, duration_ms) / 1000 if duration_ms else 0, done).start()

    def gap_connect(self, addr_type, addr, scan_duration_ms=2000, *args):
        raise OSError(116, "no BLE peripheral on the host")

    def gap_disconnect(self, conn_handle):
        return False

    def gatts_register_services(self, services_definition):
        handles = []
        for _uuid, characteristics in services_definition:
            row = []
            for ch in characteristics:
                row.append(self._next)
                self._values[self._next] = b""
                self._next += 1 + len(ch[2]) if len(ch) > 2 else 1
            handles.append(tuple(row))
        return tuple(handles)

    def gatts_read(self, value_handle):
        return self._values.get(value_handle, b"")

    def gatts_write(self, value_handle, data, send_update=False):
        self._values[value_handle] = bytes(data)

    def gatts_notify(self, conn_handle, value_handle, data=None):
        pass

    def gatts_indicate(self, conn_handle, value_handle, data=None):
        pass

    def gatts_set_buffer(self, value_handle, len, append=False):  # noqa: A002
        pass
