"""``deflate`` stand-in (MicroPython 1.21+): ``DeflateIO`` reads or writes compressed streams."""

import zlib as _zlib

AUTO = 0
RAW = 1
ZLIB = 2
GZIP = 3


def _wbits(fmt, wbits, reading):
    bits = wbits or 15
    if fmt == RAW:
        return -bits
    if fmt == GZIP:
        return 16 + bits
    if fmt == AUTO and reading:
        return 32 + bits
    return bits


class DeflateIO:
    """Wraps ``stream``: ``read`` inflates from it, ``write`` deflates to it."""

    def __init__(self, stream, format=AUTO, wbits=0, close=False):  # noqa: A002
        self._stream = stream
        self._fmt = format
        self._wbits = wbits
        self._close = close
        self._d = None
        self._c = None
        self._buf = b""

    def read(self, n=-1):
        if self._d is None:
            self._d = _zlib.decompressobj(_wbits(self._fmt, self._wbits, True))
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

    def write(self, data):
        if self._c is None:
            fmt = ZLIB if self._fmt == AUTO else self._fmt
            self._c = _zlib.compressobj(wbits=_wbits(fmt, self._wbits, False))
        self._stream.write(self._c.compress(bytes(data)))
        return len(data)

    def close(self):
        if self._c is not None:
            self._stream.write(self._c.flush())
        if self._close:
            self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
