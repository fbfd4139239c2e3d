"""``array``/``uarray`` stand-in: CPython's ``array``."""

from array import array  # noqa: F401
