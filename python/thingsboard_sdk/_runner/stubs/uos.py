"""``uos`` stand-in: CPython's ``os`` plus MicroPython's ``ilistdir`` and ``dupterm``."""

from os import *  # noqa: F403
from os import scandir as _scandir
from os import sep  # noqa: F401


def ilistdir(path="."):
    """Yields ``(name, type, inode)`` as MicroPython does (type 0x4000 dir, 0x8000 file)."""
    for entry in _scandir(path):
        kind = 0x4000 if entry.is_dir() else 0x8000
        yield (entry.name, kind, entry.inode())


def dupterm(stream=None, index=0):
    """No REPL to duplicate on the host: returns None."""
    return None


class VfsFat:
    """A FAT filesystem on a block device (mounting it is logged; files stay the host's)."""

    def __init__(self, block_dev):
        self.block_dev = block_dev

    @staticmethod
    def mkfs(block_dev):
        """Formats ``block_dev`` (nothing to do on the host)."""


VfsLfs2 = VfsLfs1 = VfsFat


def mount(fsobj, mount_point, *, readonly=False):
    """Mounts ``fsobj`` at ``mount_point``: the host keeps its own filesystem; a folder
    named like the mount point (relative to the current one) is created so paths work."""
    import logging

    folder = mount_point.lstrip("/") or "."
    makedirs(folder, exist_ok=True)  # noqa: F405
    logging.getLogger("thingsboard_sdk.runner.os").info(
        "mount(%s, %r): files go to %s on the host", type(fsobj).__name__, mount_point, folder
    )


def umount(mount_point):
    """Unmounts (nothing to do on the host)."""
