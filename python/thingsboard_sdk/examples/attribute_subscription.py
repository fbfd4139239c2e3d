"""Follow shared attribute updates: apply a new blink period and report it back.

On a PC: python -m thingsboard_sdk run examples/attribute_subscription.py --devserver
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

blink_period_ms = 1000


def on_blink_period(result, *args):
    global blink_period_ms
    blink_period_ms = result["blinkPeriodMs"]
    print("New blink period:", blink_period_ms)
    client.send_attributes({"appliedBlinkPeriodMs": blink_period_ms})


def on_any_attribute(result, *args):
    print("Shared attributes changed:", result)


client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.connect()
client.subscribe_to_attribute("blinkPeriodMs", on_blink_period)
client.subscribe_to_all_attributes(on_any_attribute)
print("Waiting for attribute updates")

while True:
    client.check_for_msg()
    time.sleep_ms(50)
