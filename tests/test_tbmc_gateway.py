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
            # Its connect named type "thermo" (thingsboard-gateway.md A.4).
            info = server.device_info("tbmc-sub")
            assert (info["type"], info["last_connected_gateway"]) == ("thermo", "tbmc-gw")
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


FEATURES = Path(__file__).resolve().parent / "peers" / "tbmc_gateway_features.py"


@pytest.mark.parametrize("version", ["5", "3"])
def test_tb_mqtt_client_gateway_features_and_malformed_payload(version):
    # Timestamped lists, a device named first by telemetry, client/shared requests
    # (value / values / neither), deletions pushed, claim; then a payload that is not JSON:
    # PUBACK 0x99 on MQTT 5, connection closed on 3.1.1 (thingsboard-gateway.md A.6, A.12).
    env = dict(os.environ, PYTHONPATH=str(TBMC))
    child = subprocess.run(
        [sys.executable, str(FEATURES), version],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    assert seen["answers"] == {
        "shared": {"id": 1, "device": "S1", "values": {"sp": 20, "mode": "eco"}},
        "client": {"id": 2, "device": "S1", "value": "X"},
        "missing": {"id": 3, "device": "S1"},
    }
    assert seen["pushes"] == [{"device": "S1", "data": {"deleted": ["mode"]}}]
    assert seen["s1"] == [[-1000, 2], [0, 3]]
    assert seen["s2"] == {"c": True}
    assert seen["claims"] == [["sek", 60000]]
    # S1's connect named "thermo"; S2 was created by its telemetry: "default" (A.3, A.4).
    assert seen["types"] == {"S1": "thermo", "S2": "default"}
    if version == "5":
        assert (seen["malformed_puback"], seen["closed"]) == ([0x99], [])
    else:
        assert seen["malformed_puback"] == [] and len(seen["closed"]) == 1
