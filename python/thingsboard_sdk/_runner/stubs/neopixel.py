"""``neopixel`` stand-in: a WS2812 strip whose colours are recorded.

Pixels are set with ``np[i] = (r, g, b)``; ``write()`` shows them: logged as
``[neopixel] NeoPixel(4) write [(255, 0, 0), ...]`` and reported to the board's outputs
(``--outputs``), as a board would clock them out to the LEDs.
"""

import logging

from thingsboard_sdk._runner import _board

log = logging.getLogger("thingsboard_sdk.runner.neopixel")


class NeoPixel:
    """``n`` pixels of ``bpp`` (3 RGB or 4 RGBW) bytes on ``pin``."""

    ORDER = (1, 0, 2, 3)

    def __init__(self, pin, n, bpp=3, timing=1):
        if bpp not in (3, 4):
            raise ValueError(f"bpp must be 3 or 4, got {bpp!r}")
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.timing = timing
        self.buf = bytearray(n * bpp)
        self._key = _board.pin_key(pin)

    def __len__(self):
        return self.n

    def __setitem__(self, i, colour):
        if len(colour) != self.bpp:
            raise ValueError(f"a pixel is {self.bpp} values, got {colour!r}")
        if i < 0:
            i += self.n
        offset = i * self.bpp
        for k in range(self.bpp):
            self.buf[offset + self.ORDER[k]] = colour[k]

    def __getitem__(self, i):
        if i < 0:
            i += self.n
        offset = i * self.bpp
        return tuple(self.buf[offset + self.ORDER[k]] for k in range(self.bpp))

    def fill(self, colour):
        """Sets every pixel to ``colour``."""
        for i in range(self.n):
            self[i] = colour

    def write(self):
        """Shows the pixels: logged and reported to the board's outputs."""
        colours = [self[i] for i in range(self.n)]
        log.info("NeoPixel(%s) write %s", self._key, colours)
        _board.current().output("neopixel", self._key, [list(c) for c in colours])
