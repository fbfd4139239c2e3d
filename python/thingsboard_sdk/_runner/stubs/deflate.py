"""``deflate`` stand-in (MicroPython 1.21+): ``DeflateIO`` reads or writes compressed streams."""

import zlib as _zlib

from thingsboard_sdk._runner._inflate import InflateReader as _InflateReader

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

    def _reader(self):
        if self._d is None:
            self._d = _InflateReader(self._stream, _wbits(self._fmt, self._wbits, True))
        return self._d

    def read(self, n=-1):
        return self._reader().read(n)

    def readinto(self, buf):
        return self._reader().readinto(buf)

    def readline(self):
        return self._reader().readline()

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
