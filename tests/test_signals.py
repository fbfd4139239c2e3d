"""Ctrl-C (SIGINT) interrupts the blocking calls promptly."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from conftest import wait_until

CHILD = """
import sys
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

client = TBDeviceMqttClient({host!r}, {port}, access_token={token!r}, client_id={cid!r})
assert client.connect() is not None, client.last_error
try:
    print("READY", flush=True)
    {call}
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(42)
print("RETURNED", flush=True)
sys.exit(1)
"""


def wait_blocked(pid: int, timeout: float = 5.0) -> None:
    """Linux: wait until the child's main thread sleeps (it is inside the blocking call)."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat")
    if not stat.exists():
        return
    wait_until(
        lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "S",
        timeout,
        "child main thread to block",
    )


@pytest.mark.parametrize(
    "call",
    [
        "client.wait_for_msg()",
        "client.request_attributes(shared_keys=['x'], callback=print, timeout=60)",
        "client.send_rpc_call('m', {}, print, timeout=60)",
    ],
    ids=["wait_for_msg", "request_attributes", "send_rpc_call"],
)
def test_sigint_interrupts_blocking_call(broker, run_py, token, call):
    proc = run_py.spawn(
        CHILD.format(host=broker.host, port=broker.port, token=token, cid="sig-" + token, call=call)
    )
    run_py.read_until(proc, "READY", timeout=30)
    wait_blocked(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=5)
    elapsed = time.monotonic() - t0
    out, err = run_py.finish(proc, timeout=5)
    assert rc == 42, (rc, out, err)
    assert "INTERRUPTED" in out
    assert elapsed < 2.0, f"took {elapsed:.2f}s to react to SIGINT"
