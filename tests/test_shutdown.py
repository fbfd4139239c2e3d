"""The interpreter exits cleanly while the engine's threads are still busy.

IO tasks and the dev server run on Rust threads; when a script ends (here: with an error) while
clients and a server still exchange messages, their log records must not reach the finalized
interpreter (pyo3-log would panic on each, flooding stderr).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import _child_env

SCRIPT = textwrap.dedent(
    """
    import logging
    logging.basicConfig(level=logging.INFO)
    from thingsboard_sdk.devserver import DevServer
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    server = DevServer()
    clients = []
    for i in range(100):
        token = server.add_device(f"d{i}")
        c = TBDeviceMqttClient("127.0.0.1", server.port, access_token=token, client_id=f"c{i}")
        assert c.connect() is not None
        clients.append(c)
    for c in clients:
        for _ in range(20):
            c.send_telemetry({"a": 1})
    raise SystemExit("script ends with everything running")
    """
)


def test_exit_with_clients_and_server_running_is_clean(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert "script ends with everything running" in r.stderr
    assert "panicked" not in r.stderr, r.stderr[-2000:]
    assert "not initialized" not in r.stderr


DAEMON_WAITS = textwrap.dedent(
    """
    import asyncio
    import logging
    import threading
    from thingsboard_sdk.aio import AsyncTBDeviceClient
    from thingsboard_sdk.devserver import DevServer
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    # INFO: the server's and the clients' log records reach Python from engine threads too.
    logging.basicConfig(level=logging.INFO)
    server = DevServer()
    server.set_client_rpc_handler(lambda device, method, params: {"echo": params})

    def client(name):
        c = TBDeviceMqttClient(server.host, server.port, access_token=server.add_device(name))
        assert c.connect() is not None
        return c

    polled = client("polled")
    polled.set_server_side_rpc_request_handler(lambda rid, body: polled.send_rpc_reply(rid, 1))
    flushing, asking, calling = client("flushing"), client("asking"), client("calling")
    targets = []

    def forever(f):
        def run():
            f()
            went.release()
            while True:
                f()

        targets.append(run)

    forever(lambda: polled.wait_for_msg(timeout=0.2))
    forever(lambda: (flushing.send_telemetry({"a": 1}), flushing.flush(timeout=5)))
    forever(lambda: asking.request_attributes(["a"], ["b"], lambda *r: None, timeout=5))
    forever(lambda: calling.send_rpc_call("m", {"x": 1}, lambda *r: None, timeout=5))
    forever(lambda: server.send_rpc("polled", "m", {}, timeout=5))
    forever(lambda: server.wait_for_change(server.generation(), timeout=30))
    forever(server.generation)
    forever(lambda: server.sync(timeout=5))
    stream = server.log_stream()
    forever(lambda: stream.recv(timeout=30))

    def aio():
        async def main():
            c = AsyncTBDeviceClient(server.host, server.port, access_token=server.add_device("a"))
            await c.connect()
            went.release()
            while True:
                await c.send_telemetry({"a": 1})
                await c.flush(timeout=5)

        asyncio.run(main())

    targets.append(aio)
    # Exit once every thread went round its loop once: they are all busy in the engine.
    went = threading.Semaphore(0)
    for target in targets:
        threading.Thread(target=target, daemon=True).start()
    for _ in targets:
        assert went.acquire(timeout=60)
    print("exiting with daemon threads waiting in the engine", flush=True)
    """
)


def test_exit_while_daemon_threads_wait_in_the_engine(tmp_path):
    # A daemon thread in an engine call that released the GIL (a wait, or a short call such
    # as generation()) used to come back for the GIL during finalization; CPython before 3.14
    # ends it with pthread_exit, and the forced unwind through pyo3's frames aborted the
    # process with exit code 134. Every kind of wait runs in its own thread here, plus log
    # records and a client RPC handler on engine threads and an asyncio client.
    for _ in range(3):
        r = subprocess.run(
            [sys.executable, "-c", DAEMON_WAITS],
            cwd=tmp_path,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "exiting with daemon threads" in r.stdout, r.stderr[-2000:]
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        assert "FATAL" not in r.stderr, r.stderr[-2000:]
