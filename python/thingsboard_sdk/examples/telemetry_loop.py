"""Send telemetry every second, forever (Ctrl-C ends it on a PC).

On a PC: python -m thingsboard_sdk run examples/telemetry_loop.py --devserver
"""

import gc
import time

import machine
import network
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

WIFI_SSID = "YOUR_WIFI_SSID"
WIFI_PASSWORD = "YOUR_WIFI_PASSWORD"
THINGSBOARD_HOST = "YOUR_THINGSBOARD_HOST"
THINGSBOARD_PORT = 1883
ACCESS_TOKEN = "YOUR_ACCESS_TOKEN"
PERIOD_MS = 1000

wlan = network.WLAN(network.STA_IF)
wlan.active(True)
if not wlan.isconnected():
    wlan.connect(WIFI_SSID, WIFI_PASSWORD)
    while not wlan.isconnected():
        time.sleep_ms(100)

adc = machine.ADC(machine.Pin(26))
client = TBDeviceMqttClient(THINGSBOARD_HOST, port=THINGSBOARD_PORT, access_token=ACCESS_TOKEN)
client.connect()

started = time.ticks_ms()
count = 0
while True:
    count += 1
    volts = adc.read_u16() * 3.3 / 65535
    client.send_telemetry(
        {
            "count": count,
            "voltage": round(volts, 3),
            "uptimeMs": time.ticks_diff(time.ticks_ms(), started),
            "memFree": gc.mem_free(),
        }
    )
    print("sent telemetry", count)
    time.sleep_ms(PERIOD_MS)
