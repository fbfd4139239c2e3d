"""Fleet, ours: N ``TBDeviceMqttClient`` in one process, ``connect_all``, a ``DeviceGroup`` loop.

Each device has its own token and client id. ``connect_all(clients)`` starts every attempt at
once (the engine caps how many are in progress) and returns once all are connected and
subscribed. The send loop sends one message per device per second; between ticks the process
sits in ``DeviceGroup.wait_for_msg`` (which would run the callbacks of any client). The
acknowledgements are counted from the returned handles after a ``flush`` of every client.
"""

from __future__ import annotations

import time

from _fleet import Fleet, parse_args, ticks
from _sender import cpu_seconds, message


def main() -> None:
    args = parse_args()
    import thingsboard_sdk
    from thingsboard_sdk.fleet import DeviceGroup, connect_all
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    fleet = Fleet(args)
    n = args.devices
    t = time.monotonic()
    clients = [
        TBDeviceMqttClient(args.host, args.port, access_token=f"fleet-{d}", client_id=f"ours-{d}")
        for d in range(n)
    ]
    create_s = time.monotonic() - t
    fleet.progress("created", create_s=create_s)
    t = time.monotonic()
    error = None
    try:
        count = connect_all(clients, timeout=args.connect_timeout)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        count, error = sum(1 for c in clients if c.connected), f"{type(e).__name__}: {e}"
    connect_s = time.monotonic() - t
    if count < n and error is None:
        errors = {}
        for c in clients:
            if not c.connected:
                key = str(c.last_error)[:120]
                errors[key] = errors.get(key, 0) + 1
        error = f"{count}/{n} connected within {args.connect_timeout:.0f} s; last_error: {errors}"
    group = DeviceGroup(clients)
    if not fleet.connected(count, create_s, connect_s, error):
        fleet.finish(version=getattr(thingsboard_sdk, "__version__", None))

    handles = []
    keep = handles.append
    lag = 0.0
    c0 = cpu_seconds()
    first = time.monotonic()
    for k, late in ticks(args.duration, lambda s: group.wait_for_msg(timeout=s)):
        lag = max(lag, late)
        base = k * n
        for d, c in enumerate(clients):
            keep(c.send_telemetry(message(base + d)))
    deadline = time.monotonic() + args.ack_timeout
    for c in clients:
        c.flush(timeout=max(0.001, deadline - time.monotonic()))
    last = time.monotonic()
    cpu = cpu_seconds() - c0
    acked = sum(1 for h in handles if h.done)
    fleet.sent(acked, len(handles), first, last, cpu, lag)
    fleet.finish(version=getattr(thingsboard_sdk, "__version__", None))


if __name__ == "__main__":
    main()
