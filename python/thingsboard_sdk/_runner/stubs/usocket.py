"""``socket``/``usocket`` stand-in: host sockets with MicroPython's stream methods.

``socket.socket`` objects also have ``read``, ``readinto``, ``readline`` and ``write``, as on
a board. The script's own sockets are not redirected by ``--server``.
"""

import socket as _socket
from socket import *  # noqa: F403


class socket(_socket.socket):  # noqa: N801 - MicroPython's name
    """A host socket with MicroPython's stream methods."""

    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0, fileno=None):  # noqa: A002, F405
        super().__init__(af, type, proto, fileno)

    def read(self, size=-1):
        """Up to ``size`` bytes (until EOF when negative); ``None`` when non-blocking and
        nothing is there."""
        try:
            if size is None or size < 0:
                chunks = []
                while True:
                    chunk = self.recv(4096)
                    if not chunk:
                        return b"".join(chunks)
                    chunks.append(chunk)
            data = b""
            while len(data) < size:
                chunk = self.recv(size - len(data))
                if not chunk:
                    break
                data += chunk
            return data
        except BlockingIOError:
            return None

    def readinto(self, buf, nbytes=None):
        """Reads into ``buf``; the count, or ``None`` when nothing is there."""
        try:
            return self.recv_into(buf, nbytes or len(buf))
        except BlockingIOError:
            return None

    def readline(self):
        """A line (up to and including ``\\n``)."""
        line = b""
        while not line.endswith(b"\n"):
            c = self.recv(1)
            if not c:
                break
            line += c
        return line

    def write(self, buf):
        """Sends all of ``buf``; returns its length."""
        self.sendall(buf)
        return len(buf)
