"""``python -m thingsboard_sdk run``: run a MicroPython device script unchanged on CPython."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the ``run`` options to a parser."""
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Runs the script named in ``args``; returns the exit code."""
    print("run: not implemented yet", file=sys.stderr, flush=True)
    return EXIT_USAGE
