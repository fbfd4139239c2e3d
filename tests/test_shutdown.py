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
