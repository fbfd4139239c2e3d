"""``rp2`` stand-in: the RP2040's PIO, state machines, DMA and flash, without the silicon.

``@asm_pio`` assembles the program's instructions (the PIO assembler's names: ``set``,
``out``, ``jmp``, ``wait``, ``label``, ``wrap_target``, ``[delay]``, ``.side()``...) into a
list; ``StateMachine`` accepts it and logs what is put into it, ``get()`` returns 0 and
``rx_fifo()`` 0: nothing executes the program on the host. ``bootsel_button()`` is 0 unless
the board's pin ``"BOOTSEL"`` is set high.
"""

import logging

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.rp2")


class PIOASMError(Exception):
    """A malformed PIO program."""


class _Instr:
    def __init__(self, program, text):
        self.program = program
        self.text = text
        program.append(self)

    def __getitem__(self, delay):
        self.text += f" [{delay}]"
        return self

    def side(self, value):
        self.text += f" side {value}"
        return self

    def delay(self, value):
        self.text += f" [{value}]"
        return self


class _Assembler(dict):
    """The globals a PIO program function runs with: each name records an instruction."""

    _OPS = ("nop", "jmp", "wait", "in_", "out", "push", "pull", "mov", "irq", "set")
    _NAMES = (
        "pins",
        "x",
        "y",
        "null",
        "isr",
        "osr",
        "pc",
        "status",
        "exec",
        "pindirs",
        "gpio",
        "pin",
        "noblock",
        "block",
        "rel",
        "not_x",
        "not_y",
        "x_dec",
        "y_dec",
        "x_not_y",
        "not_osre",
        "clear",
        "iffull",
        "ifempty",
        "invert",
        "reverse",
    )

    def __init__(self, base):
        super().__init__(base)
        self.program = []
        for op in self._OPS:
            self[op] = self._op(op.rstrip("_"))
        for name in self._NAMES:
            self[name] = name
        self["label"] = lambda name: self.program.append(f"{name}:")
        self["wrap_target"] = lambda: self.program.append(".wrap_target")
        self["wrap"] = lambda: self.program.append(".wrap")
        self["word"] = lambda instr, label=None: _Instr(self.program, f".word {instr}")

    def _op(self, name):
        def emit(*args):
            return _Instr(self.program, " ".join([name, *map(str, args)]))

        return emit


PIO_IN_LOW = 0
PIO_IN_HIGH = 1


def asm_pio(
    *,
    out_init=None,
    set_init=None,
    sideset_init=None,
    in_shiftdir=0,
    out_shiftdir=0,
    autopush=False,
    autopull=False,
    push_thresh=32,
    pull_thresh=32,
    fifo_join=0,
):
    """Assembles the decorated PIO program (its body runs once, recording instructions)."""

    def assemble(fn):
        env = _Assembler(fn.__globals__)
        code = type(fn)(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)
        code()
        program = [i.text if isinstance(i, _Instr) else i for i in env.program]
        return {
            "name": fn.__name__,
            "instructions": program,
            "set_init": set_init,
            "sideset_init": sideset_init,
            "out_init": out_init,
        }

    return assemble


class StateMachine:
    """A PIO state machine (0..7) running a program from :func:`asm_pio`."""

    def __init__(self, id, program=None, freq=-1, **kwargs):  # noqa: A002
        self._id = id
        self._active = False
        if program is not None:
            self.init(program, freq, **kwargs)

    def init(self, program, freq=-1, **kwargs):
        name = program.get("name") if isinstance(program, dict) else program
        log.info("StateMachine(%d) program %s, freq %d", self._id, name, freq)

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)
        log.info("StateMachine(%d) active(%s)", self._id, self._active)
        return None

    def restart(self):
        pass

    def exec(self, instr):
        log.info("StateMachine(%d) exec(%r)", self._id, instr)

    def put(self, value, shift=0):
        log.info("StateMachine(%d) put(%r)", self._id, value)

    def get(self, buf=None, shift=0):
        return 0

    def rx_fifo(self):
        return 0

    def tx_fifo(self):
        return 0

    def irq(self, handler=None, trigger=0, hard=False):
        return None


class PIO:
    """One of the two PIO blocks."""

    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2
    IRQ_SM0 = 0x100

    def __init__(self, id):  # noqa: A002
        self._id = id

    def add_program(self, program):
        pass

    def remove_program(self, program=None):
        pass

    def state_machine(self, id, program=None, *args, **kwargs):  # noqa: A002
        return StateMachine(self._id * 4 + id, program, *args, **kwargs)

    def irq(self, handler=None, trigger=0, hard=False):
        return None


class DMA:
    """A DMA channel (transfers are copied at once on the host)."""

    def __init__(self):
        self.read = self.write = None
        self.count = 0
        self.ctrl = 0

    def config(self, read=None, write=None, count=None, ctrl=None, trigger=False):
        self.read, self.write, self.count, self.ctrl = read, write, count, ctrl

    def pack_ctrl(self, **kwargs):
        return 0

    def active(self, value=None):
        return False if value is None else None

    def close(self):
        pass


class Flash:
    """The flash outside the filesystem (2 MiB of 0xFF)."""

    def __init__(self):
        self._data = bytearray(b"\xff" * (2 * 1024 * 1024))

    def readblocks(self, block, buf, offset=0):
        start = block * 4096 + offset
        buf[:] = self._data[start : start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        start = block * 4096 + offset
        self._data[start : start + len(buf)] = buf

    def ioctl(self, cmd, arg):
        return {4: len(self._data) // 4096, 5: 4096}.get(cmd, 0)


def bootsel_button():
    """1 while the BOOTSEL button is pressed (the board's pin ``"BOOTSEL"``)."""
    return _board.current().pin_level("BOOTSEL", 0)


def country(code=None):
    """The Wi-Fi country code."""
    return "XX" if code is None else None
