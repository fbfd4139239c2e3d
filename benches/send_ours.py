"""thingsboard_sdk (this repository): the MicroPython SDK's API on the Rust engine.

Runs in the interpreter given by ``run.py --ours-python`` (a venv where ``pip install .`` of
this repository was done). ``send_telemetry`` returns at once; ``flush()`` waits for every PUBACK.
At ``--qos 0`` the client is made with ``quality_of_service=0``; a handle is done once written.
If the bounded outgoing queue is full, ``send_telemetry`` raises ``QueueFullError``: the sender
then backs off (``flush(timeout=0.002)``: a short wait while the engine keeps sending, not a full
drain) and retries, counting how often.
"""

from __future__ import annotations

import time

from _sender import Clock, message, parse_args, report


def main() -> None:
    def extra(p) -> None:
        p.add_argument(
            "--max-queued", type=int, default=None, help="max_queued_messages (default: SDK's)"
        )
        p.add_argument("--queue-dir", default=None, help="queue_dir: the durable queue's folder")

    args = parse_args(extra)
    n = args.messages

    import thingsboard_sdk
    from thingsboard_sdk.exceptions import QueueFullError
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    extras = {"max_inflight": args.window, "quality_of_service": args.qos}
    if args.max_queued is not None:
        extras["max_queued_messages"] = args.max_queued
    if args.queue_dir is not None:
        extras["queue_dir"] = args.queue_dir
    client = TBDeviceMqttClient(args.host, args.port, access_token=args.token, **extras)
    if client.connect() is None:
        raise SystemExit(f"thingsboard_sdk: connect failed: {client.last_error}")

    clock = Clock()
    clock.start()
    deadline = time.monotonic() + args.timeout
    queue_full = 0
    handles = []
    keep = handles.append
    send = client.send_telemetry
    for i in range(n):
        msg = message(i)
        while True:
            try:
                keep(send(msg))
                break
            except QueueFullError:
                queue_full += 1
                if time.monotonic() > deadline:
                    break
                client.flush(timeout=0.002)
        if time.monotonic() > deadline:
            break
    flushed = client.flush(timeout=max(0.0, deadline - time.monotonic()))
    if args.qos == 0 and handles:
        # QoS 0: done once written; they are written in order, so the last one is enough.
        flushed = handles[-1].wait(max(0.0, deadline - time.monotonic()))
    clock.stop()
    acked = sum(1 for h in handles if h.done)
    figures = dict(
        sent=len(handles),
        acked=acked,
        failed=n - acked,
        flushed=flushed,
        queue_full_retries=queue_full,
        window=args.window,
        qos=args.qos,
        max_queued=args.max_queued,
        version=getattr(thingsboard_sdk, "__version__", None),
    )
    # Reported before disconnect() too, so a hang there (killed by run.py) keeps the figures.
    report(clock, **figures)
    t = time.perf_counter()
    client.disconnect()
    report(clock, disconnect_s=time.perf_counter() - t, **figures)


if __name__ == "__main__":
    main()
