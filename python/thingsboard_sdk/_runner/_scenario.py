"""Board inputs from outside the script (``--scenario``) and its outputs (``--outputs``).

A scenario is JSON: a list of steps, or an object ``{"board": "esp32", "heap": 120000,
"steps": [...]}``. A step sets inputs at a time after the start of the run::

    {"at": 2.5, "pins": {"4": 0}, "adc": {"34": 41000}, "touch": {"4": 120},
     "dht": {"temperature": 27.5, "humidity": 61}, "ds18x20": {"temperature": 19.25}}

``--scenario -`` reads one step per line from stdin, applied when it arrives (``at``, if
given, is still honoured). ``--outputs FILE`` appends one JSON line per output change:
``{"t": 1.234, "kind": "pin", "id": "2", "value": 1}`` (kinds ``pin``, ``pwm``,
``neopixel``).
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Callable, List, Optional, TextIO

from . import _board

log_err: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731


class ScenarioError(ValueError):
    """A scenario that cannot be used (the message names the step and what is wrong)."""


def _check(steps: List[Any]) -> List[dict]:
    scratch = _board.Board(_board.PROFILES[_board.DEFAULT_BOARD])
    out = []
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            raise ScenarioError(f"step {n} must be an object, got {step!r}")
        at = step.get("at", 0)
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
            raise ScenarioError(f"step {n}: 'at' must be seconds >= 0, got {at!r}")
        try:
            scratch.apply(step)
        except ValueError as exc:
            raise ScenarioError(f"step {n}: {exc}") from None
        out.append(step)
    return sorted(out, key=lambda s: s.get("at", 0))


class Scenario:
    """A parsed scenario file.

    Attributes:
        board: the board it asks for (or None).
        heap: the heap size it asks for (or None).
        steps: the steps, by time.
    """

    def __init__(self, board: Optional[str], heap: Optional[int], steps: List[dict]) -> None:
        self.board = board
        self.heap = heap
        self.steps = steps


def load(path: str) -> Scenario:
    """Reads and checks a scenario file (``-``: stdin, read live by :class:`Player`).

    Raises:
        ScenarioError: unreadable, not JSON, or a step that is not understood.
    """
    if path == "-":
        return Scenario(None, None, [])
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path} is not JSON: {exc}") from None
    board = heap = None
    if isinstance(data, dict):
        board, heap, steps = data.get("board"), data.get("heap"), data.get("steps", [])
        unknown = set(data) - {"board", "heap", "steps", "comment"}
        if unknown:
            raise ScenarioError(f"unknown key(s) {sorted(unknown)} (board, heap, steps)")
        if board is not None and board not in _board.PROFILES:
            raise ScenarioError(f"board {board!r} is not one of {sorted(_board.PROFILES)}")
        if heap is not None and (not isinstance(heap, int) or heap < 4096):
            raise ScenarioError(f"heap must be bytes (an int >= 4096), got {heap!r}")
    else:
        steps = data
    if not isinstance(steps, list):
        raise ScenarioError("steps must be a list of objects")
    return Scenario(board, heap, _check(steps))


class Player:
    """Applies a scenario's steps to the run's board on time (a daemon thread)."""

    def __init__(self, steps: List[dict], live: Optional[TextIO] = None) -> None:
        self._steps = steps
        self._live = live
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []

    def start(self) -> None:
        """Starts applying (times count from the board's start)."""
        if self._steps:
            t = threading.Thread(target=self._play, name="scenario", daemon=True)
            t.start()
            self._threads.append(t)
        if self._live is not None:
            t = threading.Thread(target=self._read_live, name="scenario-stdin", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stops applying."""
        self._stop.set()

    def _apply_at(self, step: dict) -> None:
        board = _board.current()
        wait = step.get("at", 0) - board.uptime()
        if wait > 0 and self._stop.wait(wait):
            return
        _board.current().apply(step)

    def _play(self) -> None:
        for step in self._steps:
            if self._stop.is_set():
                return
            self._apply_at(step)

    def _read_live(self) -> None:
        assert self._live is not None
        for n, line in enumerate(self._live, 1):
            if self._stop.is_set():
                return
            line = line.strip()
            if not line:
                continue
            try:
                step = json.loads(line)
                _check([step])
            except (ValueError, ScenarioError) as exc:
                log_err(f"run: scenario line {n} ignored: {exc}")
                continue
            if step.get("at") is not None:
                threading.Thread(target=self._apply_at, args=(step,), daemon=True).start()
            else:
                _board.current().apply(step)


class OutputLog:
    """Appends the board's output changes to a file as JSON lines."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def write(self, event: dict) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.write(json.dumps(event) + "\n")
                self._f.flush()

    def close(self) -> None:
        with self._lock:
            self._f.close()
