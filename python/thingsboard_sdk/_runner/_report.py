"""How a script's end is reported: tracebacks that point at the script, and hints.

Frames of the runner and of the stand-ins are left out, so a traceback looks as it would on a
board, where ``machine`` and ``network`` are built in: it ends at the script's own line (or in
the library the script called).
"""

from __future__ import annotations

import ast
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Optional

_RUNNER_DIR = str(Path(__file__).resolve().parent)


def _internal(filename: str) -> bool:
    try:
        return str(Path(filename).resolve()).startswith(_RUNNER_DIR)
    except (OSError, ValueError):
        return False


def _trim(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if not _internal(f.filename)])
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _trim(chained, seen)


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` without runner frames, as Python would print it."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    _trim(te, set())
    return "".join(te.format())


def script_line(tb: Optional[TracebackType], script: str) -> Optional[int]:
    """The line of the innermost frame of ``tb`` that runs in the file ``script``."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == script:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def set_literal_hint(source: str, line: int) -> Optional[str]:
    """A hint naming the set literal(s) on ``line`` of ``source``, if there is one."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Set) and node.lineno <= line <= (node.end_lineno or node.lineno):
            text = ast.get_source_segment(source, node) or "{...}"
            hint = f"hint: {text} on line {node.lineno} is a set literal, not a dict"
            if len(node.elts) == 2:
                key = ast.get_source_segment(source, node.elts[0])
                value = ast.get_source_segment(source, node.elts[1])
                hint += f"; write {{{key}: {value}}} (a colon between key and value)"
            return hint
    return None


def err(*parts: object) -> None:
    """Prints to stderr at once."""
    print(*parts, file=sys.stderr, flush=True)
