"""Makes the stand-in modules importable, and ``time``/``gc`` MicroPython-shaped, for one run.

:func:`install` returns an undo function; after it nothing of the stand-ins is left in
``sys.modules``, ``sys.meta_path``, ``time`` or ``gc``.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

from . import _mptime

STUBS = Path(__file__).resolve().parent / "stubs"

# MicroPython name -> file in stubs/ (a directory for packages).
MODULES = {
    "network": "network.py",
    "machine": "machine.py",
    "utime": "utime.py",
    "ujson": "ujson.py",
    "ubinascii": "ubinascii.py",
    "usocket": "usocket.py",
    "ustruct": "ustruct.py",
    "uos": "uos.py",
    "uselect": "uselect.py",
    "micropython": "micropython.py",
    "mip": "mip.py",
    "sdk_core": "sdk_core",
    "tb_device_mqtt": "tb_device_mqtt.py",
    "provision_client": "provision_client.py",
}


def mem_free() -> int:
    """Bytes of memory the host has available (MicroPython: free heap)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 20


def mem_alloc() -> int:
    """Bytes this process uses at its peak (MicroPython: allocated heap)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def threshold(amount: Optional[int] = None) -> Optional[int]:
    """MicroPython's allocation threshold; the host's collector ignores it."""
    return -1 if amount is None else None


GC_EXTRAS = {"mem_free": mem_free, "mem_alloc": mem_alloc, "threshold": threshold}


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the stand-ins under their MicroPython names (first, as a board's built-ins)."""

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        top = fullname.split(".", 1)[0]
        if top not in MODULES:
            return None
        if fullname == top:
            where = STUBS / MODULES[top]
            if where.is_dir():
                return importlib.util.spec_from_file_location(
                    fullname, where / "__init__.py", submodule_search_locations=[str(where)]
                )
            return importlib.util.spec_from_file_location(fullname, where)
        return None  # submodules of a stand-in package: found on its __path__


def _patch(module: ModuleType, extras: dict[str, Any]) -> Callable[[], None]:
    added = [name for name in extras if not hasattr(module, name)]
    for name in added:
        setattr(module, name, extras[name])

    def undo() -> None:
        for name in added:
            if module.__dict__.get(name) is extras[name]:
                delattr(module, name)

    return undo


def install() -> Callable[[], None]:
    """Puts the stand-ins in place for a run.

    Returns:
        A function that removes every stand-in again.
    """
    # modules of these names imported before the run (not ours) are set aside, then restored
    saved = {n: m for n, m in sys.modules.items() if n.split(".", 1)[0] in MODULES}
    for name in saved:
        del sys.modules[name]
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    _mptime.restart_ticks()
    undo_time = _patch(time, _mptime.EXTRAS)
    undo_gc = _patch(gc, GC_EXTRAS)

    def uninstall() -> None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for name in list(sys.modules):
            if name.split(".", 1)[0] in MODULES:
                del sys.modules[name]
        sys.modules.update(saved)
        undo_time()
        undo_gc()

    return uninstall
