"""tb-mqtt-client 2.0 (branch ``develop-2.0``, asyncio): the benchmark's calls from one coroutine.

Runs in ``benches/.venvs/tb2`` (Python >= 3.12, its source on ``sys.path`` through a ``.pth``
file; see ``aio.py --tb2-source``). It needs a ``getSessionLimits`` answer before it sends any
telemetry: the runner starts ``session_limits.py`` on the same broker first.

``--mode telemetry``: ``--messages`` calls of ``send_timeseries({"temperature", "humidity",
"i"})``, the message every other sender sends. ``--mode datapoints``: ``--messages`` calls of
``send_timeseries([{"ts", "values"}, ...])`` with ``--entries`` entries of ``--keys`` keys,
every entry with its own ``ts`` (as ``send_dp_aio.py``).

Each call is made with ``wait_for_publish=False`` and followed by ``await asyncio.sleep(0)``, as
its own load example does (``--no-yield`` leaves that out: its send path never suspends, and its
queue is a bounded deque that silently drops the oldest calls once 10,000 wait, so without the
yield most calls are lost with futures that never resolve). The calls return delivery futures;
the clock stops
once every future has resolved (bounded by ``--timeout``). What this script reports is the
client's own account: ``acked`` counts calls whose every future resolved to a successful
``PublishResult``, ``failed`` the rest (unsuccessful, raised, or still pending at the deadline).
The client stamps a call without ``ts`` with the current millisecond, merges queued calls and
keeps one value per key and ``ts`` (calls in the same millisecond overwrite each other), so a
successful future does not mean the call's datapoints reached the broker: the runner counts
what arrived with ``dp_subscriber.py --per-key``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from _sender import Clock, message, parse_args, report

BASE_TS = 1_700_000_000_000


def _futures(ret) -> list:
    """The delivery futures of one ``send_timeseries(..., wait_for_publish=False)`` call."""
    if ret is None:
        return []
    if isinstance(ret, (list, tuple)):
        out = []
        for r in ret:
            out += _futures(r)
        return out
    return [ret]


def _ok(fut) -> bool:
    if not fut.done() or fut.cancelled() or fut.exception() is not None:
        return False
    res = fut.result()
    return bool(getattr(res, "is_successful", lambda: False)())


async def run(args) -> None:
    # Imported here: the package installs uvloop's policy and an exception handler on import,
    # which needs a running loop.
    from tb_mqtt_client.common.config_loader import DeviceConfig
    from tb_mqtt_client.service.device.client import DeviceClient

    logging.getLogger("tb_mqtt_client").setLevel(logging.WARNING)
    config = DeviceConfig()
    config.host, config.port, config.access_token, config.qos = (
        args.host,
        args.port,
        args.token,
        args.qos,
    )
    client = DeviceClient(config)
    # The client waits for the getSessionLimits answer inside connect().
    await asyncio.wait_for(client.connect(), args.timeout)
    keys = [f"k{j}" for j in range(args.keys)]
    e = args.entries
    n = args.messages
    per_call = 3 if args.mode == "telemetry" else e * args.keys
    calls: list[list] = []
    clock = Clock()
    clock.start()
    send = client.send_timeseries
    for i in range(n):
        if args.mode == "telemetry":
            data = message(i)
        else:
            values = dict(zip(keys, [i + 0.5] * args.keys))
            data = [{"ts": BASE_TS + i * e + b, "values": dict(values)} for b in range(e)]
        calls.append(_futures(await send(data, wait_for_publish=False)))
        if not args.no_yield:
            await asyncio.sleep(0)
    submit_s = time.perf_counter() - clock.t0  # every call returned (queued, not delivered)
    pending = [f for fs in calls for f in fs if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=args.timeout)
    clock.stop()
    acked = sum(1 for fs in calls if fs and all(_ok(f) for f in fs))
    futures = [f for fs in calls for f in fs]
    report(
        clock,
        sent=n,
        acked=acked,
        failed=n - acked,
        submit_s=submit_s,
        futures=len(futures),
        futures_pending=sum(1 for f in futures if not f.done()),
        datapoints=n * per_call,
        yielded=not args.no_yield,
        mode=args.mode,
        entries=e,
        keys=args.keys,
        version="2.0 (develop-2.0)",
    )
    await client.stop()


def main() -> None:
    def extra(p) -> None:
        p.add_argument("--mode", choices=("telemetry", "datapoints"), default="telemetry")
        p.add_argument("--entries", type=int, default=40, help="ts/values entries per call")
        p.add_argument("--keys", type=int, default=100, help="datapoints per entry")
        p.add_argument(
            "--no-yield",
            action="store_true",
            help="do not yield to the loop after each call (its queue then drops calls)",
        )

    args = parse_args(extra)
    for name in [k for k in os.environ if k.startswith("TB_")]:
        del os.environ[name]  # DeviceConfig lets TB_HOST, TB_PORT, ... override its fields
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
