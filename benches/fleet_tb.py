"""Fleet, tb-mqtt-client: N ``TBDeviceMqttClient`` in one process, as its README connects one.

Each client is made and ``connect()``-ed in turn (``connect`` opens the TCP connection, sends
CONNECT and starts paho's network thread; every client also starts two threads of its own in
its constructor: three per device). The connect phase ends when every client reports
``is_connected()`` or at ``--connect-timeout``; a failure to make or connect a client (no more
threads, no more file descriptors) ends it too and is reported. The send loop calls
``send_telemetry`` once per device per second; acknowledgements are counted from the returned
``TBPublishInfo`` objects.
"""

from __future__ import annotations

import logging
import time

from _fleet import Fleet, fd_report, parse_args, socket_fd, start_one_by_one, ticks
from _sender import cpu_seconds, message


def main() -> None:
    args = parse_args()
    logging.getLogger("tb_connection").setLevel(logging.WARNING)
    from tb_device_mqtt import TBDeviceMqttClient, TBPublishInfo

    fleet = Fleet(args)
    n = args.devices
    st = start_one_by_one(
        fleet,
        lambda d: TBDeviceMqttClient(
            args.host, port=args.port, username=f"fleet-{d}", client_id=f"tb-{d}"
        ),
        lambda c: c.connect(),
    )
    clients, error, create_s = st.clients, st.error, st.create_s
    count = 0
    while error is None:
        count = sum(1 for c in clients if c.is_connected())
        if count >= n or time.monotonic() > st.deadline:
            break
        if time.monotonic() > st.next_report:
            st.next_report = time.monotonic() + 1
            fleet.progress("connecting", started=len(clients), connected=count)
        time.sleep(0.01)
    count = sum(1 for c in clients if c.is_connected())
    connect_s = time.monotonic() - st.t - create_s
    if count < n and error is None:
        error = f"{count}/{n} connected within {args.connect_timeout:.0f} s"
    fleet.out["fds"] = fd_report(
        [(c.is_connected(), socket_fd(c._client.socket())) for c in clients]
    )
    if not fleet.connected(count, create_s, connect_s, error):
        fleet.finish()

    results = []
    keep = results.append
    lag = 0.0
    c0 = cpu_seconds()
    first = time.monotonic()
    for k, late in ticks(args.duration):
        lag = max(lag, late)
        base = k * n
        for d, c in enumerate(clients):
            keep(c.send_telemetry(message(base + d)))
    deadline = time.monotonic() + args.ack_timeout
    acked = 0
    for res in results:
        infos = res.message_info if isinstance(res.message_info, list) else [res.message_info]
        ok = True
        for info in infos:
            if info.rc != TBPublishInfo.TB_ERR_SUCCESS:
                ok = False
                break
            left = deadline - time.monotonic()
            if left > 0:
                info.wait_for_publish(timeout=left)
            if not info.is_published():
                ok = False
                break
        acked += ok
    last = time.monotonic()
    fleet.sent(acked, len(results), first, last, cpu_seconds() - c0, lag)
    fleet.finish()


if __name__ == "__main__":
    main()
