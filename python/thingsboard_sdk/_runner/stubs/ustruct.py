"""``ustruct`` stand-in: CPython's ``struct``."""

from struct import *  # noqa: F403
