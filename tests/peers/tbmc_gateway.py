"""tb-mqtt-client's own TBGatewayMqttClient as a peer of our dev server (run as a child with
tb-mqtt-client on PYTHONPATH). Usage: tbmc_gateway.py HOST PORT TOKEN MQTT_VERSION(3|5).

Prints READY once its sub-device is connected, serves one shared-attribute push and one RPC,
then prints one JSON line with what it saw and exits.
"""

import json
import sys
import threading
import time

import paho.mqtt.client as paho
from tb_gateway_mqtt import TBGatewayMqttClient

host, port, token, version = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
gw = TBGatewayMqttClient(host, port, username=token)
if version == "3":
    # tb-mqtt-client always builds an MQTT 5 client; switch it to 3.1.1 before connecting.
    gw._client._protocol = paho.MQTTv311
    gw._client._clean_session = True
seen: dict = {"pushes": [], "rpcs": [], "responses": []}
done = threading.Event()


def on_rpc(client, content):
    seen["rpcs"].append(content)
    client.gw_send_rpc_reply(content["device"], content["data"]["id"], {"ok": True})


def check():
    if seen["pushes"] and seen["rpcs"] and seen["responses"]:
        done.set()


gw.connect()
deadline = time.monotonic() + 10
while not gw.is_connected() and time.monotonic() < deadline:
    time.sleep(0.01)
gw.gw_connect_device("tbmc-sub", "thermo").get()
gw.gw_set_server_side_rpc_request_handler(on_rpc)
gw.gw_subscribe_to_all_device_attributes(
    "tbmc-sub", lambda content: (seen["pushes"].append(content), check())
)
gw.gw_send_telemetry("tbmc-sub", {"temp": 21.5}).get()
gw.gw_send_attributes("tbmc-sub", {"model": "T-1"}).get()
print("READY", flush=True)
time.sleep(0.2)
gw.gw_request_client_attributes(
    "tbmc-sub", ["model"], lambda r, e: (seen["responses"].append(r), check())
)
_orig = on_rpc


def on_rpc_and_check(client, content):
    _orig(client, content)
    check()


gw.gw_set_server_side_rpc_request_handler(on_rpc_and_check)
ok = done.wait(20)
time.sleep(0.5)  # let the RPC reply go out
seen["ok"] = ok
print(json.dumps(seen), flush=True)
gw.disconnect()
gw.stop()
