"""``requests``/``urequests`` stand-in: micropython-lib's HTTP client, over the host's network.

``request(method, url, data=None, json=None, headers={}, stream=None, auth=None,
timeout=None, parse_headers=True)`` and ``get``/``post``/``put``/``patch``/``delete``/``head``
return a :class:`Response` with ``status_code``, ``reason``, ``headers``, ``content``,
``text``, ``json()`` and ``close()``. http and https (certificates are not verified, as on a
board); no redirects are followed beyond micropython-lib's (a 3xx ``Location`` for GET).
"""

import base64 as _base64
import http.client as _http
import json as _json
import ssl as _ssl
from urllib.parse import urlsplit as _urlsplit


class Response:
    """An HTTP response; read ``content``/``text`` or call ``json()`` once."""

    def __init__(self, raw, status, reason, headers):
        self.raw = raw
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.encoding = "utf-8"
        self._cached = None

    def close(self):
        """Releases the connection."""
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        self._cached = self._cached if self._cached is not None else b""

    @property
    def content(self):
        """The body as bytes."""
        if self._cached is None:
            try:
                self._cached = self.raw.read()
            finally:
                self.raw.close()
                self.raw = None
        return self._cached

    @property
    def text(self):
        """The body as str."""
        return str(self.content, self.encoding)

    def json(self):
        """The body parsed as JSON."""
        return _json.loads(self.content)


def request(
    method,
    url,
    data=None,
    json=None,
    headers=None,
    stream=None,
    auth=None,
    timeout=None,
    parse_headers=True,
):
    """Sends one request and returns its :class:`Response`.

    Raises:
        ValueError: a URL that is not http:// or https://.
        OSError: the host cannot be reached.
    """
    headers = dict(headers or {})
    parts = _urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("Unsupported protocol: " + parts.scheme)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
        conn = _http.HTTPSConnection(parts.hostname, port, timeout=timeout, context=ctx)
    else:
        conn = _http.HTTPConnection(parts.hostname, port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if auth is not None:
        token = _base64.b64encode(("{}:{}".format(*auth)).encode()).decode()
        headers["Authorization"] = "Basic " + token
    if json is not None:
        data = _json.dumps(json)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(data, str):
        data = data.encode()
    try:
        conn.request(method, path, body=data, headers=headers)
        raw = conn.getresponse()
    except OSError:
        conn.close()
        raise
    if 300 <= raw.status < 400 and method == "GET" and raw.getheader("Location"):
        location = raw.getheader("Location")
        raw.close()
        conn.close()
        return request(method, location, headers=headers, timeout=timeout)
    hdrs = {k: v for k, v in raw.getheaders()} if parse_headers else {}
    return Response(raw, raw.status, raw.reason.encode(), hdrs)


def head(url, **kw):
    return request("HEAD", url, **kw)


def get(url, **kw):
    return request("GET", url, **kw)


def post(url, **kw):
    return request("POST", url, **kw)


def put(url, **kw):
    return request("PUT", url, **kw)


def patch(url, **kw):
    return request("PATCH", url, **kw)


def delete(url, **kw):
    return request("DELETE", url, **kw)
