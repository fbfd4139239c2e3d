"""``io``/``uio`` stand-in: MicroPython's stream classes (CPython's underneath)."""

from io import BufferedWriter, BytesIO, FileIO, IOBase, StringIO, TextIOWrapper  # noqa: F401
