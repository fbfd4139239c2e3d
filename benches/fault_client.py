"""One device of the fault benchmark (``benches/faults.py``): QoS 1 telemetry at a fixed rate.

Runs in the venv of the client under test (standard library plus that client):

    python fault_client.py --kind ours|paho|tb --port P --rate 20 --seconds 22 [--keepalive 5]

Connects as a user of that client would (its defaults unless ``--keepalive`` is given), prints
``START <time.monotonic()>`` on stdout, then sends ``{"seq": n, "ts": <time.monotonic()>}`` to
``v1/devices/me/telemetry`` at ``--rate`` messages a second on a fixed schedule (a send that
blocks makes the next ones late; none is skipped), waits up to ``--drain`` seconds for the
client to report everything acknowledged, and prints ``RESULT {json}``: ``accepted`` (the
sequence numbers the client took without an error: the ones that must arrive), the refusals
by error, and how many the client itself reported acknowledged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TOPIC = "v1/devices/me/telemetry"


def message(n: int) -> dict:
    return {"seq": n, "ts": time.monotonic()}


def wait_published(infos: list, timeout: float) -> int:
    """Waits until paho reports every message acknowledged; returns how many are.

    Reads ``MQTTMessageInfo._published``: ``is_published()`` and ``wait_for_publish()`` raise
    for a message published while disconnected (its rc stays "not connected") even after paho
    has sent it and had it acknowledged following the reconnect.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(i._published for i in infos):
            break
        time.sleep(0.05)
    return sum(1 for i in infos if i._published)


class Ours:
    """thingsboard_sdk, the MicroPython API: connect(), send_telemetry(), flush()."""

    def __init__(self, args) -> None:
        from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

        extra = {"keepalive": args.keepalive} if args.keepalive else {}
        self.c = TBDeviceMqttClient(
            args.host, args.port, access_token=args.token, client_id=args.client_id, **extra
        )
        if self.c.connect(timeout=10) != 0:
            raise SystemExit(f"ours: connect() failed: {self.c.last_error}")
        self.handles = []

    def send(self, n: int) -> None:
        self.handles.append(self.c.send_telemetry(message(n)))

    def drain(self, timeout: float) -> int:
        self.c.flush(timeout=timeout)
        return sum(1 for h in self.handles if h.done)

    def close(self) -> None:
        self.c.disconnect()


class Paho:
    """paho-mqtt 2.x as its docs show: connect(), loop_start(), publish(qos=1)."""

    def __init__(self, args) -> None:
        import paho.mqtt.client as mqtt

        self.mqtt = mqtt
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=mqtt.MQTTv311
        )
        self.c.username_pw_set(args.token)
        self.c.connect(
            args.host, args.port, **({"keepalive": args.keepalive} if args.keepalive else {})
        )
        self.c.loop_start()
        deadline = time.monotonic() + 10
        while not self.c.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit("paho: not connected within 10 s")
            time.sleep(0.01)
        self.infos = []

    def send(self, n: int) -> None:
        info = self.c.publish(TOPIC, json.dumps(message(n)), qos=1)
        # While disconnected paho 2.x keeps a QoS 1 message queued (rc MQTT_ERR_NO_CONN) and
        # sends it after reconnecting: accepted.
        if info.rc not in (self.mqtt.MQTT_ERR_SUCCESS, self.mqtt.MQTT_ERR_NO_CONN):
            raise OSError(f"publish rc {info.rc}")
        self.infos.append(info)

    def drain(self, timeout: float) -> int:
        return wait_published(self.infos, timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Tb:
    """tb-mqtt-client 1.x as its README shows: connect(), send_telemetry()."""

    def __init__(self, args) -> None:
        from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

        # As for paho (which it wraps): while disconnected a QoS 1 message is queued and sent
        # after reconnecting (rc "not connected"): accepted.
        self.ok = (TBPublishInfo.TB_ERR_SUCCESS, TBPublishInfo.TB_ERR_NO_CONN)
        self.c = TBDeviceMqttClient(
            args.host, port=args.port, username=args.token, quality_of_service=1
        )
        self.c.connect(**({"keepalive": args.keepalive} if args.keepalive else {}))
        deadline = time.monotonic() + 10
        while not self.c.is_connected():
            if time.monotonic() > deadline:
                raise SystemExit("tb-mqtt-client: not connected within 10 s")
            time.sleep(0.01)
        self.results = []

    def send(self, n: int) -> None:
        res = self.c.send_telemetry(message(n))
        if res.rc() not in self.ok:
            raise OSError(f"send_telemetry rc {res.rc()}")
        self.results.append(res)

    def drain(self, timeout: float) -> int:
        infos = []
        for res in self.results:
            m = res.message_info
            infos.extend(m if isinstance(m, list) else [m])
        return wait_published(infos, timeout)

    def close(self) -> None:
        self.c.stop()
        self.c.disconnect()


KINDS = {"ours": Ours, "paho": Paho, "tb": Tb}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=list(KINDS), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", default="fault-bench")
    p.add_argument("--client-id", default="fault-bench-device")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=22.0)
    p.add_argument("--keepalive", type=int, default=0, help="0: the client's default")
    p.add_argument("--drain", type=float, default=30.0)
    args = p.parse_args()

    client = KINDS[args.kind](args)
    accepted: list[int] = []
    refused: dict[str, int] = {}
    worst = 0.0
    total = int(args.rate * args.seconds)
    start = time.monotonic()
    print(f"START {start}", flush=True)
    for n in range(total):
        left = start + n / args.rate - time.monotonic()
        if left > 0:
            time.sleep(left)
        t = time.monotonic()
        try:
            client.send(n)
            accepted.append(n)
        except Exception as exc:  # noqa: BLE001 - every refusal is counted by its kind
            key = f"{type(exc).__name__}: {str(exc)[:60]}"
            refused[key] = refused.get(key, 0) + 1
        worst = max(worst, time.monotonic() - t)
    sent_for = time.monotonic() - start
    acked = client.drain(args.drain)
    client.close()
    result = {
        "kind": args.kind,
        "accepted": accepted,
        "refused": refused,
        "acked_by_client": acked,
        "send_seconds": sent_for,
        "worst_send_call": worst,
    }
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
