"""``zlib``/``uzlib`` stand-in: ``decompress(data, wbits=15, bufsize=0)`` and ``DecompIO``."""

import zlib as _zlib

from thingsboard_sdk._runner._inflate import InflateReader as _InflateReader


def decompress(data, wbits=15, bufsize=0):
    """Inflates ``data`` (zlib stream by default; negative ``wbits`` raw, +16 gzip)."""
    return _zlib.decompress(data, wbits)


class DecompIO(_InflateReader):
    """A stream that inflates what it reads from ``stream`` (read, readinto, readline)."""

    def __init__(self, stream, wbits=15):
        super().__init__(stream, wbits)
