"""Testing board scripts: run one through ``python -m thingsboard_sdk run`` and drive it.

:class:`ScriptRun` starts a MicroPython script in a child interpreter, pointed at a server,
with its board inputs open for the test (``--scenario -``) and its outputs recorded
(``--outputs``). The pytest plugin's ``tb_run_script`` fixture makes one against the
``tb_devserver`` fixture's server; docs/testing.md has a complete example::

    def test_thermostat(tb_devserver, tb_run_script):
        run = tb_run_script("thermostat.py", device="thermostat")
        run.set_sensor("dht", {"temperature": 30.0})
        tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("thermostat")
                              .get("temperature") == 30.0)
        assert run.wait_for_pin(2, 1)  # the fan relay
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

__all__ = ["ScriptRun"]


class ScriptRun:
    """A board script running through the runner in a child process.

    Args:
        script: path of the MicroPython script.
        host, port: the server every connection of the script goes to (``--server``).
        token: access token to use instead of the script's (``--token``).
        args: the script's own ``sys.argv[1:]``.
        options: more runner options (``["--board", "picow"]``, ``["--restart-on-reset"]``).
        cwd: working folder of the child (default: the script's folder).
        env: environment of the child (default: this process's).

    The child is stopped (Ctrl-C, then killed) by :meth:`stop` or when used as a context
    manager.
    """

    def __init__(
        self,
        script: Union[str, Path],
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        token: Optional[str] = None,
        args: Sequence[str] = (),
        options: Sequence[str] = (),
        cwd: Optional[Union[str, Path]] = None,
        env: Optional[Dict[str, str]] = None,
    ) -> None:
        self.script = Path(script).resolve()
        if not self.script.is_file():
            raise FileNotFoundError(f"no script at {self.script}")
        self._tmp = tempfile.TemporaryDirectory(prefix="tb-run-")
        self.outputs_file = Path(self._tmp.name) / "outputs.jsonl"
        cmd = [sys.executable, "-m", "thingsboard_sdk", "run", str(self.script)]
        if host is not None:
            cmd += ["--server", f"{host}:{port or 1883}"]
        if token is not None:
            cmd.append(f"--token={token}")
        cmd += ["--scenario", "-", "--outputs", str(self.outputs_file), *options]
        cmd += ["--", *args]
        self.command = cmd
        self._out: List[str] = []
        self._err: List[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(cwd or self.script.parent),
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    # ---- what it printed and how it ended ------------------------------------------------------

    def _read(self, stream: Any, sink: List[str]) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        """What the script printed (stdout) so far."""
        with self._cond:
            return "".join(self._out)

    @property
    def errors(self) -> str:
        """The runner's stderr so far: tracebacks, ``[machine] ...`` lines, ``run: ...``."""
        with self._cond:
            return "".join(self._err)

    @property
    def returncode(self) -> Optional[int]:
        """The exit status, or None while it runs (docs/runner.md lists the codes)."""
        return self.proc.poll()

    def wait(self, timeout: float = 60.0) -> int:
        """Waits for the script to end.

        Returns:
            Its exit status.

        Raises:
            TimeoutError: still running after ``timeout`` seconds (with its output).
        """
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(self._report(f"still running after {timeout} s")) from None
        for t in self._readers:
            t.join(5)
        return rc

    def wait_for_output(self, text: str, timeout: float = 30.0) -> str:
        """Waits until a line the script printed contains ``text``; returns that line.

        Raises:
            TimeoutError: not printed within ``timeout`` seconds, or the script ended first
                (with its output).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._out:
                    if text in line:
                        return line.rstrip("\n")
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and not any(t.is_alive() for t in self._readers):
                    raise TimeoutError(
                        self._report(
                            f"ended (exit {self.proc.returncode}) without printing {text!r}"
                        )
                    )
                if left <= 0:
                    raise TimeoutError(self._report(f"did not print {text!r} within {timeout} s"))
                self._cond.wait(min(left, 0.5))

    def stop(self, timeout: float = 15.0) -> int:
        """Stops the script as Ctrl-C would (the runner disconnects its clients), killing
        it if it does not end within ``timeout`` seconds.

        Returns:
            Its exit status (130 after Ctrl-C).
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._readers:
            t.join(5)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self.proc.returncode

    def close(self) -> None:
        """Stops the script and removes its temporary files."""
        self.stop()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self._tmp.cleanup()

    def __enter__(self) -> ScriptRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _report(self, what: str) -> str:
        return (
            f"{self.script.name} {what}\n--- its output:\n{self.output}"
            f"--- the runner's stderr:\n{self.errors}"
        )

    # ---- board inputs ------------------------------------------------------------------------

    def set_inputs(self, step: Dict[str, Any]) -> None:
        """Applies a scenario step now (``{"pins": {...}, "adc": {...}, "dht": {...}}``; see
        docs/runner.md).

        Raises:
            RuntimeError: the script has ended.
        """
        if self.proc.poll() is not None or self.proc.stdin is None:
            raise RuntimeError(self._report("has ended; its inputs cannot be set"))
        self.proc.stdin.write((json.dumps(step) + "\n").encode())
        self.proc.stdin.flush()

    def set_pin(self, pin: Any, level: int) -> None:
        """Sets the level input ``pin`` reads (a change fires its ``irq`` handler)."""
        self.set_inputs({"pins": {str(pin): level}})

    def set_adc(self, pin: Any, value: int) -> None:
        """Sets the 16-bit reading (0..65535) of analog input ``pin``."""
        self.set_inputs({"adc": {str(pin): value}})

    def set_sensor(self, kind: str, values: Dict[str, float], key: str = "*") -> None:
        """Sets sensor values, e.g. ``set_sensor("dht", {"temperature": 30.0})``; ``key`` a
        pin or a 1-Wire ROM in hex (``"*"``: every sensor of ``kind``)."""
        self.set_inputs({kind: {key: values} if key != "*" else values})

    # ---- board outputs -----------------------------------------------------------------------

    def output_events(self) -> List[dict]:
        """Every output change so far: ``{"t", "kind", "id", "value"}``."""
        try:
            text = self.outputs_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def outputs(self) -> Dict[str, Any]:
        """The latest value of each output: ``{"pin:2": 1, "pwm:5": {...},
        "neopixel:13": [[r, g, b], ...]}``."""
        state: Dict[str, Any] = {}
        for e in self.output_events():
            state[f"{e['kind']}:{e['id']}"] = e["value"]
        return state

    def wait_for_output_value(
        self, kind: str, ident: Any, value: Any, timeout: float = 30.0
    ) -> Any:
        """Waits until output ``kind:ident`` (``"pin"``, ``"pwm"``, ``"neopixel"``) is
        ``value`` (or, if ``value`` is callable, until ``value(current)`` is true).

        Returns:
            The output's value.

        Raises:
            TimeoutError: with the outputs seen and the script's output.
        """
        key = f"{kind}:{ident}"
        deadline = time.monotonic() + timeout
        while True:
            current = self.outputs().get(key)
            if (value(current) if callable(value) else current == value) and current is not None:
                return current
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                if self.proc.poll() is not None:
                    current = self.outputs().get(key)
                    if current is not None and (
                        value(current) if callable(value) else current == value
                    ):
                        return current
                raise TimeoutError(
                    self._report(
                        f"output {key} is {current!r}, not {value!r}, after {timeout} s "
                        f"(outputs: {self.outputs()})"
                    )
                )
            time.sleep(0.02)

    def wait_for_pin(self, pin: Any, level: int, timeout: float = 30.0) -> int:
        """Waits until output pin ``pin`` is at ``level``; returns it."""
        return self.wait_for_output_value("pin", pin, level, timeout)
