"""``random``/``urandom`` stand-in: MicroPython's functions.

``getrandbits(n)`` takes 1..32 bits, as on a board; ``seed``, ``randrange``, ``randint``,
``choice``, ``random`` and ``uniform`` as MicroPython has them.
"""

import random as _random

_rng = _random.Random()


def getrandbits(n):
    """``n`` random bits, 1 <= n <= 32."""
    if not 0 < n <= 32:
        raise ValueError("bits must be 32 or less")
    return _rng.getrandbits(n)


def seed(n=None):
    """Seeds the generator (a random seed when ``n`` is None)."""
    _rng.seed(n)


def randrange(start, stop=None, step=1):
    """A random int from ``range(start, stop, step)``."""
    return _rng.randrange(start, stop, step)


def randint(a, b):
    """A random int in ``[a, b]``."""
    return _rng.randint(a, b)


def choice(sequence):
    """A random element of a non-empty sequence."""
    return _rng.choice(sequence)


def random():
    """A float in ``[0, 1)``."""
    return _rng.random()


def uniform(a, b):
    """A float between ``a`` and ``b``."""
    return _rng.uniform(a, b)
