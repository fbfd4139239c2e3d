"""``ubinascii`` stand-in: CPython's ``binascii``."""

from binascii import *  # noqa: F403
