"""thingsboard_sdk.aio (this repository): ``await client.send_telemetry`` from one coroutine.

Runs in the interpreter given by ``aio.py --ours-python`` (a venv where this repository is
installed). ``await send_telemetry`` returns once the message is queued (it waits only while
``max_queued_messages`` are unacknowledged, never raises for that); ``await client.flush()``
then waits for every PUBACK. ``--loop uvloop`` runs it under uvloop.
"""

from __future__ import annotations

import asyncio

from _sender import Clock, message, parse_args, report


async def run(args) -> dict:
    import thingsboard_sdk
    from thingsboard_sdk.aio import AsyncTBDeviceClient

    n = args.messages
    client = AsyncTBDeviceClient(
        args.host,
        args.port,
        access_token=args.token,
        quality_of_service=args.qos,
        max_inflight=args.window,
    )
    await client.connect()
    clock = Clock()
    clock.start()
    send = client.send_telemetry
    last = None
    for i in range(n):
        last = await send(message(i))
    if args.qos == 1:
        flushed = await client.flush(timeout=args.timeout)
    else:
        flushed = await last.wait(args.timeout) if last is not None else True
    clock.stop()
    acked = n if flushed else n - client.queued
    figures = dict(
        sent=n,
        acked=acked,
        failed=n - acked,
        flushed=flushed,
        window=args.window,
        qos=args.qos,
        loop=args.loop,
        version=getattr(thingsboard_sdk, "__version__", None),
    )
    report(clock, **figures)
    await client.disconnect()
    return figures


def main() -> None:
    args = parse_args(
        lambda p: p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    )
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
