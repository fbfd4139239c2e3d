"""The inflating reader behind the ``uzlib.DecompIO`` and ``deflate.DeflateIO`` stand-ins.

Both MicroPython streams read compressed bytes from another stream and hand out the inflated
ones; only the format (``wbits``) and the rest of their API differ, so the reading lives here.
"""

from __future__ import annotations

import zlib
from typing import Any


class InflateReader:
    """Reads ``stream`` in small pieces and inflates them, keeping what a read left over.

    Args:
        stream: any object with ``read(n)`` returning bytes (``b""`` at the end).
        wbits: zlib's ``wbits``: 8-15 a zlib stream, negative raw deflate, +16 gzip, +32 either.
    """

    def __init__(self, stream: Any, wbits: int) -> None:
        self._stream = stream
        self._d = zlib.decompressobj(wbits)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        """Returns up to ``n`` inflated bytes (all that is left when ``n`` is negative).

        Raises:
            zlib.error: the compressed data is not valid in this format.
        """
        while n < 0 or len(self._buf) < n:
            chunk = self._stream.read(256)
            if not chunk:
                self._buf += self._d.flush()
                break
            self._buf += self._d.decompress(chunk)
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readinto(self, buf: Any) -> int:
        """Fills ``buf`` from the start; returns how many bytes were written."""
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        """Returns the next line, ``b"\\n"`` included (the rest at the end of the stream)."""
        out = b""
        while not out.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            out += c
        return out
