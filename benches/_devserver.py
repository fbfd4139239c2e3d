"""The fleet suite's dev server, in a process of its own (``run.py --server devserver``).

Run with an interpreter where thingsboard_sdk is installed. Registers ``--devices`` devices whose
access tokens are the fleet senders' (``fleet-0``, ``fleet-1``, ...), prints
``READY <mqtt port> <seconds to register>`` once it listens, and runs until its stdin closes;
then it counts the distinct messages the devices stored (values of the senders' ``i`` key,
see ``_sender.message``) and prints ``STORED <count>``.

Design: the server and the clients live in separate processes, as they would in the field: a
process may hold at most 20,000 open files here, and 10,000 connections take 10,000 on each
side. Its soft open-files limit is raised to the hard one.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--worker-threads", type=int, default=1, help="dev server worker threads")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from thingsboard_sdk.devserver import DevServer

    server = DevServer("127.0.0.1", 0, worker_threads=args.worker_threads)
    t0 = time.monotonic()
    for d in range(args.devices):
        server.add_device(f"fleet-device-{d}", f"fleet-{d}")
    print(f"READY {server.port} {time.monotonic() - t0:.3f}", flush=True)
    try:
        sys.stdin.read()  # the runner closes stdin to stop us
    except KeyboardInterrupt:
        pass
    stored = sum(
        len({p.value for p in server.telemetry(f"fleet-device-{d}", "i")})
        for d in range(args.devices)
    )
    server.stop()
    print(f"STORED {stored}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
