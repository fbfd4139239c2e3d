"""tb-mqtt-client's TBGatewayMqttClient through every gateway feature against our dev server
(run as a child with tb-mqtt-client on PYTHONPATH). Usage: tbmc_gateway_features.py 3|5.

Prints one JSON object with what the client and the server saw.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as paho
from tb_gateway_mqtt import TBGatewayMqttClient
from thingsboard_sdk.devserver import DevServer


def wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.02)
    return predicate()


out: dict = {}
with DevServer(http_port=None) as srv:
    gw = TBGatewayMqttClient("127.0.0.1", srv.port, username=srv.add_device("gw", gateway=True))
    if sys.argv[1] == "3":
        # tb-mqtt-client always builds an MQTT 5 client; switch it to 3.1.1 before connecting.
        gw._client._protocol = paho.MQTTv311
        gw._client._clean_session = True
    pubacks: dict = {}  # mid -> PUBACK reason code

    def on_publish(client, userdata, mid, rc=None, props=None):
        pubacks[mid] = getattr(rc, "value", rc)

    gw._client.on_publish = on_publish
    gw.connect()
    wait(gw.is_connected)
    gw.gw_connect_device("S1", "thermo").get()
    now = int(time.time() * 1000)
    gw.gw_send_telemetry(
        "S1", [{"ts": now - 1000, "values": {"b": 2}}, {"ts": now, "values": {"b": 3}}]
    )
    gw.gw_send_telemetry("S2", {"ts": now, "values": {"c": True}})
    gw.gw_send_attributes("S1", {"model": "X"})
    gw.gw_claim("S1", "sek", 60000)
    wait(lambda: srv.claims("S1") if "S1" in srv.devices() else False)
    srv.set_shared_attributes("S1", {"sp": 20, "mode": "eco"})
    answers: dict = {}
    done = threading.Event()

    def keep(name):
        def callback(result, exc=None):
            answers[name] = result
            if len(answers) == 3:
                done.set()

        return callback

    gw.gw_request_shared_attributes("S1", ["sp", "mode"], keep("shared"))
    gw.gw_request_client_attributes("S1", ["model"], keep("client"))
    gw.gw_request_client_attributes("S1", ["nope"], keep("missing"))
    done.wait(10)
    pushes: list = []
    gw.gw_subscribe_to_all_attributes(pushes.append)
    srv.delete_shared_attributes("S1", ["mode"])
    wait(lambda: pushes)
    out["answers"] = answers
    out["pushes"] = pushes
    out["s1"] = [(p.ts - now, p.value) for p in srv.telemetry("S1", "b")]
    out["s2"] = srv.latest_telemetry("S2")
    out["claims"] = [(c.secret_key, c.duration_ms) for c in srv.claims("S1")]
    out["types"] = {n: srv.device_info(n)["type"] for n in ("S1", "S2")}
    bad = gw._client.publish("v1/gateway/telemetry", b"not json", qos=1)
    wait(lambda: bad.mid in pubacks or not gw._client.is_connected(), 5)
    out["malformed_puback"] = [pubacks[bad.mid]] if bad.mid in pubacks else []
    out["closed"] = [e.reason for e in srv.connection_events("gw") if e.kind == "disconnected"]
    gw.stop()
    gw.disconnect()
print(json.dumps(out), flush=True)
