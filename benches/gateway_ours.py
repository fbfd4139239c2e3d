"""Gateway worker (ours): DEVICES sub-devices, each sends ROUNDS telemetry messages of KEYS
keys at QoS 1 through one TBGatewayMqttClient; prints RESULT {json}. Run by benches/gateway.py.

The client is built as a user builds it, with every default:
``TBGatewayMqttClient(host, port, username=token)`` (callback thread on, ``getSessionLimits``
asked, the default in-flight window and queue bound), as gateway_tb.py builds tb-mqtt-client's.
"""

import json
import sys
import time

from thingsboard_sdk.exceptions import QueueFullError
from thingsboard_sdk.tb_gateway_mqtt import TBGatewayMqttClient

host, port, token, devices, rounds, keys = sys.argv[1:7]
port, devices, rounds, keys = int(port), int(devices), int(rounds), int(keys)
gw = TBGatewayMqttClient(host, port, username=token)
assert gw.connect(timeout=30) is not None, gw.last_error
names = [f"bench-sub-{i:05d}" for i in range(devices)]
for n in names:
    gw.gw_connect_device(n, "bench")
assert gw.flush(60)
t0, c0 = time.perf_counter(), time.process_time()
sent = backoffs = 0
for r in range(rounds):
    for n in names:
        data = {f"k{j}": r * 1000 + j for j in range(keys)}
        while True:
            try:
                gw.gw_send_telemetry(n, data)
                sent += 1
                break
            except QueueFullError:
                backoffs += 1
                gw.flush(timeout=0.002)
ok = gw.flush(120)
t1, c1 = time.perf_counter(), time.process_time()
lost = 0 if ok else gw._engine.queued
gw.disconnect()
print(
    "RESULT "
    + json.dumps(
        {
            "messages": sent,
            "datapoints": sent * keys,
            "seconds": t1 - t0,
            "cpu_s": c1 - c0,
            "lost": lost,
            "backoffs": backoffs,
        }
    ),
    flush=True,
)
