"""The durable queue (host extra ``queue_dir``): what a killed process accepted is sent by the next.

A child process streams numbered QoS 1 telemetry through ``faults.FaultProxy`` to mosquitto; the
proxy swallows the second half (a silent path), so those messages are stored but never
acknowledged; the child is killed with SIGKILL mid-stream. A second process with the same
``queue_dir`` and client id must deliver every number the first did not: 0 lost (duplicates are
allowed at QoS 1).
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
from conftest import TBPeer, _child_env, free_port
from faults import FaultProxy
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

TELEMETRY = "v1/devices/me/telemetry"

CHILD = textwrap.dedent(
    """
    import sys, time
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
    host, port, cid, qdir, first, last = sys.argv[1:7]
    c = TBDeviceMqttClient(host, int(port), access_token="t", client_id=cid, queue_dir=qdir)
    assert c.connect(timeout=10) == 0, c.last_error
    for i in range(int(first), int(last)):
        c.send_telemetry({"i": i})
        if i == int(first) + 99:
            assert c.flush(timeout=10), "the first 100 were not acknowledged"
            print("FLUSHED", flush=True)
            sys.stdin.readline()  # the parent makes the path silent
    print("SENT", flush=True)
    time.sleep(60)  # killed here
    """
)

NEXT = textwrap.dedent(
    """
    import sys
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
    host, port, cid, qdir = sys.argv[1:5]
    c = TBDeviceMqttClient(host, int(port), access_token="t", client_id=cid, queue_dir=qdir)
    print("QUEUED", c._engine.queued, flush=True)
    assert c.connect(timeout=10) == 0, c.last_error
    assert c.flush(timeout=30)
    c.disconnect()
    print("DONE", flush=True)
    """
)


def numbers(peer: TBPeer) -> list[int]:
    return [m.json()["i"] for m in peer.matching(TELEMETRY)]


def test_kill_9_mid_stream_then_a_new_process_sends_the_rest(
    restartable_broker, peer_factory, tmp_path
):
    b = restartable_broker
    peer = peer_factory(b, persistent=True)
    peer.wait_subscribed()
    proxy = FaultProxy(b.host, b.port)
    qdir = tmp_path / "queue"
    qdir.mkdir()
    cid = "dev-durable-" + uuid.uuid4().hex[:8]
    total = 1000
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, proxy.host, str(proxy.port), cid, str(qdir), "0", str(total)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        assert child.stdout.readline().strip() == "FLUSHED", child.stderr.read()
        proxy.blackhole()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "SENT", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        proxy.reset()  # what the killed process left in flight is dropped, not delivered late
        proxy.restore()
        assert set(numbers(peer)) >= set(range(100))
        assert not set(numbers(peer)) >= set(range(total)), "nothing was left to resend"
        nxt = subprocess.run(
            [sys.executable, "-c", NEXT, b.host, str(b.port), cid, str(qdir)],
            capture_output=True,
            text=True,
            env=_child_env(),
            timeout=60,
        )
        assert nxt.returncode == 0, nxt.stderr[-2000:]
        queued = int(nxt.stdout.split("QUEUED")[1].split()[0])
        assert queued >= 1, nxt.stdout
        peer.wait_for_predicate(lambda _m: set(numbers(peer)) >= set(range(total)), timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        proxy.close()
    counts = collections.Counter(numbers(peer))
    lost = sorted(set(range(total)) - set(counts))
    dups = sum(c - 1 for c in counts.values() if c > 1)
    print(f"\nkill -9: {queued} restored by the next process, lost {len(lost)}, duplicates {dups}")
    assert lost == []


def test_acknowledged_messages_leave_the_queue(broker, tmp_path):
    """A clean run leaves nothing behind: a new client on the folder has nothing to send."""
    cid = "dev-clean-" + uuid.uuid4().hex[:8]
    c = TBDeviceMqttClient(
        broker.host, broker.port, access_token="t", client_id=cid, queue_dir=tmp_path
    )
    assert c.connect() == 0
    for i in range(50):
        c.send_telemetry({"i": i})
    assert c.flush(timeout=10)
    c.disconnect()
    again = TBDeviceMqttClient(
        broker.host, broker.port, access_token="t", client_id=cid, queue_dir=tmp_path
    )
    assert again._engine.queued == 0


def test_unwritable_or_missing_queue_dir_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="queue_dir .*not an existing folder"):
        TBDeviceMqttClient("127.0.0.1", 1883, access_token="t", queue_dir=tmp_path / "nope")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root writes anywhere but in /proc
    unwritable = ro if not os.access(ro, os.W_OK) else "/proc"
    try:
        with pytest.raises(OSError, match="queue_dir .*cannot open the queue"):
            TBDeviceMqttClient("127.0.0.1", 1883, access_token="t", queue_dir=unwritable)
    finally:
        ro.chmod(0o700)


HOLDER = textwrap.dedent(
    """
    import sys
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
    c = TBDeviceMqttClient("127.0.0.1", 1, access_token="t", client_id=sys.argv[1],
                           queue_dir=sys.argv[2])
    print("HOLDING", flush=True)
    sys.stdin.readline()
    c.disconnect()
    print("RELEASED", flush=True)
    sys.stdin.readline()
    """
)


def test_a_queue_held_by_another_process_is_a_clear_error(tmp_path):
    """One writer per client's queue: a second process gets an OSError naming folder and client."""
    cid = "dev-held-" + uuid.uuid4().hex[:8]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, cid, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "HOLDING", holder.stderr.read()
        with pytest.raises(
            OSError, match=f"queue_dir {re.escape(str(tmp_path))}.*{cid}.*in use by another process"
        ):
            TBDeviceMqttClient("127.0.0.1", 1, access_token="t", client_id=cid, queue_dir=tmp_path)
        # Another client id shares the folder.
        other = TBDeviceMqttClient(
            "127.0.0.1", 1, access_token="t", client_id=cid + "-b", queue_dir=tmp_path
        )
        other.disconnect()
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "RELEASED", holder.stderr.read()
        again = TBDeviceMqttClient(
            "127.0.0.1", 1, access_token="t", client_id=cid, queue_dir=tmp_path
        )
        assert again._engine.queued == 0
        again.disconnect()
    finally:
        holder.kill()
        holder.wait(10)


EXITING = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.WARNING)
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient
    port, cid, qdir = sys.argv[1:4]
    c = TBDeviceMqttClient("127.0.0.1", int(port), access_token="t", client_id=cid,
                           queue_dir=qdir)
    assert c.connect(timeout=1) is None  # nothing listens there
    for i in range(3):
        c.send_telemetry({"i": i})
    """
)


def test_exit_warning_says_the_queue_dir_keeps_the_messages(tmp_path):
    # Without queue_dir the exit warning says the messages are lost; with it they are not.
    port = free_port()
    cid = "dev-exit-" + uuid.uuid4().hex[:8]
    child = subprocess.run(
        [sys.executable, "-c", EXITING, str(port), cid, str(tmp_path)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=60,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    kept = (
        rf"exiting with 3 message\(s\) .*; 3 \(QoS 1\) stay in queue_dir {re.escape(str(tmp_path))}"
    )
    assert re.search(kept, child.stderr), child.stderr[-2000:]
    again = TBDeviceMqttClient(
        "127.0.0.1", port, access_token="t", client_id=cid, queue_dir=tmp_path
    )
    assert again._engine.queued == 3
    again.disconnect()
