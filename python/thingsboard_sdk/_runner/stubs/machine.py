"""``machine`` stand-in: hardware classes that accept their usual arguments and log what the
script does with them (to stderr, as ``[machine] ...``); ``reset()`` ends the script (or
restarts it with ``--restart-on-reset``).

Outputs remember their state (``Pin.value()`` reads back what was written) and are reported to
the run's board (``--outputs``); inputs read the levels, ADC readings and touch values the
board was given (``--scenario``), and a level change fires the pin's ``irq`` handler. The
buses are empty: ``I2C.scan()`` finds nothing and transfers raise ``OSError(ENODEV)`` as on a
board with nothing attached; ``UART``/``SPI`` reads return no data (zeros for SPI).
"""

import errno
import hashlib
import logging
import threading
import time

from thingsboard_sdk._runner import _board, _state

log = logging.getLogger("thingsboard_sdk.runner.machine")

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_freq = _board.current().profile.freq


def _machine_id():
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        except OSError:
            pass
    import uuid

    return f"{uuid.getnode():012x}"


def unique_id():
    """The board's id (6 bytes on ESP32, 8 on RP2040), the same on every run on this host."""
    n = _board.current().profile.unique_id_len
    return hashlib.sha256(("machine:" + _machine_id()).encode()).digest()[:n]


def reset():
    """Ends the script: a board would restart here."""
    raise _state.MachineReset("machine.reset()", HARD_RESET)


def soft_reset():
    """Ends the script, like :func:`reset`."""
    raise _state.MachineReset("machine.soft_reset()", SOFT_RESET)


def reset_cause():
    """``PWRON_RESET`` on the first boot; after a restart (``--restart-on-reset``) the cause
    of it (``HARD_RESET``, ``SOFT_RESET``, ``DEEPSLEEP_RESET``)."""
    return _board.current().reset_cause or PWRON_RESET


def deepsleep(time_ms=None):
    """Ends the script: waking from deep sleep restarts a board from the top."""
    what = "machine.deepsleep(%s)" % ("" if time_ms is None else time_ms)
    raise _state.MachineReset(what, DEEPSLEEP_RESET, time_ms)


def lightsleep(time_ms=None):
    """Sleeps ``time_ms`` (forever is refused: nothing would wake the host)."""
    if time_ms is None:
        raise ValueError("lightsleep() without a time would never return on the host")
    time.sleep(time_ms / 1000)


def idle():
    """Gives up the CPU briefly."""
    time.sleep(0.001)


def freq(hz=None):
    """The CPU frequency (remembered when set)."""
    global _freq
    if hz is None:
        return _freq
    _freq = hz
    log.info("freq(%d)", hz)
    return None


def disable_irq():
    """No interrupts on the host: returns a state for :func:`enable_irq`."""
    return 0


def enable_irq(state=0):
    """Counterpart of :func:`disable_irq`."""


def bootloader(*args):
    """Ends the script (a board would enter its bootloader)."""
    raise _state.MachineReset("machine.bootloader()", HARD_RESET)


def _name(obj):
    return f"{type(obj).__name__}({obj._id!r})"


class Pin:
    """A GPIO pin; outputs log every change of level."""

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    ALT_OPEN_DRAIN = 4
    ANALOG = 5
    PULL_UP = 1
    PULL_DOWN = 2
    PULL_HOLD = 4
    IRQ_FALLING = 4
    IRQ_RISING = 8
    IRQ_LOW_LEVEL = 16
    IRQ_HIGH_LEVEL = 32
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        self._id = id
        self._mode = self.IN
        self._pull = None
        self._value = 0
        self._irq = None
        self._trigger = 0
        self.init(mode, pull, value=value, drive=drive, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        """Re-configures the pin (arguments as on MicroPython)."""
        if mode != -1 and mode is not None:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        mode_name = {0: "IN", 1: "OUT", 2: "OPEN_DRAIN", 5: "ANALOG"}.get(self._mode, self._mode)
        log.info("%s mode %s", _name(self), mode_name)
        if value is not None:
            self.value(value)

    def _input(self):
        return self._mode in (self.IN, self.ANALOG)

    def _idle_level(self):
        return 1 if self._pull == self.PULL_UP else 0

    def __repr__(self):
        return f"Pin({self._id!r})"

    def value(self, x=None):
        """Reads the level (an input's comes from the board: its pull until set), or sets
        the output level (logged and reported)."""
        if x is None:
            if self._input():
                return _board.current().pin_level(self, self._idle_level())
            return self._value
        level = 1 if x else 0
        if level != self._value or not self._input():
            log.info("%s value %d", _name(self), level)
        self._value = level
        if not self._input():
            _board.current().output("pin", self._id, level)
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        """Sets the level high."""
        self.value(1)

    def off(self):
        """Sets the level low."""
        self.value(0)

    high = on
    low = off

    def toggle(self):
        """Inverts the level."""
        self.value(0 if self.value() else 1)

    def irq(
        self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, *, priority=1, wake=None, hard=False
    ):
        """Registers an interrupt handler, called with the pin when the board's input level
        changes the way ``trigger`` asks (on the thread that changed it)."""
        first = self._irq is None
        self._irq = handler
        self._trigger = trigger
        log.info("%s irq(trigger=%d) registered", _name(self), trigger)
        if first:
            _board.current().watch_pin(self, self._edge, self._idle_level())
        return self

    def _edge(self, old, new):
        handler = self._irq
        wanted = (new and self._trigger & self.IRQ_RISING) or (
            not new and self._trigger & self.IRQ_FALLING
        )
        if handler is None or not wanted:
            return
        try:
            handler(self)
        except Exception:
            log.exception("%s irq handler raised", _name(self))

    def mode(self, mode=None):
        """Gets or sets the mode."""
        if mode is None:
            return self._mode
        self.init(mode)
        return None

    def pull(self, pull=None):
        """Gets or sets the pull."""
        if pull is None:
            return self._pull
        self.init(pull=pull)
        return None


class Signal:
    """A pin with an optional inverted sense."""

    def __init__(self, pin, *args, invert=False, **kwargs):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin, *args, **kwargs)
        self._invert = invert

    def value(self, x=None):
        """Reads or sets the logical value."""
        if x is None:
            return self._pin.value() ^ int(self._invert)
        self._pin.value(bool(x) ^ self._invert)
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        """Logical on."""
        self.value(1)

    def off(self):
        """Logical off."""
        self.value(0)


def _pin_id(pin):
    return pin._id if isinstance(pin, Pin) else pin


class PWM:
    """Pulse-width modulation on a pin; every change of frequency or duty is logged."""

    def __init__(self, dest, *, freq=None, duty=None, duty_u16=None, duty_ns=None, invert=False):
        self._id = _pin_id(dest)
        self._freq = 5000
        self._duty_u16 = 0
        self._on = True
        log.info("%s created", _name(self))
        self.init(freq=freq, duty=duty, duty_u16=duty_u16, duty_ns=duty_ns, invert=invert)

    def __repr__(self):
        return f"PWM(Pin({self._id!r}), freq={self._freq}, duty_u16={self._duty_u16})"

    def init(self, *, freq=None, duty=None, duty_u16=None, duty_ns=None, invert=False):
        """Sets any of frequency and duty."""
        if freq is not None:
            self.freq(freq)
        if duty is not None:
            self.duty(duty)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        if duty_ns is not None:
            self.duty_ns(duty_ns)

    def deinit(self):
        """Stops the output."""
        self._on = False
        log.info("%s deinit", _name(self))
        self._report()

    def freq(self, value=None):
        """Gets or sets the frequency in Hz."""
        if value is None:
            return self._freq
        if value <= 0:
            raise ValueError(f"freq must be > 0, got {value!r}")
        self._freq = int(value)
        log.info("%s freq %d Hz", _name(self), self._freq)
        self._report()
        return None

    def _report(self):
        _board.current().output(
            "pwm", self._id, {"freq": self._freq, "duty_u16": self._duty_u16, "on": self._on}
        )

    def duty_u16(self, value=None):
        """Gets or sets the duty cycle, 0..65535."""
        if value is None:
            return self._duty_u16
        if not 0 <= value <= 65535:
            raise ValueError(f"duty_u16 must be 0..65535, got {value!r}")
        self._duty_u16 = int(value)
        log.info("%s duty_u16 %d (%.1f%%)", _name(self), value, value * 100 / 65535)
        self._report()
        return None

    def duty(self, value=None):
        """Gets or sets the duty cycle, 0..1023 (the ESP32 port's scale)."""
        if value is None:
            return self._duty_u16 * 1023 // 65535
        if not 0 <= value <= 1023:
            raise ValueError(f"duty must be 0..1023, got {value!r}")
        return self.duty_u16(value * 65535 // 1023)

    def duty_ns(self, value=None):
        """Gets or sets the pulse width in nanoseconds."""
        period_ns = 1_000_000_000 // self._freq
        if value is None:
            return self._duty_u16 * period_ns // 65535
        return self.duty_u16(min(65535, value * 65535 // period_ns))


class ADC:
    """An analog input: reads the board's value for the pin (``--scenario``), mid-scale with
    a slow drift until one is set."""

    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 9
    WIDTH_10BIT = 10
    WIDTH_11BIT = 11
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=None):
        self._id = _pin_id(pin)
        self._width = 12
        log.info("%s created", _name(self))

    def read_u16(self):
        """A 16-bit reading."""
        value = _board.current().adc_value(self._id)
        log.debug("%s read_u16 -> %d", _name(self), value)
        return value

    def read(self):
        """A reading at the configured width (12 bits by default)."""
        return self.read_u16() >> (16 - self._width)

    def read_uv(self):
        """The reading in microvolts (3.3 V full scale)."""
        return self.read_u16() * 3_300_000 // 65535

    def atten(self, atten):
        """Sets the attenuation (logged)."""
        log.info("%s atten(%d)", _name(self), atten)

    def width(self, bits):
        """Sets the width for :meth:`read` (9..12 bits)."""
        self._width = bits if bits > 8 else {0: 9, 1: 10, 2: 11, 3: 12}.get(bits, 12)
        log.info("%s width %d bits", _name(self), self._width)

    def init(self, *, atten=None):
        """Re-configures the input."""
        if atten is not None:
            self.atten(atten)


class Timer:
    """A timer whose callback runs on a background thread, periodically or once.

    Every timer is stopped when the script ends.
    """

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, *args, **kwargs):
        self._id = id
        self._stop = None
        if args or kwargs:
            self.init(*args, **kwargs)

    def __repr__(self):
        return f"Timer({self._id!r})"

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, tick_hz=1000, callback=None):
        """Starts the timer: ``period`` in ticks of ``tick_hz`` (ms by default) or ``freq``."""
        self.deinit()
        if freq > 0:
            seconds = 1 / freq
        elif period >= 0:
            seconds = period / tick_hz
        else:
            raise ValueError("Timer.init needs period= or freq=")
        stop = threading.Event()
        self._stop = stop
        kind = "periodic" if mode == self.PERIODIC else "one-shot"
        log.info("%s init %s every %g ms", _name(self), kind, seconds * 1000)

        def loop():
            while not stop.wait(seconds):
                if callback is not None:
                    try:
                        callback(self)
                    except Exception:
                        log.exception("%s callback raised", _name(self))
                if mode != self.PERIODIC:
                    return

        threading.Thread(target=loop, name=f"machine.Timer({self._id!r})", daemon=True).start()
        _state.at_end(self.deinit)

    def deinit(self):
        """Stops the timer."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None


class WDT:
    """A watchdog; feeding is accepted, it never bites on the host."""

    def __init__(self, id=0, timeout=5000):
        self._timeout = timeout
        log.info("WDT(timeout=%d) created (it never resets the host)", timeout)

    def feed(self):
        """Feeds the watchdog."""
        log.debug("WDT feed")


class RTC:
    """The real-time clock: the host's local time."""

    def __init__(self, id=0):
        self._offset = 0.0

    def datetime(self, value=None):
        """``(year, month, day, weekday, hours, minutes, seconds, subseconds)``."""
        if value is not None:
            y, mo, d, _wd, h, mi, s = value[:7]
            wanted = time.mktime((y, mo, d, h, mi, s, 0, 0, -1))
            self._offset = wanted - time.time()
            log.info("RTC datetime set to %r", tuple(value))
            return None
        now = time.time() + self._offset
        t = time.localtime(now)
        return (
            t.tm_year,
            t.tm_mon,
            t.tm_mday,
            t.tm_wday,
            t.tm_hour,
            t.tm_min,
            t.tm_sec,
            int(now % 1 * 1_000_000),
        )

    def init(self, value):
        """Sets the clock."""
        self.datetime(value)


def _bus_error(bus, what):
    log.info("%s %s: no device on the bus", _name(bus), what)
    return OSError(errno.ENODEV, f"no device on the host's {type(bus).__name__} bus")


class I2C:
    """An I2C bus with nothing attached."""

    def __init__(self, id=-1, *, scl=None, sda=None, freq=400_000, timeout=50_000):
        self._id = id
        log.info(
            "%s created (scl=%r, sda=%r, freq=%d)", _name(self), _pin_id(scl), _pin_id(sda), freq
        )

    def init(self, *args, **kwargs):
        """Re-configures the bus."""

    def deinit(self):
        """Turns the bus off."""

    def scan(self):
        """No device answers: ``[]``."""
        log.info("%s scan -> []", _name(self))
        return []

    def readfrom(self, addr, nbytes, stop=True):
        raise _bus_error(self, f"readfrom(0x{addr:02x}, {nbytes})")

    def readfrom_into(self, addr, buf, stop=True):
        raise _bus_error(self, f"readfrom_into(0x{addr:02x})")

    def writeto(self, addr, buf, stop=True):
        raise _bus_error(self, f"writeto(0x{addr:02x}, {bytes(buf)!r})")

    def writevto(self, addr, vector, stop=True):
        raise _bus_error(self, f"writevto(0x{addr:02x})")

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        raise _bus_error(self, f"readfrom_mem(0x{addr:02x}, 0x{memaddr:02x}, {nbytes})")

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        raise _bus_error(self, f"readfrom_mem_into(0x{addr:02x}, 0x{memaddr:02x})")

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        raise _bus_error(self, f"writeto_mem(0x{addr:02x}, 0x{memaddr:02x}, {bytes(buf)!r})")


SoftI2C = I2C


class SPI:
    """An SPI bus: writes are logged, reads give zeros."""

    MSB = 0
    LSB = 1
    CONTROLLER = 0

    def __init__(
        self,
        id=-1,
        baudrate=1_000_000,
        *,
        polarity=0,
        phase=0,
        bits=8,
        firstbit=0,
        sck=None,
        mosi=None,
        miso=None,
        **kwargs,
    ):
        self._id = id
        log.info("%s created (baudrate=%d)", _name(self), baudrate)

    def init(self, *args, **kwargs):
        """Re-configures the bus."""

    def deinit(self):
        """Turns the bus off."""

    def write(self, buf):
        """Logs the bytes written."""
        log.info("%s write %r", _name(self), bytes(buf))

    def read(self, nbytes, write=0x00):
        """``nbytes`` zeros."""
        log.info("%s read(%d)", _name(self), nbytes)
        return bytes(nbytes)

    def readinto(self, buf, write=0x00):
        """Fills ``buf`` with zeros."""
        for i in range(len(buf)):
            buf[i] = 0

    def write_readinto(self, write_buf, read_buf):
        """Logs the bytes written, reads zeros."""
        self.write(write_buf)
        self.readinto(read_buf)


SoftSPI = SPI


class UART:
    """A serial port: writes are logged, nothing is ever received."""

    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, **kwargs):
        self._id = id
        log.info("%s created (baudrate=%d)", _name(self), baudrate)

    def init(self, *args, **kwargs):
        """Re-configures the port."""

    def deinit(self):
        """Turns the port off."""

    def any(self):
        """Bytes waiting: always 0."""
        return 0

    def read(self, nbytes=None):
        """No data: ``None`` (a read timeout on a board)."""
        return None

    def readinto(self, buf, nbytes=None):
        """No data: ``None``."""
        return None

    def readline(self):
        """No data: ``None``."""
        return None

    def write(self, buf):
        """Logs the bytes written; returns their count."""
        data = buf.encode() if isinstance(buf, str) else bytes(buf)
        log.info("%s write %r", _name(self), data)
        return len(data)

    def flush(self):
        """Nothing is buffered."""

    def txdone(self):
        """Always True."""
        return True


mem8 = mem16 = mem32 = None  # no memory-mapped registers on the host


class TouchPad:
    """An ESP32 capacitive touch input: reads the board's value for the pin (high, about
    600, while untouched; lower when touched)."""

    def __init__(self, pin):
        self._id = _pin_id(pin)
        log.info("%s created", _name(self))

    def read(self):
        """The touch reading."""
        board = _board.current()
        key = _board.pin_key(self._id)
        value = board.touch.get(key, 600)
        board._first_read("touch", key, value)
        return value

    def config(self, value):
        """Sets the wake threshold (logged)."""
        log.info("%s config(%d)", _name(self), value)


def time_pulse_us(pin, pulse_level, timeout_us=1_000_000):
    """Nothing pulses on the host: waits for the level like a board would, then -2 (timed
    out waiting for the pulse) if the pin does not already sit at ``pulse_level``."""
    if pin.value() != pulse_level:
        return -2
    time.sleep(min(timeout_us, 1_000_000) / 1_000_000)
    return -1


def bitstream(pin, encoding, timing, buf):
    """Logs the bytes a board would clock out on ``pin``."""
    log.info("bitstream(%s) %r", _pin_id(pin), bytes(buf))


class SDCard:
    """An SD card slot: a block device for ``os.mount`` (the host's folder holds the files)."""

    def __init__(self, slot=1, *args, **kwargs):
        self._id = slot
        log.info("%s created", _name(self))

    def info(self):
        """``(size_bytes, block_size)``: a 4 GiB card."""
        return (4 * 1024**3, 512)

    def readblocks(self, block_num, buf, offset=0):
        for i in range(len(buf)):
            buf[i] = 0

    def writeblocks(self, block_num, buf, offset=0):
        pass

    def ioctl(self, op, arg):
        return {4: 4 * 1024**3 // 512, 5: 512}.get(op, 0)

    def deinit(self):
        pass


class I2S:
    """An I2S audio bus: writes are counted and logged, reads give silence."""

    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    def __init__(self, id, *args, **kwargs):  # noqa: A002
        self._id = id
        self._written = 0
        log.info("%s created", _name(self))

    def init(self, *args, **kwargs):
        pass

    def deinit(self):
        log.info("%s deinit after %d bytes written", _name(self), self._written)

    def write(self, buf):
        self._written += len(buf)
        return len(buf)

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = 0
        return len(buf)

    def irq(self, handler):
        pass
