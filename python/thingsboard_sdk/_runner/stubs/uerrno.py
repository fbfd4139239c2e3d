"""``errno``/``uerrno`` stand-in: the error codes and ``errorcode`` (code -> name)."""

from errno import *  # noqa: F403
from errno import errorcode  # noqa: F401
