"""``ujson`` stand-in: CPython's ``json``."""

from json import dump, dumps, load, loads  # noqa: F401
