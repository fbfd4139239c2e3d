"""Gateway worker (tb-mqtt-client's TBGatewayMqttClient with its defaults): the same load as
gateway_ours.py; waits for every TBPublishInfo and counts the packets paho saw acknowledged.
"""

import json
import sys
import time

from tb_gateway_mqtt import TBGatewayMqttClient

host, port, token, devices, rounds, keys = sys.argv[1:7]
port, devices, rounds, keys = int(port), int(devices), int(rounds), int(keys)
gw = TBGatewayMqttClient(host, port, username=token)
gw.connect()
deadline = time.monotonic() + 30
while not gw.is_connected():
    assert time.monotonic() < deadline, "not connected"
    time.sleep(0.01)
time.sleep(1)  # its service thread asks getSessionLimits after connecting
names = [f"bench-sub-{i:05d}" for i in range(devices)]
for n in names:
    gw.gw_connect_device(n, "bench").get()
t0, c0 = time.perf_counter(), time.process_time()
infos = []
for r in range(rounds):
    for n in names:
        data = {f"k{j}": r * 1000 + j for j in range(keys)}
        infos.append(gw.gw_send_telemetry(n, data))
for info in infos:
    info.get()


def published(info) -> int:
    mi = info.message_info
    items = mi if isinstance(mi, list) else [mi]
    return sum(1 for m in items if m is not None and m.is_published())


acked = sum(published(i) for i in infos)
t1, c1 = time.perf_counter(), time.process_time()
gw.disconnect()
gw.stop()
sent = len(infos)
print(
    "RESULT "
    + json.dumps(
        {
            "messages": sent,
            "datapoints": sent * keys,
            "seconds": t1 - t0,
            "cpu_s": c1 - c0,
            "lost": sent - acked,
        }
    ),
    flush=True,
)
