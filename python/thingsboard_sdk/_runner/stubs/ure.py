"""``re``/``ure`` stand-in: MicroPython's regular expression module.

Only MicroPython's functions exist (``compile``, ``match``, ``search``, ``sub``, ``split``,
``DEBUG``); ``findall``, ``fullmatch``, ``finditer`` and flags other than ``DEBUG`` are missing,
as on a board, so a script that runs here does not fail there. Matching is CPython's engine.
"""

import re as _re

DEBUG = 0x1000


class _Match:
    __slots__ = ("_m",)

    def __init__(self, m):
        self._m = m

    def group(self, *index):
        return self._m.group(*index)

    def groups(self):
        return self._m.groups()

    def start(self, index=0):
        return self._m.start(index)

    def end(self, index=0):
        return self._m.end(index)

    def span(self, index=0):
        return self._m.span(index)

    def __repr__(self):
        return f"<match num={self._m.re.groups + 1}>"


def _wrap(m):
    return None if m is None else _Match(m)


class _Regex:
    __slots__ = ("_r",)

    def __init__(self, pattern, flags=0):
        if flags & ~DEBUG:
            raise ValueError("MicroPython's re supports only the DEBUG flag")
        self._r = _re.compile(pattern)

    def match(self, string, pos=0, endpos=None):
        return _wrap(self._r.match(string, pos, len(string) if endpos is None else endpos))

    def search(self, string, pos=0, endpos=None):
        return _wrap(self._r.search(string, pos, len(string) if endpos is None else endpos))

    def sub(self, replace, string, count=0, flags=0):
        if callable(replace):
            return self._r.sub(lambda m: replace(_Match(m)), string, count)
        return self._r.sub(replace, string, count)

    def split(self, string, max_split=-1):
        return self._r.split(string, 0 if max_split < 0 else max_split)

    def __repr__(self):
        return "<re>"


def compile(regex_str, flags=0):  # noqa: A001 - MicroPython's name
    """A compiled expression with ``match``, ``search``, ``sub``, ``split``."""
    return _Regex(regex_str, flags)


def match(regex_str, string):
    """Matches at the start of ``string``."""
    return compile(regex_str).match(string)


def search(regex_str, string):
    """The first match anywhere in ``string``."""
    return compile(regex_str).search(string)


def sub(regex_str, replace, string, count=0, flags=0):
    """``string`` with matches replaced."""
    return compile(regex_str, flags).sub(replace, string, count)


def split(regex_str, string, max_split=-1):
    """``string`` split at the matches."""
    return compile(regex_str).split(string, max_split)
