"""``python -m thingsboard_sdk run``: run a MicroPython device script unchanged on CPython.

While the script runs (and only then) its MicroPython-only imports are served by host
stand-ins (``network``, ``machine``, ``utime``, ``mip``, ``sdk_core.device_mqtt``, ...; see
``stubs/``), ``time`` and ``gc`` carry MicroPython's extras, and every connection the script
makes can be pointed at another server (``--server``) or at an embedded dev server
(``--devserver``). docs/runner.md is the user's guide.

Exit codes: the script's own (0 at its end, ``sys.exit(n)``, 1 after an uncaught exception),
130 after Ctrl-C, 143 after SIGTERM, 3 after ``machine.reset()``, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

from .. import _devserver_http
from . import _board, _options, _panel, _report, _scenario, _signals, _standins, _state, _wire
from ._redirect import Redirect

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_RESET = _state.EXIT_RESET
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM

log = logging.getLogger("thingsboard_sdk.runner")
err = _report.err


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the ``run`` options to a parser (see ``_options``).

    Args:
        p: the ``run`` subcommand's parser.
    """
    _options.add_arguments(p)


class _Formatter(logging.Formatter):
    """``[machine] Pin(2) value 1`` for the stand-ins, ``LEVEL logger: message`` otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = "thingsboard_sdk.runner"
        if record.name.startswith(prefix + "."):
            tag = record.name[len(prefix) + 1 :]
            text = f"[{tag}] {record.getMessage()}"
            if record.exc_info:
                text += "\n" + self.formatException(record.exc_info)
            return text
        return super().format(record)


class _ReconnectedAfterLost(logging.Filter):
    """At the default level, lets the engine's INFO "reconnected" through once a "lost"
    warning was shown, and no other INFO line of the SDK (the stand-ins' lines pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("thingsboard_sdk.runner") or record.levelno >= logging.WARNING:
            if record.levelno >= logging.WARNING and " lost " in record.getMessage():
                self.lost = True
            return True
        if record.name.startswith("thingsboard_sdk.") and record.levelno == logging.INFO:
            if self.lost and record.getMessage().startswith("reconnected"):
                self.lost = False
                return True
        return record.levelno >= logging.WARNING


def _setup_logging(quiet: bool, verbose: bool) -> Callable[[], None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    sdk = logging.getLogger("thingsboard_sdk")
    saved = (root.level, sdk.level, log.level)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    server_log = logging.getLogger("thingsboard_sdk.devserver")
    saved_server_level = server_log.level
    if verbose:
        sdk.setLevel(logging.DEBUG)
        server_log.setLevel(logging.WARNING)  # --devserver streams its log as [devserver]
    else:
        sdk.setLevel(logging.INFO)
        handler.addFilter(_ReconnectedAfterLost())
    log.setLevel(logging.WARNING if quiet else logging.INFO if not verbose else logging.DEBUG)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        sdk.setLevel(saved[1])
        log.setLevel(saved[2])
        server_log.setLevel(saved_server_level)

    return undo


class _DevServerHost:
    """The embedded dev server of ``--devserver``: registers what the script uses, streams
    the server's log to stderr and prints what it stored at the end."""

    def __init__(
        self,
        device_name: str,
        data: Optional[str] = None,
        http_port: Optional[int] = None,
        admin: Optional[str] = None,
    ) -> None:
        from functools import partial

        from ..devserver import DEFAULT_ADMIN, DevServer

        admin = admin or DEFAULT_ADMIN
        self._admin = admin
        self.panel: Optional[_panel.BoardPanel] = None
        self.server, note = _devserver_http.start(
            partial(DevServer, "127.0.0.1", 0, data=data, admin=admin), http_port
        )
        self._base = device_name
        self._stream = self.server.log_stream()
        self._printer = threading.Thread(target=self._print_log, name="devserver-log", daemon=True)
        self._printer.start()
        err(f"run: dev server on {self.server.host}:{self.server.port}")
        if note:
            err(f"run: {note}")
        for line in _devserver_http.banner(self.server, admin):
            err(f"run: {line}")

    def _print_log(self) -> None:
        while True:
            line = self._stream.recv(None)
            if line is None:
                return
            err(f"[devserver] {line}")

    def add_token(self, token: str) -> None:
        names = set(self.server.devices())
        name, n = self._base, 1
        while name in names:
            n += 1
            name = f"{self._base}-{n}"
        try:
            self.server.add_device(name, token)
        except ValueError:
            return  # already known (e.g. provisioned during this run)
        err(f"run: dev server device {name!r} with access token {token!r}")
        if self.panel is None and self.server.url:
            self.panel = _panel.BoardPanel(self.server.url, self._admin, name)
            self.panel.start()

    def add_profile(self, request: dict) -> None:
        key, secret = request.get("provisionDeviceKey"), request.get("provisionDeviceSecret")
        if isinstance(key, str) and isinstance(secret, str):
            self.server.add_provision_profile(key, secret)

    def close(self) -> None:
        if self.panel is not None:
            self.panel.stop()
        server = self.server
        server.stop()
        self._printer.join(timeout=2)
        for name in server.devices():
            err(f"run: dev server stored for {name!r}:")
            latest = server.latest_telemetry(name)
            if latest:
                err(f"  telemetry (latest): {latest}")
            attrs = server.client_attributes(name)
            if attrs:
                err(f"  client attributes: {attrs}")
            for claim in server.claims(name):
                err(f"  claim: secret {claim.secret_key!r}, {claim.duration_ms} ms")
            for rpc in server.client_rpc_requests(name):
                err(f"  client RPC: {rpc.method}({rpc.params}) -> {rpc.reply}")


def run(args: argparse.Namespace) -> int:
    """Runs the script named in ``args`` with the stand-ins in place.

    Args:
        args: from the ``run`` parser: ``script``, ``rest`` (options after the script and,
            after ``--``, the script's arguments), ``server``, ``token``, ``devserver``,
            ``quiet``, ``verbose``.

    Returns:
        The exit code: the script's, or one of ``EXIT_*``.
    """
    problem = _options.split_rest(args)
    if problem:
        err(f"run: {problem}")
        return EXIT_USAGE
    if args.list_examples:
        for name, summary in list_examples():
            print(f"{name:24} {summary}")
        return EXIT_OK
    if args.example and args.script:
        err(f"run: give SCRIPT.py or --example, not both ({args.script!r} and {args.example!r})")
        return EXIT_USAGE
    if args.example:
        name = args.example[:-3] if args.example.endswith(".py") else args.example
        found = EXAMPLES / f"{name}.py"
        if not found.is_file():
            names = [n for n, _ in list_examples()]
            err(
                f"run: no example {args.example!r}{_options.suggest(name, names)}; "
                f"examples: {', '.join(names)}"
            )
            return EXIT_USAGE
        args.script = str(found)
    if not args.script:
        err("run: give the script to run (SCRIPT.py), or --example NAME (--list-examples)")
        return EXIT_USAGE
    script = Path(args.script)
    try:
        source = script.read_text(encoding="utf-8")
    except OSError as exc:
        err(f"run: cannot read {args.script}: {exc.strerror or exc}")
        return EXIT_USAGE
    if args.server and args.devserver:
        err("run: --server and --devserver exclude each other")
        return EXIT_USAGE
    if args.data and not args.devserver:
        err("run: --data needs --devserver")
        return EXIT_USAGE
    path = str(script.resolve())
    try:
        code = compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        err(_report.format_exception(exc).rstrip())
        return EXIT_ERROR

    try:
        scenario = _scenario.load(args.scenario) if args.scenario else None
    except _scenario.ScenarioError as exc:
        err(f"run: --scenario: {exc}")
        return EXIT_USAGE
    if args.heap is not None and args.heap < 4096:
        err(f"run: --heap must be at least 4096 bytes, got {args.heap}")
        return EXIT_USAGE
    board = _board.start(
        args.board or (scenario.board if scenario else None),
        args.heap or (scenario.heap if scenario else None),
    )
    outputs = None
    if args.outputs:
        try:
            outputs = _scenario.OutputLog(args.outputs)
        except OSError as exc:
            err(f"run: cannot write --outputs {args.outputs}: {exc.strerror or exc}")
            return EXIT_USAGE
        board.on_output(outputs.write)

    guard = _signals.Guard()
    undo_signals = guard.install()
    undo_logging = _setup_logging(args.quiet, args.verbose)
    dev: Optional[_DevServerHost] = None
    host = port = None
    if args.server:
        host, port = args.server
    player = None
    tap = _wire.WireTap() if args.verbose else None
    try:
        if args.devserver:
            try:
                dev = _DevServerHost(
                    script.stem, args.data, args.http_port, _devserver_http.admin_of(args)
                )
            except OSError as exc:
                err(f"run: cannot start the dev server: {exc}")
                return EXIT_USAGE
            host, port = dev.server.host, dev.server.port
        redirect = Redirect(
            host,
            port,
            args.token,
            on_token=dev.add_token if dev else None,
            on_provision=dev.add_profile if dev else None,
            tap=tap,
        )
        if guard.requests:  # Ctrl-C while the dev server started
            err("run: interrupted before the script started")
            return EXIT_INTERRUPTED
        if scenario is not None:
            live = sys.stdin if args.scenario == "-" else None
            player = _scenario.Player(scenario.steps, live)
            player.start()
        return _run_code(code, source, path, args.script_args, redirect, args, guard)
    finally:
        # Design: signals stay only noted (the guard is disarmed) until everything here is
        # done, so a repeated SIGTERM cannot cut the dev server's shutdown short.
        if player is not None:
            player.stop()
        if tap is not None:
            tap.close()
        if dev is not None:
            dev.close()
        if outputs is not None:
            outputs.close()
        undo_logging()
        undo_signals()


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def list_examples() -> list[tuple[str, str]]:
    """``(name, first line of its docstring)`` of each example shipped with the package."""
    out = []
    for path in sorted(EXAMPLES.glob("*.py")):
        summary = ""
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (OSError, SyntaxError):
            doc = None
        if doc:
            summary = doc.strip().splitlines()[0]
        out.append((path.stem, summary))
    return out


def _run_code(
    code: Any,
    source: str,
    path: str,
    argv: list[str],
    redirect: Redirect,
    args: argparse.Namespace,
    guard: _signals.Guard,
) -> int:
    folder = Path(path).parent
    saved_main = sys.modules.get("__main__")
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    # the script's folder and its lib/ are on the path, as a board's / and /lib
    sys.path[:0] = [str(folder), str(folder / "lib")]
    undo_redirect = redirect.install()
    try:
        while True:
            rc, reset = _run_once(code, source, path, redirect, args, guard, folder)
            if reset is None or not args.restart_on_reset:
                return rc
            _board.current().reset_cause = reset.cause
            _board.current().resets += 1
            if reset.sleep_ms:
                err(f"run: {reset.what}: sleeping {reset.sleep_ms} ms, then the board restarts")
                if _sleep_interruptibly(reset.sleep_ms / 1000, guard):
                    return EXIT_INTERRUPTED
            err(f"run: {reset.what}: restarting the script (boot {_board.current().resets + 1})")
    finally:
        guard.disarm()
        undo_redirect()
        sys.argv, sys.path[:] = saved_argv, saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def _sleep_interruptibly(seconds: float, guard: _signals.Guard) -> bool:
    """Sleeps; True if Ctrl-C/SIGTERM came meanwhile."""
    guard.arm()
    try:
        time.sleep(seconds)
        return False
    except (KeyboardInterrupt, _signals.Terminated):
        return True
    finally:
        guard.disarm()


def _run_once(
    code: Any,
    source: str,
    path: str,
    redirect: Redirect,
    args: argparse.Namespace,
    guard: _signals.Guard,
    folder: Path,
) -> tuple[int, Optional[_state.MachineReset]]:
    """One boot of the script; returns its exit code and the reset that ended it, if any."""
    table = _standins.board_builtins(folder)
    main = ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = table  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    undo_standins = _standins.install(folder, table)
    reset: Optional[_state.MachineReset] = None
    try:
        guard.arm()
        try:
            exec(code, main.__dict__)
            rc = EXIT_OK
        except SystemExit as exc:
            rc = _exit_code(exc)
        except _state.MachineReset as exc:
            reset = exc
            if not args.restart_on_reset:
                err(f"run: {exc.what} called: a board would restart here; the run ends")
            rc = EXIT_RESET
        except (KeyboardInterrupt, _signals.Terminated) as exc:
            rc = _interrupted(exc, path)
        except BaseException as exc:  # any other error of the script: its traceback
            err(_report.format_exception(exc).rstrip())
            _hints(exc, source, path, bool(args.server))
            rc = EXIT_ERROR
        finally:
            guard.disarm()
        # Design: a board's reset drops the connection; here the clients the script left
        # connected are disconnected so that queued QoS 1 messages are flushed (bounded).
        _state.run_cleanups()
        n = redirect.disconnect_all()
        if n:
            err(f"run: disconnected {n} client{'s' if n != 1 else ''} the script left connected")
        return rc, reset
    finally:
        guard.disarm()
        _state.run_cleanups()
        undo_standins()


def _interrupted(exc: BaseException, path: str) -> int:
    line = _report.script_line(exc.__traceback__, path)
    where = f" at {Path(path).name} line {line}" if line else ""
    what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
    err(f"run: interrupted ({what}){where}")
    return EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_TERMINATED


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    err(code)
    return EXIT_ERROR


def _hints(exc: BaseException, source: str, path: str, server: bool) -> None:
    line = _report.script_line(exc.__traceback__, path)
    if isinstance(exc, TypeError) and "set" in str(exc) and line is not None:
        hint = _report.set_literal_hint(source, line)
        if hint:
            err(hint)
    if isinstance(exc, ValueError) and "port must be an int" in str(exc) and not server:
        err("hint: a placeholder port? run with --server HOST:PORT (or --devserver)")
    if type(exc) is ModuleNotFoundError and exc.name and "board module" not in str(exc):
        top = exc.name.split(".", 1)[0]
        err(
            f"hint: {top!r} is neither a board built-in the runner provides nor installed on "
            f"this host; a driver copied onto the board goes next to the script (or in its "
            f"lib/ folder), a CPython package is installed with pip"
        )
