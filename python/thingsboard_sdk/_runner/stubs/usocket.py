"""``usocket`` stand-in: CPython's ``socket`` (the script's own sockets are not redirected)."""

from socket import *  # noqa: F403
