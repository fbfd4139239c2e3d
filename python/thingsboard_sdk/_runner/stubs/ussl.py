"""``ssl``/``ussl`` stand-in: MicroPython's ``wrap_socket`` and ``SSLContext`` over CPython's
``ssl`` (gone from CPython 3.12's ssl module, still on boards).

As on a board, ``wrap_socket`` does not verify the server unless ``cert_reqs=CERT_REQUIRED``
and ``cadata`` are given.
"""

import ssl as _ssl

CERT_NONE = _ssl.CERT_NONE
CERT_OPTIONAL = _ssl.CERT_OPTIONAL
CERT_REQUIRED = _ssl.CERT_REQUIRED
PROTOCOL_TLS_CLIENT = _ssl.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _ssl.PROTOCOL_TLS_SERVER
SSLError = _ssl.SSLError


class _Stream:
    """An SSL socket with MicroPython's stream methods."""

    def __init__(self, sock):
        self._s = sock

    def read(self, n=-1):
        if n is None or n < 0:
            out = b""
            while True:
                c = self._s.recv(4096)
                if not c:
                    return out
                out += c
        out = b""
        while len(out) < n:
            c = self._s.recv(n - len(out))
            if not c:
                break
            out += c
        return out

    def readinto(self, buf, nbytes=None):
        return self._s.recv_into(buf, nbytes or len(buf))

    def readline(self):
        line = b""
        while not line.endswith(b"\n"):
            c = self._s.recv(1)
            if not c:
                break
            line += c
        return line

    def write(self, buf):
        self._s.sendall(buf)
        return len(buf)

    def __getattr__(self, name):
        return getattr(self._s, name)


class SSLContext:
    """A TLS context (``PROTOCOL_TLS_CLIENT`` or ``PROTOCOL_TLS_SERVER``)."""

    def __init__(self, protocol=PROTOCOL_TLS_CLIENT):
        self._ctx = _ssl.SSLContext(protocol)
        if protocol == PROTOCOL_TLS_CLIENT:
            self._ctx.check_hostname = False
            self._ctx.verify_mode = CERT_NONE

    @property
    def verify_mode(self):
        return self._ctx.verify_mode

    @verify_mode.setter
    def verify_mode(self, mode):
        self._ctx.verify_mode = mode

    def load_cert_chain(self, certfile, keyfile):
        self._ctx.load_cert_chain(certfile, keyfile)

    def load_verify_locations(self, cafile=None, cadata=None):
        if isinstance(cadata, (bytes, bytearray)) and not cadata.lstrip().startswith(b"-----"):
            cadata = bytes(cadata)  # DER
        self._ctx.load_verify_locations(cafile=cafile, cadata=cadata)

    def wrap_socket(
        self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None
    ):
        return _Stream(
            self._ctx.wrap_socket(
                sock,
                server_side=server_side,
                do_handshake_on_connect=do_handshake_on_connect,
                server_hostname=server_hostname,
            )
        )


def wrap_socket(
    sock,
    server_side=False,
    key=None,
    cert=None,
    cert_reqs=CERT_NONE,
    cadata=None,
    server_hostname=None,
    do_handshake=True,
    keyfile=None,
    certfile=None,
):
    """Wraps ``sock`` in TLS, MicroPython's way (``key``/``cert`` or the file names)."""
    ctx = SSLContext(PROTOCOL_TLS_SERVER if server_side else PROTOCOL_TLS_CLIENT)
    if cert_reqs != CERT_NONE:
        ctx.verify_mode = cert_reqs
    if cadata is not None:
        ctx.load_verify_locations(cadata=cadata)
    if certfile or keyfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx.wrap_socket(sock, server_side, do_handshake, server_hostname)
