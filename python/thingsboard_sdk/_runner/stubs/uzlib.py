"""``zlib``/``uzlib`` stand-in: ``decompress(data, wbits=15, bufsize=0)`` and ``DecompIO``."""

import zlib as _zlib


def decompress(data, wbits=15, bufsize=0):
    """Inflates ``data`` (zlib stream by default; negative ``wbits`` raw, +16 gzip)."""
    return _zlib.decompress(data, wbits)


class DecompIO:
    """A stream that inflates what it reads from ``stream``."""

    def __init__(self, stream, wbits=15):
        self._stream = stream
        self._d = _zlib.decompressobj(wbits)
        self._buf = b""

    def read(self, n=-1):
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

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            out += c
        return out
