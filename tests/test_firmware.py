"""Firmware updates over the air (api-contract 4, thingsboard-mqtt 11) against a scripted
ThingsBoard peer on mosquitto: the peer serves chunks as ThingsBoard's transport does (the
size given in a request is remembered per request id, an empty payload reuses it, neither
means the whole file), and the tests check the bytes on disk, the ``fw_state`` telemetry and
the chunk requests the device made."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from conftest import Msg, TBPeer, pump_until
from faults import FaultProxy

CHUNK_REQUEST = re.compile(r"v2/fw/request/(\d+)/chunk/(\d+)")
MIB = 1024 * 1024


def image(size: int, seed: int = 7) -> bytes:
    """Deterministic, incompressible-looking test image."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def checksum(algorithm: str, data: bytes) -> str:
    """The checksum as ThingsBoard writes it (spec 11.1: Guava's byte order)."""
    if algorithm in ("MD5", "SHA256", "SHA384", "SHA512"):
        return hashlib.new(algorithm.lower(), data).hexdigest()
    if algorithm == "CRC32":
        return (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "little").hex()
    mmh3 = pytest.importorskip("mmh3")
    if algorithm == "MURMUR3_32":
        return mmh3.hash(data, 0, signed=False).to_bytes(4, "little").hex()
    if algorithm == "MURMUR3_128":
        return mmh3.hash_bytes(data, 0).hex()
    raise ValueError(algorithm)


class FirmwareServer:
    """Serves one image on ``v2/fw/request/{r}/chunk/{i}`` through the peer (spec 11.2)."""

    def __init__(self, peer: TBPeer, data: bytes):
        self.peer = peer
        self.data = data
        self.sizes: dict[str, int] = {}
        self.requests: list[tuple[int, int, bytes]] = []
        self.corrupt_index: Optional[int] = None
        self.silent = False
        self.on_request: Optional[Callable[[int], None]] = None
        self.lock = threading.Lock()
        peer.respond(self._respond)

    def _respond(self, msg: Msg) -> Any:
        m = CHUNK_REQUEST.fullmatch(msg.topic)
        if not m:
            return None
        req, index = m.group(1), int(m.group(2))
        with self.lock:
            self.requests.append((int(req), index, msg.payload))
            if msg.payload:
                self.sizes[req] = int(msg.payload)
            size = self.sizes.get(req, 0)
        if self.on_request is not None:
            self.on_request(index)
        if self.silent:
            return None
        if size == 0:
            chunk = self.data if index == 0 else b""
        else:
            chunk = self.data[index * size : index * size + size]
        if index == self.corrupt_index and chunk:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        return [(f"v2/fw/response/{req}/chunk/{index}", chunk)]

    def offer(self, title: str, version: str, algorithm: str = "SHA256", **extra: Any) -> dict:
        attrs = {
            "fw_title": title,
            "fw_version": version,
            "fw_size": len(self.data),
            "fw_checksum": checksum(algorithm, self.data),
            "fw_checksum_algorithm": algorithm,
        }
        attrs.update(extra)
        self.peer.push_attributes(attrs)
        return attrs


def fw_states(peer: TBPeer, since: int = 0) -> list[dict]:
    out = []
    for m in peer.matching(lambda m: m.topic == "v1/devices/me/telemetry", since):
        body = m.json()
        if isinstance(body, dict) and "fw_state" in body:
            out.append(body)
    return out


def wait_state(client: Any, peer: TBPeer, state: str, timeout: float = 30.0) -> list[dict]:
    """Pumps ``client`` until a ``fw_state`` of ``state`` arrived; returns every report."""

    def reached() -> Optional[list[dict]]:
        states = fw_states(peer)
        return states if any(s["fw_state"] == state for s in states) else None

    return pump_until(client, reached, timeout, f"fw_state {state}")


@pytest.fixture
def updates() -> list:
    return []


@pytest.fixture
def fw_client(make_client, tb_peer, tmp_path, updates):
    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("firmware_dir", str(tmp_path))
        kwargs.setdefault("on_firmware_update", lambda path, info: updates.append((path, info)))
        return make_client(**kwargs)

    return make


@pytest.mark.parametrize("chunk_size", [0, 4096, 65536])
def test_one_mib_image_is_downloaded_verified_and_saved(
    fw_client, tb_peer, tmp_path, updates, chunk_size
):
    data = image(MIB)
    server = FirmwareServer(tb_peer, data)
    progress: list[tuple[int, int]] = []
    client = fw_client(
        chunk_size=chunk_size, on_firmware_progress=lambda r, t: progress.append((r, t))
    )
    offer = server.offer("lamp.bin", "1.1")

    states = wait_state(client, tb_peer, "UPDATED")
    assert [s["fw_state"] for s in states] == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATED"]
    assert states[0] == {
        "current_fw_title": "Initial",
        "current_fw_version": "v0",
        "fw_state": "DOWNLOADING",
    }
    assert states[-1] == {
        "current_fw_title": "lamp.bin",
        "current_fw_version": "1.1",
        "fw_state": "UPDATED",
    }
    target = tmp_path / "lamp.bin"
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lamp.bin"]  # no .part left
    pump_until(client, lambda: updates, 5, "the update callback")
    path, info = updates[0]
    assert Path(path) == target
    assert info["fw_checksum"] == offer["fw_checksum"] and info["fw_size"] == MIB
    assert client.current_firmware_info == {
        "current_fw_title": "lamp.bin",
        "current_fw_version": "1.1",
        "fw_state": "UPDATED",
    }
    assert progress and progress[-1] == (MIB, MIB)

    # Chunks: one request id, indices 0..n-1 in order, sizes capped at 64 KiB (spec 11.2).
    effective = chunk_size or 65536
    n = MIB // effective
    assert [r[1] for r in server.requests] == list(range(n))
    assert len({r[0] for r in server.requests}) == 1
    assert server.requests[0][2] == str(effective).encode()


@pytest.mark.parametrize(
    "algorithm", ["MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128"]
)
def test_every_checksum_algorithm_verifies(fw_client, tb_peer, tmp_path, algorithm):
    data = image(50_001, seed=len(algorithm))
    server = FirmwareServer(tb_peer, data)
    client = fw_client(chunk_size=8192)
    server.offer("img", "2", algorithm)
    wait_state(client, tb_peer, "UPDATED")
    assert (tmp_path / "img").read_bytes() == data


def test_corrupted_chunk_fails_once_without_retry(fw_client, tb_peer, tmp_path, updates):
    data = image(40_000)
    server = FirmwareServer(tb_peer, data)
    server.corrupt_index = 3
    client = fw_client(chunk_size=4096)
    server.offer("bad.bin", "9")
    states = wait_state(client, tb_peer, "FAILED")
    assert [s["fw_state"] for s in states] == ["DOWNLOADING", "DOWNLOADED", "FAILED"]
    assert "checksum" in states[-1]["fw_error"].lower()
    requests_at_failure = len(server.requests)
    tb_peer.barrier(client)  # anything the device queued after FAILED has arrived now
    assert len(server.requests) == requests_at_failure == 10
    assert len([s for s in fw_states(tb_peer) if s["fw_state"] == "FAILED"]) == 1
    assert list(tmp_path.iterdir()) == []
    assert updates == []
    assert client.current_firmware_info["current_fw_version"] == "v0"
    # The FAILED report is published from the firmware worker; the client's own view follows
    # once the polling thread has taken the event.
    pump_until(
        client,
        lambda: client.current_firmware_info.get("fw_state") == "FAILED",
        10,
        "current_firmware_info fw_state FAILED",
    )
    assert client.current_firmware_info["current_fw_version"] == "v0"


@pytest.mark.parametrize("title", ["../escape.bin", "/tmp/abs.bin", "sub/dir.bin", ".."])
def test_hostile_title_fails_and_writes_nothing(fw_client, tb_peer, tmp_path, title):
    server = FirmwareServer(tb_peer, image(1000))
    client = fw_client()
    before = set(os.listdir(tmp_path.parent))
    server.offer(title, "1")
    states = wait_state(client, tb_peer, "FAILED")
    assert "file name" in states[-1]["fw_error"]
    assert server.requests == []
    assert list(tmp_path.iterdir()) == []
    assert set(os.listdir(tmp_path.parent)) == before
    # The client keeps working.
    assert client.send_telemetry({"after": 1}).wait(5)


def test_offer_without_size_or_checksum_is_failed_not_a_crash(fw_client, tb_peer):
    client = fw_client()
    tb_peer.push_attributes({"fw_title": "x.bin", "fw_version": "3"})
    states = wait_state(client, tb_peer, "FAILED")
    assert "fw_size" in states[-1]["fw_error"] and "fw_checksum" in states[-1]["fw_error"]
    assert client.connected


def test_bad_size_fails_with_the_value_as_sent_logged_once(fw_client, tb_peer, caplog):
    caplog.set_level(logging.WARNING)
    client = fw_client()
    tb_peer.push_attributes(
        {
            "fw_title": "x.bin",
            "fw_version": "3",
            "fw_size": -5,
            "fw_checksum": "ab",
            "fw_checksum_algorithm": "MD5",
        }
    )
    states = wait_state(client, tb_peer, "FAILED")
    error = "fw_size must be a whole number of bytes, got -5"
    assert states[-1]["fw_error"] == error
    pump_until(
        client,
        lambda: client.current_firmware_info.get("fw_state") == "FAILED",
        10,
        "current_firmware_info fw_state FAILED",
    )
    logged = [r for r in caplog.records if error in r.getMessage()]
    assert [(r.name, r.levelno) for r in logged] == [("thingsboard_sdk.firmware", logging.WARNING)]
    assert client.connected


def test_same_firmware_as_current_is_not_downloaded(fw_client, tb_peer, tmp_path):
    server = FirmwareServer(tb_peer, image(1000))
    client = fw_client()
    client.current_firmware_info = {"current_fw_title": "lamp", "current_fw_version": "1.0"}
    client.check_for_msg()  # the declared firmware reaches the engine on the next call
    mark = tb_peer.mark()
    server.offer("lamp", "1.0")
    tb_peer.barrier(client)
    client.check_for_msg()
    tb_peer.barrier(client)
    assert fw_states(tb_peer, mark) == [] and server.requests == []


def test_chunk_that_never_comes_times_out_into_failed(fw_client, tb_peer, tmp_path):
    server = FirmwareServer(tb_peer, image(10_000))
    server.silent = True
    client = fw_client(chunk_size=4096, firmware_chunk_timeout=0.5)
    server.offer("slow.bin", "1")
    states = wait_state(client, tb_peer, "FAILED", timeout=15)
    assert "did not arrive within 500 ms" in states[-1]["fw_error"]
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_firmware_updates_off_ignores_offers(fw_client, tb_peer, tmp_path):
    server = FirmwareServer(tb_peer, image(1000))
    client = fw_client(firmware_updates=False)
    mark = tb_peer.mark()
    server.offer("off.bin", "1")
    client.check_for_msg()
    tb_peer.barrier(client)
    assert server.requests == [] and fw_states(tb_peer, mark) == []


def test_link_drop_mid_download_resumes_from_next_missing_chunk(
    restartable_broker, peer_factory, make_client, tmp_path, updates
):
    peer = peer_factory(restartable_broker)
    proxy = FaultProxy(restartable_broker.host, restartable_broker.port)
    try:
        data = image(64 * 4096 + 123)
        server = FirmwareServer(peer, data)
        dropped = threading.Event()

        def drop_at(index: int) -> None:
            if index == 20 and not dropped.is_set():
                dropped.set()
                proxy.reset()

        server.on_request = drop_at
        client = make_client(
            host=proxy.host,
            port=proxy.port,
            chunk_size=4096,
            firmware_dir=str(tmp_path),
            reconnect_min_delay=0.05,
            on_firmware_update=lambda p, i: updates.append(p),
        )
        peer.wait_subscribed()
        server.offer("resume.bin", "2")

        def done() -> bool:
            try:
                client.wait_for_msg(timeout=0.2)
            except OSError:
                pass  # down while the proxy reset the link; it reconnects by itself
            return bool(updates)

        pump_until(_NoWait(), done, 30, "the download to finish after the drop")
        assert dropped.is_set()
        assert (tmp_path / "resume.bin").read_bytes() == data
        indices = [r[1] for r in server.requests]
        # Every index at least once, in order; after the drop it starts again at the first
        # chunk that did not arrive (the one in flight may be asked for again), never at 0.
        assert sorted(set(indices)) == list(range(65))
        assert indices.count(0) == 1
        assert all(b >= a for a, b in zip(indices, indices[1:])), indices
        assert len(indices) - 65 <= 1
    finally:
        proxy.close()


class _NoWait:
    """A pump target for loops whose predicate does its own waiting."""

    def wait_for_msg(self, timeout: float) -> bool:
        return False


def test_state_reports_are_plain_telemetry_json(fw_client, tb_peer):
    # The reference sends current_firmware_info as telemetry: a flat JSON object.
    server = FirmwareServer(tb_peer, image(100))
    client = fw_client()
    server.offer("tiny", "1")
    wait_state(client, tb_peer, "UPDATED")
    for m in tb_peer.matching(lambda m: m.topic == "v1/devices/me/telemetry"):
        assert json.loads(m.payload) == m.json()


# -- end to end against our dev server ----------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", ["MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128"]
)
def test_devserver_assignment_updates_the_device(tb_devserver, tmp_path, algorithm):
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    data = image(300_000, seed=len(algorithm) + 1)
    token = tb_devserver.add_device("ota-dev")
    updates: list = []
    client = TBDeviceMqttClient(
        "127.0.0.1",
        tb_devserver.port,
        access_token=token,
        chunk_size=65536,
        firmware_dir=str(tmp_path),
        on_firmware_update=lambda path, info: updates.append((path, info)),
    )
    assert client.connect() is not None
    try:
        tb_devserver.set_firmware("ota-dev", data, "sensor.bin", "2.0", algorithm)
        pump_until(client, lambda: updates, 30, "the update")
        path, info = updates[0]
        assert Path(path).read_bytes() == data
        assert info["fw_checksum_algorithm"] == algorithm
        assert info["fw_checksum"] == checksum(algorithm, data)
        states = tb_devserver.wait_for(
            lambda: (
                [p.value for p in tb_devserver.telemetry("ota-dev", "fw_state")][-1:] == ["UPDATED"]
                and [p.value for p in tb_devserver.telemetry("ota-dev", "fw_state")]
            ),
            10,
            "UPDATED stored",
        )
        assert states[-4:] == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATED"]
        latest = tb_devserver.latest_telemetry("ota-dev")
        assert latest["current_fw_title"] == "sensor.bin"
        # ThingsBoard casts numeric strings (transport.json.type_cast_enabled): 2.0 is a double.
        assert latest["current_fw_version"] == 2.0
    finally:
        client.disconnect()
