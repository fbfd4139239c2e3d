"""``python -m thingsboard_sdk simulate``: many devices from one process, as a subprocess."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOST, PyRunner, _child_env, free_port, spawn_cli

N = 20


def run_simulate(*args: str, cwd: Path, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingsboard_sdk", "simulate", *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary(out: str) -> dict[str, int]:
    """The numbers of the ``summary:`` line (and the ``server:`` line, prefixed ``server ``)."""
    found: dict[str, int] = {}
    for line in out.splitlines():
        prefix = {"summary:": "", "server:": "server "}.get(line.split(" ", 1)[0])
        if prefix is None:
            continue
        for name, value in re.findall(r"([a-zA-Z][a-zA-Z ]*?) (\d+)(?![\d.])", line):
            found[prefix + name.strip()] = int(value)
    assert "connected" in found, f"no summary in:\n{out}"
    return found


def stderr_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The child's next stderr line, waiting at most ``timeout`` seconds."""
    assert proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        assert sel.select(timeout), f"nothing on stderr within {timeout}s"
    return proc.stderr.readline().decode()  # unbuffered: reads up to the newline only


def assert_clean(s: dict[str, int]) -> None:
    assert s["connected"] == s["devices"] == N
    assert s["telemetry"] > 0
    assert s["sent"] == s["acknowledged"] == s["telemetry"] + s["RPC replies"]
    assert s["errors"] == 0


def test_devserver_mode_provisions_the_devices_and_the_server_gets_everything(tmp_path):
    res = run_simulate(
        "--devserver", "--devices", str(N), "--interval", "0.2", "--duration", "3", cwd=tmp_path
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{N} devices provisioned themselves" in res.stdout
    s = summary(res.stdout)
    assert_clean(s)
    # Every telemetry message the clients saw acknowledged is stored on the server.
    assert s["server telemetry stored"] == s["telemetry"]
    assert s["server devices"] == N
    # The server pushed one attribute and sent one RPC to each device; each one answered.
    assert s["attribute updates"] == s["server attribute pushes"] == N
    assert s["RPCs answered"] == s["RPC replies"] == s["server RPC replies received"] == N
    # Not a terminal: the progress line is printed once a second as a plain line on stderr.
    assert re.search(rf"connected {N}/{N}  sent \d+  acknowledged \d+  errors 0", res.stderr)


def test_mosquitto_with_an_attribute_push_and_a_server_rpc(tmp_path, broker, tb_peer, token):
    proc = spawn_cli(
        "simulate",
        "--server",
        f"{broker.host}:{broker.port}",
        "--token-prefix",
        f"{token}-",
        "--devices",
        str(N),
        "--interval",
        "0.2",
        "--duration",
        "4",
        cwd=tmp_path,
    )
    try:
        lines = PyRunner.read_until(proc, "devices to", timeout=30)
        assert f"connected {N}/{N} devices to {broker.host}:{broker.port}" in lines[-1]
        # On mosquitto every device subscribes to the same topics: one publish reaches all.
        tb_peer.push_attributes({"targetTemperature": 21.5})
        tb_peer.server_rpc(7, "getState", {})
        replies = tb_peer.wait_count("v1/devices/me/rpc/response/7", N, timeout=15)
        assert all(r.json()["ok"] is True and r.json()["method"] == "getState" for r in replies)
        out, err = PyRunner.finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    s = summary(out)
    assert_clean(s)
    assert s["attribute updates"] == s["RPCs answered"] == s["RPC replies"] == N
    # The broker delivered every acknowledged telemetry message to the peer.
    assert (
        len(tb_peer.wait_count("v1/devices/me/telemetry", s["telemetry"], timeout=15))
        == (s["telemetry"])
    )


def test_ctrl_c_prints_the_summary_and_exits_0(tmp_path):
    proc = spawn_cli("simulate", "--devserver", "--devices", "5", "--interval", "0.1", cwd=tmp_path)
    try:
        PyRunner.read_until(proc, "devices to", timeout=30)
        # The first progress line: the send loop runs.
        first = stderr_line(proc, timeout=30)
        assert first.startswith("connected 5/5  sent "), first
        proc.send_signal(signal.SIGINT)
        out, err = PyRunner.finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert "Traceback" not in err
    assert "; interrupted" in out
    s = summary(out)
    assert s["connected"] == 5 and s["errors"] == 0
    assert s["sent"] == s["acknowledged"] > 0
    assert s["server telemetry stored"] == s["telemetry"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--devices", "0"], "argument --devices: must be at least 1"),
        (["--devices", "many"], "argument --devices: must be a whole number"),
        (["--interval", "0"], "argument --interval: must be a positive number"),
        (["--duration", "-1"], "argument --duration: must be a positive number"),
        (["--server", "localhost"], "argument --server: must be HOST:PORT"),
        (["--server", "h:70000"], "argument --server: must be HOST:PORT"),
        (["--devserver", "--server", "h:1883"], "not allowed with argument --devserver"),
        (["--qos", "2"], "argument --qos: invalid choice"),
        (["--devserver", "--devices", "10000000"], "open files"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    res = run_simulate("--duration", "1", *args, cwd=tmp_path, timeout=30)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_unreachable_server_exits_1_with_the_reason(tmp_path):
    res = run_simulate(
        "--server", f"{HOST}:{free_port()}", "--devices", "3", "--duration", "1", cwd=tmp_path
    )
    assert res.returncode == 1
    assert "connected 0/3 devices" in res.stdout
    assert "no device connected" in res.stdout
    assert "refused" in res.stdout.lower()
    assert summary(res.stdout)["connected"] == 0
