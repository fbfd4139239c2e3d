"""``json``/``ujson`` stand-in: MicroPython's JSON module.

``dumps(obj, separators=None)`` and ``dump(obj, stream, separators=None)`` (no ``indent`` or
``sort_keys``, as on a board); ``loads``/``load`` raise ``ValueError`` on bad input.
"""

import json as _json


def dumps(obj, separators=None):
    """``obj`` as JSON text (``", "``/``": "`` between items unless ``separators``)."""
    return _json.dumps(obj, separators=separators)


def dump(obj, stream, separators=None):
    """Writes ``obj`` as JSON to ``stream``."""
    stream.write(dumps(obj, separators))


def loads(s):
    """Parses JSON text (str or bytes).

    Raises:
        ValueError: not valid JSON ("syntax error in JSON" on a board).
    """
    if isinstance(s, (bytes, bytearray, memoryview)):
        s = bytes(s).decode()
    try:
        return _json.loads(s)
    except _json.JSONDecodeError as exc:
        raise ValueError(f"syntax error in JSON ({exc})") from None


def load(stream):
    """Parses JSON from ``stream``."""
    return loads(stream.read())
