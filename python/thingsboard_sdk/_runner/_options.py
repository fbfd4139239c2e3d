"""The ``run`` command's options: parsing, ``--server HOST[:PORT]``, misspelt-option hints.

Options of the runner come before ``--``, before or after SCRIPT.py; words after the script
that are not options are the script's ``sys.argv[1:]``, as is everything after ``--``. An
option the runner does not know is an error naming the closest known one: a misspelt
``--sever`` must not reach the script silently.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Iterable, Optional

DEFAULT_MQTT_PORT = 1883

USAGE = (
    "python -m thingsboard_sdk run [OPTIONS] SCRIPT.py [OPTIONS] [-- SCRIPT_ARGS ...]\n"
    "       python -m thingsboard_sdk run --example NAME [OPTIONS] [-- SCRIPT_ARGS ...]\n"
    "       python -m thingsboard_sdk run --list-examples"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the ``run`` options to a parser.

    Args:
        p: the ``run`` subcommand's parser.
    """
    p.usage = USAGE
    options(p)
    p.add_argument("script", metavar="SCRIPT.py", nargs="?", help="the MicroPython script to run")
    p.add_argument(
        "rest",
        nargs=argparse.REMAINDER,
        metavar="SCRIPT_ARGS",
        help="runner options, then after -- the script's sys.argv[1:]",
    )


def options(p: argparse.ArgumentParser) -> None:
    """Adds the runner's own options (shared by the parser and the re-parse of the words
    after the script)."""
    p.add_argument(
        "--server",
        metavar="HOST[:PORT]",
        type=host_port,
        help="point every connection of the script (client and provisioning) at this "
        f"server (port {DEFAULT_MQTT_PORT} when not given)",
    )
    p.add_argument("--token", help="access token to use instead of the script's")
    p.add_argument(
        "--devserver",
        action="store_true",
        help="start an embedded dev server, register the script's token, point the script "
        "at it, print what it stored at the end",
    )
    from .._devserver_http import add_arguments as add_http_arguments

    add_http_arguments(p)  # --http-port, --admin: the dev server's REST API and page
    p.add_argument(
        "--data",
        metavar="PATH",
        help="with --devserver: keep the dev server's devices and data in folder PATH "
        "across runs (SQLite)",
    )
    p.add_argument(
        "--example",
        metavar="NAME",
        help="run the example NAME that ships with the package (see --list-examples)",
    )
    p.add_argument(
        "--list-examples",
        action="store_true",
        help="list the examples that ship with the package",
    )
    p.add_argument(
        "--scenario",
        metavar="FILE",
        help="board inputs over time (pin levels, ADC readings, sensor values), a JSON file; "
        "'-' reads JSON lines from stdin as they come (docs/runner.md)",
    )
    p.add_argument(
        "--outputs",
        metavar="FILE",
        help="append the board's outputs (pin levels, PWM duty, NeoPixel colours) to FILE "
        "as JSON lines",
    )
    p.add_argument(
        "--board",
        choices=("esp32", "esp8266", "rp2040", "picow"),
        help="the board whose figures the stand-ins show (gc.mem_free, usys.platform, "
        "machine.unique_id length, CPU frequency; default esp32)",
    )
    p.add_argument(
        "--heap",
        metavar="BYTES",
        type=int,
        help="heap size that gc.mem_free() + gc.mem_alloc() add up to (default: the board's)",
    )
    p.add_argument(
        "--restart-on-reset",
        action="store_true",
        help="machine.reset() and deepsleep() run the script again from the top, as a "
        "board reboots (instead of ending the run)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="do not log stand-in activity")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show every MQTT packet the script's clients send and receive, and SDK logs",
    )


OPTION_NAMES = (
    "server",
    "token",
    "devserver",
    "data",
    "http_port",
    "admin",
    "example",
    "list_examples",
    "scenario",
    "outputs",
    "board",
    "heap",
    "restart_on_reset",
    "quiet",
    "verbose",
)


def host_port(text: str) -> tuple[str, int]:
    """The argparse type of ``--server``: ``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or ``V6``.

    Raises:
        argparse.ArgumentTypeError: an empty host or a port that is not 1..65535.
    """
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            port_text = ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a name, an IPv4 address or a bare IPv6 address: no port
        host, port_text = text, None
    if port_text is None:
        port = DEFAULT_MQTT_PORT
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST[:PORT] (port 1..65535, e.g. 127.0.0.1:1883)"
        )
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} has no host (e.g. 127.0.0.1:1883)")
    return host, port


def suggest(word: str, known: Iterable[str]) -> str:
    """``" (did you mean --server?)"`` for the known option closest to ``word``, or ``""``."""
    name = word.split("=", 1)[0]
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_option_message(word: str, known: Iterable[str], tail: str = "") -> str:
    """The error for an unknown option ``word``, naming the closest of ``known``."""
    text = f"unknown option {word.split('=', 1)[0]}{suggest(word, known)}"
    return f"{text}; {tail}" if tail else text


def option_strings(p: argparse.ArgumentParser) -> list[str]:
    """Every option string ``p`` knows (``--server``, ``-v``, ...)."""
    return [s for a in p._actions for s in a.option_strings]


def split_rest(args: argparse.Namespace) -> Optional[str]:
    """Parses the words after SCRIPT.py: runner options, and the script's own words (those
    that are not options, and ``args.script_tail``: what followed ``--``).

    Fills ``args.script_args`` and the options found there.

    Returns:
        An error message, or None.
    """
    mine = list(getattr(args, "rest", None) or [])
    theirs = list(getattr(args, "script_tail", None) or [])
    parser = _RestParser(prog="run", add_help=False)
    options(parser)
    try:
        extra, unknown = parser.parse_known_args(mine)
    except _ParseError as exc:
        return str(exc)
    for word in unknown:
        if word.startswith("-") and word != "-":
            return unknown_option_message(
                word, option_strings(parser), "options for the script go after --"
            )
    for name, value in vars(extra).items():
        if value not in (None, False):
            setattr(args, name, value)
    for name in OPTION_NAMES:
        if not hasattr(args, name):
            setattr(args, name, getattr(extra, name))
    args.script_args = unknown + theirs
    return None


class _ParseError(Exception):
    pass


class _RestParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ParseError(message)
