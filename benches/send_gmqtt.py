"""gmqtt (PyPI): QoS 1 publish of the benchmark messages from one coroutine, then wait for
every PUBACK.

Runs in ``benches/.venvs/gmqtt``. gmqtt writes each publish at once and has no in-flight
window of its own, so the sender keeps at most ``--window`` unacknowledged (the window every
other client gets): when the window is full it waits on an event set by gmqtt's PUBACK
handling (its store's removal, wrapped), not on a timer. ``json.dumps`` per message; the end
is gmqtt's own "store empty" wait.
"""

from __future__ import annotations

import asyncio
import json

from _sender import TOPIC, Clock, message, parse_args, report


async def run(args) -> None:
    import gmqtt

    n = args.messages
    client = gmqtt.Client("bench-gmqtt")
    client.set_auth_credentials(args.token, None)
    await client.connect(args.host, args.port, version=gmqtt.constants.MQTTv311, keepalive=60)
    store = client._persistent_storage
    room = asyncio.Event()
    remove = store.remove_message_by_mid
    low = max(1, args.window // 2)

    def removed(mid):
        remove(mid)
        if len(store._messages) <= low:
            room.set()

    store.remove_message_by_mid = removed
    clock = Clock()
    clock.start()
    waits = 0
    for i in range(n):
        client.publish(TOPIC, json.dumps(message(i)), qos=args.qos)
        if args.qos and len(store._messages) >= args.window:
            waits += 1
            room.clear()
            await room.wait()
    if args.qos:
        try:
            await asyncio.wait_for(store.wait_empty(), args.timeout)
        except asyncio.TimeoutError:
            pass
    clock.stop()
    unacked = len(store._messages)
    report(
        clock,
        sent=n,
        acked=n - unacked,
        failed=unacked,
        waits=waits,
        window=args.window,
        version=getattr(gmqtt, "__version__", None),
    )
    await client.disconnect()


def main() -> None:
    args = parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
