"""What a script run shows of a firmware update: a progress bar, then where the image went.

On a board the reference SDK resets into the new image; on the host the runner prints the
path of the verified file and the script goes on.
"""

from __future__ import annotations

import sys
from typing import IO, Optional

WIDTH = 30


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class FirmwareProgress:
    """``on_firmware_progress(received, total)``: a bar redrawn in place on a terminal, a line
    per 10 % elsewhere (logs, pipes).

    Args:
        out: the stream to draw on (default ``sys.stderr``).
    """

    def __init__(self, out: Optional[IO[str]] = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.last_tenth = -1

    def line(self, received: int, total: int) -> str:
        """The bar for ``received`` of ``total`` bytes."""
        frac = received / total if total > 0 else 1.0
        filled = int(frac * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        return f"firmware [{bar}] {frac * 100:3.0f}% {_size(received)} of {_size(total)}"

    def __call__(self, received: int, total: int) -> None:
        done = received >= total
        if self.tty:
            self.out.write("\r" + self.line(received, total) + ("\n" if done else ""))
        else:
            tenth = 10 if done else int(received * 10 / max(total, 1))
            if tenth == self.last_tenth:
                return
            self.last_tenth = tenth
            self.out.write(self.line(received, total) + "\n")
        self.out.flush()


def firmware_saved(path: str, info: dict) -> None:
    """``on_firmware_update``: says where the verified image is (a board would reset now)."""
    title = info.get("fw_title", "?")
    version = info.get("fw_version", "?")
    print(
        f"firmware {title} {version} verified and saved to {path} "
        "(a board would reset into it now; the script goes on)",
        file=sys.stderr,
        flush=True,
    )
