"""Provision the device once, keep its credentials in a file, then connect with them.

On a PC: python -m thingsboard_sdk run examples/provisioning.py --devserver
"""

import json

import machine
import network
import ubinascii
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
PROVISION_DEVICE_KEY = "YOUR_PROVISION_DEVICE_KEY"
PROVISION_DEVICE_SECRET = "YOUR_PROVISION_DEVICE_SECRET"
CREDENTIALS_FILE = "tb_credentials.json"
DEVICE_NAME = "sensor-" + ubinascii.hexlify(machine.unique_id()).decode()

wlan = network.WLAN(network.STA_IF)
wlan.active(True)
if not wlan.isconnected():
    wlan.connect(WIFI_SSID, WIFI_PASSWORD)
    while not wlan.isconnected():
        pass


def load_token():
    try:
        with open(CREDENTIALS_FILE) as f:
            return json.load(f)["accessToken"]
    except (OSError, ValueError, KeyError):
        return None


token = load_token()
if token is None:
    print("Provisioning", DEVICE_NAME)
    request = TBDeviceMqttClient.get_provision_request(
        PROVISION_DEVICE_KEY, PROVISION_DEVICE_SECRET, device_name=DEVICE_NAME
    )
    credentials = TBDeviceMqttClient.provision(THINGSBOARD_HOST, THINGSBOARD_PORT, request)
    token = credentials["credentialsValue"]
    with open(CREDENTIALS_FILE, "w") as f:
        json.dump({"accessToken": token}, f)
    print("Provisioned; credentials saved to", CREDENTIALS_FILE)
else:
    print("Using saved credentials")

client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=token)
client.connect()
client.send_telemetry({"provisioned": True, "deviceName": DEVICE_NAME})
client.disconnect()
