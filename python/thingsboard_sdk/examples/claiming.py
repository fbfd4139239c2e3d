"""Start device claiming: the user then claims the device with this secret in ThingsBoard.

On a PC: python -m thingsboard_sdk run examples/claiming.py --devserver
"""

import network
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
ACCESS_TOKEN = "YOUR_ACCESS_TOKEN"
CLAIM_SECRET = "my-claim-secret"
CLAIM_DURATION_MS = 120000

wlan = network.WLAN(network.STA_IF)
wlan.active(True)
if not wlan.isconnected():
    wlan.connect(WIFI_SSID, WIFI_PASSWORD)
    while not wlan.isconnected():
        pass

client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.connect()
client.claim_device(CLAIM_SECRET, duration_ms=CLAIM_DURATION_MS)
print("Claim the device within", CLAIM_DURATION_MS // 1000, "s using secret", CLAIM_SECRET)
client.disconnect()
