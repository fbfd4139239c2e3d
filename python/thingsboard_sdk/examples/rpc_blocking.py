"""Answer server-side RPC, blocking in wait_for_msg() between requests.

On a PC: python -m thingsboard_sdk run examples/rpc_blocking.py --devserver
"""

import gc
import time

import network
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
ACCESS_TOKEN = "YOUR_ACCESS_TOKEN"

wlan = network.WLAN(network.STA_IF)
wlan.active(True)
if not wlan.isconnected():
    wlan.connect(WIFI_SSID, WIFI_PASSWORD)
    while not wlan.isconnected():
        pass


def on_rpc(request_id, request_body):
    method = request_body.get("method")
    params = request_body.get("params")
    print("RPC", request_id, method, params)
    if method == "getMemFree":
        client.send_rpc_reply(request_id, {"memFree": gc.mem_free()})
    elif method == "echo":
        client.send_rpc_reply(request_id, {"echo": params})
    elif method == "getUptime":
        client.send_rpc_reply(request_id, {"uptimeMs": time.ticks_ms()})
    else:
        client.send_rpc_reply(request_id, {"error": "unknown method " + str(method)})


client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.set_server_side_rpc_request_handler(on_rpc)
client.connect()
print("Waiting for RPC")

while True:
    client.wait_for_msg()
