"""Makes the stand-in modules importable, and ``time``/``gc`` MicroPython-shaped, for one run.

:func:`install` returns an undo function; after it nothing of the stand-ins is left in
``sys.modules``, ``sys.meta_path``, ``time`` or ``gc``.
"""

from __future__ import annotations

import builtins
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

from . import _board, _mptime

STUBS = Path(__file__).resolve().parent / "stubs"

# MicroPython name -> file in stubs/ (a directory for packages). Served to every importer
# while a script runs (these names are not CPython's).
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
    "ure": "ure.py",
    "uhashlib": "uhashlib.py",
    "ucollections": "ucollections.py",
    "uio": "uio.py",
    "uerrno": "uerrno.py",
    "urandom": "urandom.py",
    "uheapq": "uheapq.py",
    "uarray": "uarray.py",
    "uzlib": "uzlib.py",
    "deflate": "deflate.py",
    "usys": "usys.py",
    "ussl": "ussl.py",
    "uasyncio": "uasyncio.py",
    "ntptime": "ntptime.py",
    "urequests": "urequests.py",
    "umqtt": "umqtt",
    "framebuf": "framebuf.py",
    "bluetooth": "bluetooth.py",
    "rp2": "rp2.py",
    "esp": "esp.py",
    "esp32": "esp32.py",
    "dht": "dht.py",
    "onewire": "onewire.py",
    "ds18x20": "ds18x20.py",
    "neopixel": "neopixel.py",
    "_board_gc": "_board_gc.py",
}

# Other MicroPython names of the same modules (one module object each, not a copy).
ALIASES = {"umachine": "machine", "ubluetooth": "bluetooth", "uplatform": "platform"}

# Names CPython has too: the script (and modules in its folder) get MicroPython's module,
# everything else (the SDK, the standard library) keeps CPython's. A file of that name in
# the script's folder wins, as on a board.
BOARD_IMPORTS = {
    "time": "utime",
    "json": "ujson",
    "re": "ure",
    "random": "urandom",
    "hashlib": "uhashlib",
    "collections": "ucollections",
    "io": "uio",
    "errno": "uerrno",
    "struct": "ustruct",
    "socket": "usocket",
    "select": "uselect",
    "ssl": "ussl",
    "binascii": "ubinascii",
    "os": "uos",
    "sys": "usys",
    "asyncio": "uasyncio",
    "gc": "_board_gc",
    "zlib": "uzlib",
    "heapq": "uheapq",
    "array": "uarray",
    "requests": "urequests",
}

# Board modules the runner has no stand-in for: importing one says so and what to do.
NOT_PROVIDED = {
    "pyb": "the pyboard's hardware module",
    "stm": "the STM32 port's register module",
    "wipy": "the WiPy's module",
    "zephyr": "the Zephyr port's module",
    "lcd160cr": "the LCD160CR display driver",
    "openamp": "the OpenAMP module",
    "uctypes": "MicroPython's C-structure module",
    "btree": "MicroPython's B-tree database",
    "cryptolib": "MicroPython's AES module",
    "ucryptolib": "MicroPython's AES module",
    "espnow": "the ESP-NOW radio module",
    "aioespnow": "the ESP-NOW radio module",
    "webrepl": "the web REPL",
    "webrepl_setup": "the web REPL",
    "upip": "the old package installer (use mip)",
    "wm8960": "the WM8960 audio codec driver",
    "lwip": "the lwIP network stack module",
    "cc3200": "the CC3200 port's module",
    "vfs": "the filesystem-mount module",
}


def not_provided_message(name: str) -> str:
    """The error text for importing a board module without a stand-in."""
    what = NOT_PROVIDED.get(name, "a board module")
    return (
        f"No module named {name!r}: {what}, a board module the host runner does not provide. "
        f"Guard the import (try: import {name} except ImportError: ...) or put a {name}.py "
        "of your own next to the script; docs/runner.md lists the modules provided"
    )


def mem_free() -> int:
    """Bytes of the board's heap free (MicroPython: free heap)."""
    return _board.current().mem_free()


def mem_alloc() -> int:
    """Bytes of the board's heap in use (MicroPython: allocated heap)."""
    return _board.current().mem_alloc()


def threshold(amount: Optional[int] = None) -> Optional[int]:
    """MicroPython's allocation threshold; the host's collector ignores it."""
    return -1 if amount is None else None


GC_EXTRAS = {"mem_free": mem_free, "mem_alloc": mem_alloc, "threshold": threshold}


class _AliasLoader(importlib.abc.Loader):
    """Loads a name as another module (the same object)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass


class _BoardLoader(importlib.abc.Loader):
    """Runs a module of the script's folder with the script's MicroPython imports."""

    def __init__(self, inner: Any, builtins: dict) -> None:
        self.inner = inner
        self.builtins = builtins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__builtins__ = self.builtins  # type: ignore[attr-defined]
        self.inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... of the inner one
        return getattr(self.inner, name)


def _in_folder(folder: Optional[Path], name: str) -> bool:
    return folder is not None and (
        (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()
    )


def board_builtins(folder: Optional[Path]) -> dict:
    """The builtins of the script and the modules of its folder: ``__import__`` gives them
    MicroPython's modules under CPython's names (``BOARD_IMPORTS``).

    Args:
        folder: the script's folder (a file there overrides a board name, as on a board).
    """
    real_import = builtins.__import__

    def board_import(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level == 0 and name in BOARD_IMPORTS and not _in_folder(folder, name):
            return real_import(BOARD_IMPORTS[name], globals, locals, fromlist, 0)
        return real_import(name, globals, locals, fromlist, level)

    table = dict(builtins.__dict__)
    table["__import__"] = board_import
    return table


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the stand-ins under their MicroPython names (first, as a board's built-ins),
    refuses board modules without one by name, and gives the modules of the script's
    folder the script's MicroPython imports."""

    def __init__(self, folder: Optional[Path], builtins_table: Optional[dict]) -> None:
        self.folder = folder
        self.builtins = builtins_table

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        top = fullname.split(".", 1)[0]
        if fullname != top:
            return None  # submodules of a stand-in package: found on its __path__
        if top in MODULES:
            where = STUBS / MODULES[top]
            if where.is_dir():
                return importlib.util.spec_from_file_location(
                    fullname, where / "__init__.py", submodule_search_locations=[str(where)]
                )
            return importlib.util.spec_from_file_location(fullname, where)
        if top in ALIASES:
            return importlib.util.spec_from_loader(fullname, _AliasLoader(ALIASES[top]))
        if self.folder is not None and _in_folder(self.folder, top):
            spec = importlib.machinery.PathFinder.find_spec(fullname, [str(self.folder)])
            if spec is not None and spec.loader is not None and self.builtins is not None:
                spec.loader = _BoardLoader(spec.loader, self.builtins)
            return spec
        if top in NOT_PROVIDED:
            raise ModuleNotFoundError(not_provided_message(top), name=top)
        return None


def _patch(module: ModuleType, extras: dict[str, Any]) -> Callable[[], None]:
    added = [name for name in extras if not hasattr(module, name)]
    for name in added:
        setattr(module, name, extras[name])

    def undo() -> None:
        for name in added:
            if module.__dict__.get(name) is extras[name]:
                delattr(module, name)

    return undo


def _from_folder(module: Any, folder: Optional[Path]) -> bool:
    """True for a module loaded from the script's folder (forgotten after the run)."""
    if folder is None:
        return False
    loader = getattr(getattr(module, "__spec__", None), "loader", None)
    return isinstance(loader, _BoardLoader)


def install(
    folder: Optional[Path] = None, builtins_table: Optional[dict] = None
) -> Callable[[], None]:
    """Puts the stand-ins in place for a run.

    Args:
        folder: the script's folder (its modules get ``builtins_table``).
        builtins_table: from :func:`board_builtins`.

    Returns:
        A function that removes every stand-in again.
    """
    # modules of these names imported before the run (not ours) are set aside, then restored
    ours = set(MODULES) | set(ALIASES)
    saved = {n: m for n, m in sys.modules.items() if n.split(".", 1)[0] in ours}
    for name in saved:
        del sys.modules[name]
    finder = _Finder(folder, builtins_table)
    sys.meta_path.insert(0, finder)
    _mptime.restart_ticks()
    undo_time = _patch(time, _mptime.EXTRAS)
    undo_gc = _patch(gc, GC_EXTRAS)

    def uninstall() -> None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        for name, module in list(sys.modules.items()):
            if name.split(".", 1)[0] in ours or _from_folder(module, folder):
                del sys.modules[name]
        sys.modules.update(saved)
        undo_time()
        undo_gc()

    return uninstall
