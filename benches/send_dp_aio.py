"""Batched telemetry from one coroutine: datapoints per second, every one counted.

Each message is a list of ``--entries`` ``{"ts", "values"}`` entries of ``--keys`` datapoints
each; every entry has its own ``ts`` (``dp_subscriber.py`` counts datapoints per distinct
``ts``), the values differ per message. Nothing is merged or dropped: ``send_telemetry`` gets
every datapoint the subscriber counts. Prints ``RESULT`` with ``datapoints`` and timings.
"""

from __future__ import annotations

import asyncio

from _sender import Clock, parse_args, report

BASE_TS = 1_700_000_000_000


async def run(args) -> None:
    from thingsboard_sdk.aio import AsyncTBDeviceClient

    keys = [f"k{j}" for j in range(args.keys)]
    client = AsyncTBDeviceClient(
        args.host, args.port, access_token=args.token, max_inflight=args.window
    )
    await client.connect()
    clock = Clock()
    clock.start()
    send = client.send_telemetry
    e = args.entries
    for i in range(args.messages):
        values = dict(zip(keys, [i + 0.5] * args.keys))
        await send([{"ts": BASE_TS + i * e + b, "values": values} for b in range(e)])
    flushed = await client.flush(timeout=args.timeout)
    clock.stop()
    n = args.messages
    acked = n if flushed else n - client.queued
    report(
        clock,
        sent=n,
        acked=acked,
        failed=n - acked,
        datapoints=n * e * args.keys,
        entries=e,
        keys=args.keys,
    )
    await client.disconnect()


def main() -> None:
    def extra(p) -> None:
        p.add_argument("--entries", type=int, default=10, help="ts/values entries per message")
        p.add_argument("--keys", type=int, default=100, help="datapoints per entry")

    args = parse_args(extra)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
