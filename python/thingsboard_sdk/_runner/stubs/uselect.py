"""``uselect`` stand-in: CPython's ``select``."""

from select import *  # noqa: F403
