"""Publish client attributes, then request client and shared attributes back.

On a PC: python -m thingsboard_sdk run examples/attributes.py --devserver
"""

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


def on_attributes(result, exception=None):
    if exception is not None:
        print("Attribute request failed:", exception)
    else:
        print("Attributes:", result)


client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.connect()
client.send_attributes({"firmwareVersion": "1.0.0", "model": "ESP32-DevKitC"})
client.request_attributes(
    client_keys=["firmwareVersion", "model"],
    shared_keys=["targetTemperature"],
    callback=on_attributes,
)
client.disconnect()
