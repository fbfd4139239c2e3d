"""``framebuf`` stand-in: a frame buffer drawn into the script's own bytearray.

Pixels are stored in ``buf`` in the given format exactly as on a board (``MONO_VLSB``,
``MONO_HLSB``, ``MONO_HMSB``, ``RGB565``, ``GS2_HMSB``, ``GS4_HMSB``, ``GS8``), so a display
driver that sends ``buf`` sends the right bytes. ``text()`` draws each character as a filled
6x7 block in an 8x8 cell (the board's font is not reproduced): text is placed, not legible.
"""

MONO_VLSB = 0
MVLSB = MONO_VLSB
RGB565 = 1
GS4_HMSB = 2
MONO_HLSB = 3
MONO_HMSB = 4
GS2_HMSB = 5
GS8 = 6

_BITS = {MONO_VLSB: 1, MONO_HLSB: 1, MONO_HMSB: 1, RGB565: 16, GS2_HMSB: 2, GS4_HMSB: 4, GS8: 8}


class FrameBuffer:
    """A ``width`` x ``height`` image in ``buf``."""

    def __init__(self, buffer, width, height, format, stride=None):  # noqa: A002
        if format not in _BITS:
            raise ValueError(f"invalid format {format!r}")
        self.buf = buffer
        self.width = width
        self.height = height
        self.format = format
        self.stride = width if stride is None else stride
        bits = _BITS[format]
        if format == MONO_VLSB:
            need = ((height + 7) // 8) * self.stride
        else:
            need = (self.stride * bits + 7) // 8 * height
        if len(buffer) < need:
            raise ValueError(f"buffer too small: {len(buffer)} bytes, {need} needed")

    def _addr(self, x, y):
        f = self.format
        if f == MONO_VLSB:
            return (y >> 3) * self.stride + x, y & 7
        if f in (MONO_HLSB, MONO_HMSB):
            i = y * ((self.stride + 7) // 8) + (x >> 3)
            bit = 7 - (x & 7) if f == MONO_HLSB else x & 7
            return i, bit
        return None, None

    def pixel(self, x, y, c=None):
        """Reads (``c`` None) or sets the pixel at ``(x, y)``; outside the buffer: nothing."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        f, b = self.format, self.buf
        if f in (MONO_VLSB, MONO_HLSB, MONO_HMSB):
            i, bit = self._addr(x, y)
            if c is None:
                return (b[i] >> bit) & 1
            b[i] = (b[i] | (1 << bit)) if c & 1 else (b[i] & ~(1 << bit))
        elif f == RGB565:
            i = (y * self.stride + x) * 2
            if c is None:
                return b[i] | b[i + 1] << 8
            b[i], b[i + 1] = c & 0xFF, (c >> 8) & 0xFF
        elif f == GS8:
            i = y * self.stride + x
            if c is None:
                return b[i]
            b[i] = c & 0xFF
        else:  # GS2_HMSB, GS4_HMSB
            bits = _BITS[f]
            per = 8 // bits
            i = (y * self.stride + x) // per
            shift = (x % per) * bits if f == GS2_HMSB else (1 - x % 2) * 4
            mask = (1 << bits) - 1
            if c is None:
                return (b[i] >> shift) & mask
            b[i] = (b[i] & ~(mask << shift)) | ((c & mask) << shift)
        return None

    def fill_rect(self, x, y, w, h, c):
        """Fills a rectangle."""
        for yy in range(max(0, y), min(self.height, y + h)):
            for xx in range(max(0, x), min(self.width, x + w)):
                self.pixel(xx, yy, c)

    def fill(self, c):
        """Fills the whole buffer."""
        self.fill_rect(0, 0, self.width, self.height, c)

    def hline(self, x, y, w, c):
        self.fill_rect(x, y, w, 1, c)

    def vline(self, x, y, h, c):
        self.fill_rect(x, y, 1, h, c)

    def rect(self, x, y, w, h, c, f=False):
        """A rectangle, filled when ``f``."""
        if f:
            self.fill_rect(x, y, w, h, c)
            return
        self.hline(x, y, w, c)
        self.hline(x, y + h - 1, w, c)
        self.vline(x, y, h, c)
        self.vline(x + w - 1, y, h, c)

    def line(self, x1, y1, x2, y2, c):
        """A line (Bresenham)."""
        dx, dy = abs(x2 - x1), -abs(y2 - y1)
        sx, sy = (1 if x1 < x2 else -1), (1 if y1 < y2 else -1)
        err = dx + dy
        while True:
            self.pixel(x1, y1, c)
            if x1 == x2 and y1 == y2:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x1 += sx
            if e2 <= dx:
                err += dx
                y1 += sy

    def ellipse(self, x, y, xr, yr, c, f=False, m=0xF):
        """An ellipse centred at ``(x, y)``."""
        for yy in range(-yr, yr + 1):
            for xx in range(-xr, xr + 1):
                d = (xx * xx) / max(1, xr * xr) + (yy * yy) / max(1, yr * yr)
                if d <= 1.0 and (f or d >= 0.8):
                    self.pixel(x + xx, y + yy, c)

    def poly(self, x, y, coords, c, f=False):
        """A closed polygon through ``coords`` (x0, y0, x1, y1, ...) offset by ``(x, y)``."""
        pts = [(coords[i], coords[i + 1]) for i in range(0, len(coords) - 1, 2)]
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
            self.line(x + x1, y + y1, x + x2, y + y2, c)

    def text(self, s, x, y, c=1):
        """Places ``s`` at ``(x, y)``, 8 pixels per character (drawn as blocks)."""
        for n, ch in enumerate(str(s)):
            if ch != " ":
                self.fill_rect(x + n * 8 + 1, y, 6, 7, c)

    def scroll(self, xstep, ystep):
        """Shifts the content by ``(xstep, ystep)``."""
        old = [[self.pixel(x, y) for x in range(self.width)] for y in range(self.height)]
        for y in range(self.height):
            for x in range(self.width):
                sx, sy = x - xstep, y - ystep
                if 0 <= sx < self.width and 0 <= sy < self.height:
                    self.pixel(x, y, old[sy][sx])

    def blit(self, fbuf, x, y, key=-1, palette=None):
        """Draws ``fbuf`` at ``(x, y)``; pixels of colour ``key`` are transparent."""
        for yy in range(fbuf.height):
            for xx in range(fbuf.width):
                c = fbuf.pixel(xx, yy)
                if palette is not None:
                    c = palette.pixel(c, 0)
                if c != key:
                    self.pixel(x + xx, y + yy, c)


def FrameBuffer1(buffer, width, height, stride=None):  # noqa: N802 - MicroPython's name
    """The old name of ``FrameBuffer(..., MONO_VLSB)``."""
    return FrameBuffer(buffer, width, height, MONO_VLSB, stride)
