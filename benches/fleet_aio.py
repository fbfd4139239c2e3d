"""Fleet, asyncio: N ``AsyncTBDeviceClient`` in one event loop.

Each device has its own token and client id. ``asyncio.gather`` of every ``connect()`` (the
engine keeps at most 100 attempts in progress); then one message per device per second, sent
from the loop, and ``flush()`` of every client. Same figures as ``fleet_ours.py`` (``_fleet``).
``--loop uvloop`` runs it under uvloop.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _fleet import Fleet, parse_args
from _sender import cpu_seconds, message


async def run(args, loop_name: str) -> None:
    import thingsboard_sdk
    from thingsboard_sdk.aio import AsyncTBDeviceClient

    fleet = Fleet(args)
    n = args.devices
    t = time.monotonic()
    clients = [
        AsyncTBDeviceClient(args.host, args.port, access_token=f"fleet-{d}", client_id=f"aio-{d}")
        for d in range(n)
    ]
    create_s = time.monotonic() - t
    fleet.progress("created", create_s=create_s)
    t = time.monotonic()
    outcomes = await asyncio.gather(
        *(c.connect(timeout=args.connect_timeout) for c in clients), return_exceptions=True
    )
    connect_s = time.monotonic() - t
    count = sum(1 for c in clients if c.connected)
    error = None
    if count < n:
        errors: dict = {}
        for o in outcomes:
            if isinstance(o, BaseException):
                key = f"{type(o).__name__}: {o}"[:120]
                errors[key] = errors.get(key, 0) + 1
        error = f"{count}/{n} connected within {args.connect_timeout:.0f} s: {errors}"
    version = getattr(thingsboard_sdk, "__version__", None)
    if not fleet.connected(count, create_s, connect_s, error):
        fleet.finish(version=version, loop=loop_name)

    handles = []
    keep = handles.append
    lag = 0.0
    c0 = cpu_seconds()
    first = time.monotonic()
    for k in range(int(args.duration)):
        due = first + k
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lag = max(lag, time.monotonic() - due)
        base = k * n
        for d, c in enumerate(clients):
            keep(await c.send_telemetry(message(base + d)))
    await asyncio.gather(*(c.flush(timeout=args.ack_timeout) for c in clients))
    last = time.monotonic()
    cpu = cpu_seconds() - c0
    acked = sum(1 for h in handles if h.done)
    fleet.sent(acked, len(handles), first, last, cpu, lag)
    fleet.finish(version=version, loop=loop_name)


def main() -> None:
    loop_name = "asyncio"
    if "--loop" in sys.argv:
        i = sys.argv.index("--loop")
        loop_name = sys.argv[i + 1]
        del sys.argv[i : i + 2]
    args = parse_args()
    if loop_name == "uvloop":
        import uvloop

        uvloop.run(run(args, loop_name))
    else:
        asyncio.run(run(args, loop_name))


if __name__ == "__main__":
    main()
