"""``micropython`` stand-in: ``const`` and the other helpers, as harmless host versions."""

import gc as _gc


def const(value):
    """Returns ``value`` (MicroPython folds it at compile time)."""
    return value


def opt_level(level=None):
    """The optimisation level (always 0 on the host)."""
    return 0 if level is None else None


def alloc_emergency_exception_buf(size):
    """Nothing to reserve on the host."""


def mem_info(verbose=False):
    """Prints the host's figures in MicroPython's shape."""
    print(f"stack: - host -\nGC: total: -, used: {_gc.mem_alloc()}, free: {_gc.mem_free()}")


def qstr_info(verbose=False):
    """Prints nothing useful: there is no qstr pool on the host."""
    print("qstr pool: host")


def stack_use():
    """Not measured on the host: 0."""
    return 0


def heap_lock():
    """No-op on the host."""
    return 0


def heap_unlock():
    """No-op on the host."""
    return 0


def kbd_intr(chr):
    """Ctrl-C handling is the host's: no-op."""


def schedule(func, arg):
    """Runs ``func(arg)`` at once (there is no interrupt context on the host)."""
    func(arg)


def native(func):
    """Decorator kept for compatibility: returns ``func``."""
    return func


viper = native
