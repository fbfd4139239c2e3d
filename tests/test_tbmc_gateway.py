"""tb-mqtt-client's own TBGatewayMqttClient works against our dev server, over MQTT 5 (its
default) and 3.1.1 (thingsboard-gateway.md Part C).

tb-mqtt-client installs top-level modules (``tb_device_mqtt``, a ``paho`` fork), so it lives
in its own folder (``$TB_MQTT_CLIENT_PATH``, default ``.venv/tb-mqtt-client``, filled by
``pip install --target``) and runs as a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from thingsboard_sdk.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent
TBMC = Path(os.environ.get("TB_MQTT_CLIENT_PATH", ROOT / ".venv" / "tb-mqtt-client"))
PEER = Path(__file__).resolve().parent / "peers" / "tbmc_gateway.py"

pytestmark = pytest.mark.skipif(
    not (TBMC / "tb_gateway_mqtt.py").exists(),
    reason=f"tb-mqtt-client not installed in {TBMC} (pip install --target)",
)


@pytest.mark.parametrize("version", ["5", "3"])
def test_tb_mqtt_client_gateway_against_the_dev_server(version):
    with DevServer(http_port=None) as server:
        token = server.add_device("tbmc-gw", gateway=True)
        env = dict(os.environ, PYTHONPATH=str(TBMC))
        child = subprocess.Popen(
            [sys.executable, str(PEER), server.host, str(server.port), token, version],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "READY"
            assert server.latest_telemetry("tbmc-sub") == {"temp": 21.5}
            assert server.client_attributes("tbmc-sub") == {"model": "T-1"}
            server.set_shared_attributes("tbmc-sub", {"setpoint": 20})
            replies: list = []
            t = threading.Thread(
                target=lambda: replies.append(server.send_rpc("tbmc-sub", "ping", {}, timeout=15))
            )
            t.start()
            seen = json.loads(child.stdout.readline())
            t.join(20)
        finally:
            child.wait(30)
    assert seen["ok"] is True, seen
    assert seen["pushes"] == [{"device": "tbmc-sub", "data": {"setpoint": 20}}]
    assert seen["rpcs"][0]["data"]["method"] == "ping"
    assert seen["responses"][0]["value"] == "T-1"
    assert replies == [{"ok": True}]
    events = [e for e in server.connection_events("tbmc-gw") if e.kind == "connected"]
    assert events[0].version == ("5" if version == "5" else "3.1.1")
