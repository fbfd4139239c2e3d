"""aiomqtt (PyPI): ``await client.publish(..., qos=1)`` from one coroutine.

Runs in ``benches/.venvs/aiomqtt``. aiomqtt's publish returns once the broker acknowledged the
message, so the idiomatic loop has one message in flight; ``--window`` publishes run as
concurrent tasks instead (``--window 1``: the plain loop). ``json.dumps`` per message.
"""

from __future__ import annotations

import asyncio
import json

from _sender import TOPIC, Clock, message, parse_args, report


async def run(args) -> None:
    import aiomqtt

    n = args.messages
    async with aiomqtt.Client(
        args.host,
        args.port,
        username=args.token,
        identifier="bench-aiomqtt",
        max_inflight_messages=args.window,
    ) as client:
        clock = Clock()
        clock.start()
        acked = 0
        sem = asyncio.Semaphore(args.window)

        async def one(i: int) -> None:
            nonlocal acked
            try:
                await client.publish(TOPIC, json.dumps(message(i)), qos=args.qos)
                acked += 1
            finally:
                sem.release()

        tasks = set()
        for i in range(n):
            await sem.acquire()
            t = asyncio.ensure_future(one(i))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), args.timeout)
        clock.stop()
        report(clock, sent=n, acked=acked, failed=n - acked, window=args.window)


def main() -> None:
    args = parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
