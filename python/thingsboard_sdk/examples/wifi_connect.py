"""Connect to Wi-Fi with a timeout, then report the board's network details as attributes.

On a PC: python -m thingsboard_sdk run examples/wifi_connect.py --devserver
"""

import time

import network
import ubinascii
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
ACCESS_TOKEN = "YOUR_ACCESS_TOKEN"


def connect_wifi(timeout_ms=15000):
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        print("Connecting to", WIFI_SSID)
        wlan.connect(WIFI_SSID, WIFI_PASSWORD)
        started = time.ticks_ms()
        while not wlan.isconnected():
            if time.ticks_diff(time.ticks_ms(), started) > timeout_ms:
                raise RuntimeError("Wi-Fi not connected, status " + str(wlan.status()))
            time.sleep_ms(100)
    print("Wi-Fi connected:", wlan.ifconfig())
    return wlan


wlan = connect_wifi()
client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.connect()
client.send_attributes(
    {
        "ip": wlan.ifconfig()[0],
        "mac": ubinascii.hexlify(wlan.config("mac")).decode(),
        "wifiConnected": wlan.isconnected(),
    }
)
client.disconnect()
print("Done")
