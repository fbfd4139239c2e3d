"""tb-mqtt-client (pip), used as its README shows: connect, send_telemetry, wait on the results.

Runs in ``benches/.venvs/tb``: tb-mqtt-client depends on tb-paho-mqtt-client, a paho fork that
installs over ``paho``. Its own defaults are kept (MQTT 5, in-flight and queue limits from the
CONNACK, no TCP_NODELAY); it wraps a dict in a one-element list, so the payload on the wire is
``[{"temperature":25.5,"humidity":60,"i":n}]``.

Delivery: ``send_telemetry`` returns a ``TBPublishInfo`` wrapping paho ``MQTTMessageInfo``
objects; a message counts as acknowledged when its info reports ``is_published()`` with rc 0.
When paho refuses a publish with ``MQTT_ERR_QUEUE_SIZE`` (its 16-bit message ids are all in
use: 65,535 unacknowledged messages), tb-mqtt-client itself sleeps 0.1 s and retries inside
``send_telemetry`` rather than dropping; a thin counting wrapper around paho's ``publish``
reports how often (``queue_full_retries``). Its logger is kept at INFO (DEBUG would cost CPU)
and its INFO/WARNING records are counted.
"""

from __future__ import annotations

import logging
import time

from _sender import Clock, message, parse_args, report


class _Counter(logging.Handler):
    """Counts tb-mqtt-client's log records, to surface what it does not return."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_text: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelname}: {str(record.msg)[:80]}"
        self.by_text[key] = self.by_text.get(key, 0) + 1


def main() -> None:
    args = parse_args()
    n = args.messages
    counter = _Counter()
    tb_log = logging.getLogger("tb_connection")
    tb_log.addHandler(counter)
    tb_log.setLevel(logging.INFO)
    tb_log.propagate = False

    from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

    client = TBDeviceMqttClient(
        args.host, port=args.port, username=args.token, quality_of_service=args.qos
    )
    client.connect()
    deadline = time.monotonic() + 10
    while not client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not client.is_connected():
        raise SystemExit("tb-mqtt-client: not connected within 10 s")
    paho_client = client._client  # read for the report; publish wrapped to count refusals
    queue_full = 0
    paho_publish = paho_client.publish

    def counting_publish(*a, **kw):
        nonlocal queue_full
        info = paho_publish(*a, **kw)
        if info.rc == TBPublishInfo.TB_ERR_QUEUE_SIZE:
            queue_full += 1
        return info

    paho_client.publish = counting_publish
    limits = {
        "max_inflight": paho_client._max_inflight_messages,
        "max_queued": paho_client._max_queued_messages,
    }

    clock = Clock()
    clock.start()
    results = []
    deadline = time.monotonic() + args.timeout
    for i in range(n):
        results.append(client.send_telemetry(message(i)))
        if time.monotonic() > deadline:
            break
    sent = len(results)
    acked = failed_rc = unacked = 0
    for res in results:
        infos = res.message_info if isinstance(res.message_info, list) else [res.message_info]
        for info in infos:
            if info.rc != TBPublishInfo.TB_ERR_SUCCESS:
                failed_rc += 1
                break
            remaining = deadline - time.monotonic()
            if remaining > 0:
                info.wait_for_publish(timeout=remaining)
            if not info.is_published():
                unacked += 1
                break
        else:
            acked += 1
    clock.stop()
    limits_after = {
        "max_inflight": paho_client._max_inflight_messages,
        "max_queued": paho_client._max_queued_messages,
    }
    client.stop()
    client.disconnect()
    report(
        clock,
        sent=sent,
        acked=acked,
        failed=n - acked,
        rc_errors=failed_rc,
        queue_full_retries=queue_full,
        unacked_at_end=unacked,
        limits_at_start=limits,
        limits_at_end=limits_after,
        log_counts=counter.by_text,
        qos=args.qos,
    )


if __name__ == "__main__":
    main()
