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
    import threading
    from thingsboard_sdk.devserver import DevServer
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    server = DevServer()
    client = TBDeviceMqttClient(server.host, server.port, access_token=server.add_device("x"))
    assert client.connect() is not None
    waiting = threading.Barrier(4)

    def poll_forever():
        waiting.wait()
        while True:
            client.wait_for_msg(timeout=0.2)

    def watch_store():
        waiting.wait()
        while True:
            server.wait_for_change(server.generation(), timeout=30)

    def read_log():
        stream = server.log_stream()
        waiting.wait()
        while True:
            stream.recv(timeout=30)

    for target in (poll_forever, watch_store, read_log):
        threading.Thread(target=target, daemon=True).start()
    waiting.wait()
    print("exiting with daemon threads waiting in the engine", flush=True)
    """
)


def test_exit_while_daemon_threads_wait_in_the_engine(tmp_path):
    # A daemon thread blocked in an engine wait (GIL released) used to come back for the GIL
    # during finalization; CPython ends it with pthread_exit, and the forced unwind through
    # pyo3's frames aborted the process with exit code 134.
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
