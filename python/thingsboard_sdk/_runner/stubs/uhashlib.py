"""``hashlib``/``uhashlib`` stand-in: MicroPython's hash objects have ``update()`` and
``digest()`` only (no ``hexdigest()``: use ``binascii.hexlify(h.digest())``, as on a board),
and ``digest()`` ends the object."""

import hashlib as _hashlib


class _Hash:
    _name = ""

    def __init__(self, data=None):
        self._h = _hashlib.new(self._name)
        self._done = False
        if data is not None:
            self.update(data)

    def update(self, data):
        """Feeds more bytes."""
        if self._done:
            raise ValueError("hash object already finalized (digest() was called)")
        self._h.update(data)

    def digest(self):
        """The hash of everything fed; the object cannot be fed afterwards."""
        self._done = True
        return self._h.digest()


class sha256(_Hash):  # noqa: N801 - MicroPython's name
    """SHA-256."""

    _name = "sha256"


class sha1(_Hash):  # noqa: N801
    """SHA-1."""

    _name = "sha1"


class md5(_Hash):  # noqa: N801
    """MD5."""

    _name = "md5"
