"""Answer server-side RPC while doing other work: poll with check_for_msg() in the main loop.

On a PC: python -m thingsboard_sdk run examples/rpc_nonblocking.py --devserver
"""

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

report_period_ms = 5000
loops = 0


def on_rpc(request_id, request_body):
    global report_period_ms
    method = request_body.get("method")
    if method == "setReportPeriod":
        report_period_ms = int(request_body["params"])
        client.send_rpc_reply(request_id, {"reportPeriodMs": report_period_ms})
    elif method == "getLoops":
        client.send_rpc_reply(request_id, {"loops": loops})
    else:
        client.send_rpc_reply(request_id, {"error": "unknown method"})


def safe_check_msg():
    try:
        client.check_for_msg()
    except OSError as e:
        print("check_for_msg failed:", e)


client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.set_server_side_rpc_request_handler(on_rpc)
client.connect()
print("Polling for RPC")

last_report = time.ticks_ms()
while True:
    loops += 1
    safe_check_msg()
    if time.ticks_diff(time.ticks_ms(), last_report) >= report_period_ms:
        last_report = time.ticks_ms()
        client.send_telemetry({"loops": loops, "reportPeriodMs": report_period_ms})
    time.sleep_ms(20)
