"""An LED controlled over RPC: on/off on a Pin, brightness on a PWM output.

"setBrightness" fades the LED in the main loop and replies only once the fade is done (a
deferred reply: the handler keeps the request id, the loop answers later).

On a PC: python -m thingsboard_sdk run examples/rpc_led.py --devserver
"""

import time

import network
from machine import PWM, Pin
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
ACCESS_TOKEN = "YOUR_ACCESS_TOKEN"
STATUS_LED_PIN = 2
DIMMED_LED_PIN = 4
FADE_STEP = 10  # percent per loop

wlan = network.WLAN(network.STA_IF)
wlan.active(True)
if not wlan.isconnected():
    wlan.connect(WIFI_SSID, WIFI_PASSWORD)
    while not wlan.isconnected():
        pass

status_led = Pin(STATUS_LED_PIN, Pin.OUT, value=0)
dimmed_led = PWM(Pin(DIMMED_LED_PIN), freq=1000, duty_u16=0)
brightness = 0  # percent
target = 0
pending_reply = None  # request id of a setBrightness still fading


def on_rpc(request_id, request_body):
    global target, pending_reply
    method = request_body.get("method")
    params = request_body.get("params")
    if method == "setLed":
        status_led.value(1 if params else 0)
        client.send_rpc_reply(request_id, {"led": status_led.value()})
    elif method == "getLed":
        client.send_rpc_reply(request_id, {"led": status_led.value(), "brightness": brightness})
    elif method == "setBrightness":
        target = max(0, min(100, int(params)))
        pending_reply = request_id  # answered by the main loop once the fade is done
    else:
        client.send_rpc_reply(request_id, {"error": "unknown method"})


client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.set_server_side_rpc_request_handler(on_rpc)
client.connect()
print("LED ready")

while True:
    client.check_for_msg()
    if brightness != target:
        step = min(FADE_STEP, abs(target - brightness))
        brightness += step if target > brightness else -step
        dimmed_led.duty_u16(brightness * 65535 // 100)
    elif pending_reply is not None:
        client.send_rpc_reply(pending_reply, {"brightness": brightness})
        client.send_telemetry({"brightness": brightness})
        pending_reply = None
    time.sleep_ms(20)
