"""The asyncio client under uvloop, and Ctrl-C ending ``asyncio.run()`` with clients disconnected.

The uvloop cases run scenarios of ``test_aio.py`` on a uvloop loop (``uvloop.run``): the
engine's wake-up is a plain file descriptor, so any loop with ``add_reader`` works.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
import test_aio
from test_signals import wait_blocked

uvloop = pytest.importorskip("uvloop")

SCENARIOS = [
    "test_telemetry_exact_bytes_and_handle_completes_on_puback",
    "test_flush_waits_for_every_ack_and_many_handles_complete",
    "test_request_attributes_returns_its_response",
    "test_request_timeout_raises_timeout_error_and_late_answer_is_dropped",
    "test_cancelling_a_waiting_task_cleans_up_its_request",
    "test_disconnect_ends_pending_waits",
    "test_rpc_requests_iterator_and_reply",
    "test_attribute_updates_iterator_and_callbacks",
]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_under_uvloop(name: str, broker: Any, tb_peer: Any) -> None:
    scenario = getattr(test_aio, name)

    async def main() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        await scenario(broker, tb_peer)

    uvloop.run(main())


CHILD = """
import asyncio, sys
from thingsboard_sdk.aio import AsyncTBDeviceClient

async def main():
    async with AsyncTBDeviceClient({host!r}, {port}, access_token="CTRLC") as client:
        await client.send_telemetry({{"alive": 1}})
        print("READY", flush=True)
        await client.send_rpc_call("never", {{}}, timeout=600)

try:
    {runner}(main())
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    sys.exit(42)
print("RETURNED", flush=True)
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_ctrl_c_ends_asyncio_run_with_the_client_disconnected(tb_devserver, run_py, loop):
    tb_devserver.add_device("ctrlc", "CTRLC")
    runner = "asyncio.run" if loop == "asyncio" else "__import__('uvloop').run"
    proc = run_py.spawn(CHILD.format(host=tb_devserver.host, port=tb_devserver.port, runner=runner))
    run_py.read_until(proc, "READY", timeout=30)
    wait_blocked(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=10)
    elapsed = time.monotonic() - t0
    out, err = run_py.finish(proc, timeout=5)
    assert rc == 42, (rc, out, err)
    assert "INTERRUPTED" in out
    assert elapsed < 3.0, f"Ctrl-C took {elapsed:.2f} s"
    tb_devserver.wait_for(
        lambda: len(tb_devserver.connection_events("ctrlc")) >= 2, 10, "the disconnect"
    )
    events = tb_devserver.connection_events("ctrlc")
    assert [e.kind for e in events] == ["connected", "disconnected"], events
    assert events[-1].reason == "client DISCONNECT"
    assert tb_devserver.wait_for(lambda: tb_devserver.latest_telemetry("ctrlc"), 10) == {"alive": 1}
