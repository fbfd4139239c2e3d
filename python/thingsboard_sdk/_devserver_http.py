"""The dev server's HTTP options, shared by ``devserver`` and ``run --devserver``.

``--http-port`` (default 8080, ThingsBoard's; 0 = any free port) and ``--admin USER:PASSWORD``
(default ThingsBoard's demo tenant). When the default port is taken and ``--http-port`` was
not given, the server takes any free port instead and says so: a second dev server (or a
real ThingsBoard on 8080) must not stop a script from running.
"""

from __future__ import annotations

import argparse
import errno
from typing import Any, Callable, Optional

DEFAULT_HTTP_PORT = 8080


def _admin(text: str) -> str:
    from .devserver import parse_admin

    try:
        parse_admin(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_admin.__name__ = "USER:PASSWORD"


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0..65535; 0 = any free)")
    return int(text)


_port.__name__ = "port"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds ``--http-port`` and ``--admin``.

    Args:
        p: the parser of ``devserver`` or ``run``.
    """
    from .devserver import DEFAULT_ADMIN

    p.add_argument(
        "--http-port",
        type=_port,
        default=None,
        metavar="PORT",
        help=f"port of the REST API and web page (default {DEFAULT_HTTP_PORT}, or any free "
        "port when that one is taken; 0 = any free port)",
    )
    p.add_argument(
        "--admin",
        type=_admin,
        default=None,  # None, not the default login: the runner re-parses its options
        metavar="USER:PASSWORD",
        help=f"the REST API's and web page's login (default {DEFAULT_ADMIN})",
    )


def admin_of(args: argparse.Namespace) -> str:
    """The ``--admin`` login, or the default one.

    Args:
        args: parsed arguments with ``admin``.

    Returns:
        ``USER:PASSWORD``.
    """
    from .devserver import DEFAULT_ADMIN

    return getattr(args, "admin", None) or DEFAULT_ADMIN


def start(make: Callable[..., Any], http_port: Optional[int]) -> tuple[Any, Optional[str]]:
    """Starts a dev server with ``make(http_port=...)``, falling back to a free HTTP port
    when the default one is taken and none was asked for.

    Args:
        make: builds the server given ``http_port`` (``DevServer`` with its other
            arguments bound).
        http_port: the ``--http-port`` given, or None for the default.

    Returns:
        (server, note): note says why the port is not the default one, else None.

    Raises:
        OSError: the address cannot be bound (a port given explicitly is taken).
    """
    if http_port is not None:
        return make(http_port=http_port), None
    try:
        return make(http_port=DEFAULT_HTTP_PORT), None
    except OSError as exc:
        # Only a taken HTTP port falls back; a taken MQTT port raises again below.
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
    server = make(http_port=0)
    return server, f"port {DEFAULT_HTTP_PORT} is taken: the REST API took a free port"


def banner(server: Any, admin: str) -> list[str]:
    """The lines telling where the page is and how to log in, and how to drive it.

    Args:
        server: the running ``DevServer``.
        admin: ``USER:PASSWORD``.

    Returns:
        Lines to print.
    """
    from .devserver import DEFAULT_ADMIN

    user, _, password = admin.partition(":")
    # A password the user chose is not echoed; ThingsBoard's well-known default is.
    shown = password if admin == DEFAULT_ADMIN else "the password given with --admin"
    lines = [
        f"web page and REST API: {server.url}  (login {user} / {shown})",
    ]
    url = "" if server.http_port == DEFAULT_HTTP_PORT else f" --url {server.url}"
    lines.append(
        f"drive it from another terminal: python -m thingsboard_sdk rpc{url} DEVICE METHOD "
        "[PARAMS]  (also: shared, show, follow, firmware; --help)"
    )
    return lines
