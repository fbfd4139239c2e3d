"""Dev server firmware (spec/thingsboard-mqtt.md 11, 17 items 41-44), seen by a raw paho device.

Checksums are computed here independently (hashlib, zlib, mmh3) and compared with what the
server pushes; chunks are reassembled and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import signal
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, Optional

import paho.mqtt.client as mqtt
import pytest
from conftest import HOST, _child_env, devserver_cli, listening_port, stop_cli
from paho.mqtt.enums import CallbackAPIVersion

ATTRS = "v1/devices/me/attributes"
TIMEOUT = 10.0
MIB = 1 << 20
ALGORITHMS = ["MD5", "SHA256", "SHA384", "SHA512", "CRC32", "MURMUR3_32", "MURMUR3_128"]
ALL_FW_KEYS = [
    "fw_title",
    "fw_version",
    "fw_ts",
    "fw_state",
    "fw_size",
    "fw_checksum",
    "fw_checksum_algorithm",
    "fw_url",
    "fw_tag",
]


def image(n: int, seed: int = 41) -> bytes:
    return random.Random(seed).randbytes(n)


def expected_checksum(algorithm: str, data: bytes) -> str:
    """ThingsBoard's ``fw_checksum`` (Guava ``HashCode.toString()``), computed independently."""
    if algorithm in ("MD5", "SHA256", "SHA384", "SHA512"):
        return hashlib.new(algorithm.lower(), data).hexdigest()
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "little").hex()
    mmh3 = pytest.importorskip("mmh3")
    if algorithm == "MURMUR3_32":
        return mmh3.hash(data, 0, signed=False).to_bytes(4, "little").hex()
    # x64 128-bit: mmh3 returns h2 << 64 | h1, so little-endian bytes are h1 then h2 (LE).
    return mmh3.hash128(data, 0, x64arch=True, signed=False).to_bytes(16, "little").hex()


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class RawDevice:
    """A paho MQTT 3.1.1 device that records every message; no automatic reconnect."""

    def __init__(self, port: int, token: str) -> None:
        self.messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.acked: set[int] = set()  # mids of PUBACKed publishes
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fw-dev", reconnect_on_failure=False)
        c.username_pw_set(token)
        c.on_connect = lambda c, u, flags, rc, props: self.connected.set()
        c.on_disconnect = lambda c, u, flags, rc, props: self.closed.set()
        c.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload), m.qos))
        c.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        c.on_publish = lambda c, u, mid, rc, props: self.acked.add(mid)
        c.connect(HOST, port)
        c.loop_start()
        self.client = c
        assert self.connected.wait(TIMEOUT), "no CONNACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos)
        codes = self.subacks.get(timeout=TIMEOUT)
        assert [c.value for c in codes] == [qos]

    def next(self, timeout: float = TIMEOUT) -> tuple[str, bytes, int]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s") from None

    def request(self, req: int, index: int | str, size: Optional[int]) -> mqtt.MQTTMessageInfo:
        payload = b"" if size is None else str(size).encode()
        return self.client.publish(f"v2/fw/request/{req}/chunk/{index}", payload, qos=1)

    def chunk(self, req: int, index: int, size: Optional[int]) -> bytes:
        """Requests one chunk; checks the PUBACK and the response topic; returns the bytes."""
        info = self.request(req, index, size)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()
        topic, payload, _ = self.next()
        assert topic == f"v2/fw/response/{req}/chunk/{index}"
        return payload

    def expect_error_then_close(self, code: str, info: mqtt.MQTTMessageInfo) -> None:
        assert self.next() == ("v2/fw/error", code.encode(), 1)
        assert self.closed.wait(TIMEOUT), "the server did not close the connection"
        assert info.mid not in self.acked, "the failed request was PUBACKed"


@pytest.fixture
def device(tb_devserver):
    token = tb_devserver.add_device("lamp")
    made: list[RawDevice] = []

    def make() -> RawDevice:
        d = RawDevice(tb_devserver.port, token)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


# ---- item 41: assignment --------------------------------------------------------------------


def test_assignment_pushes_fw_attributes_then_deletes_tag_and_url(tb_devserver, device):
    dev = device()
    dev.subscribe(ATTRS)
    data = image(MIB)
    checksum = tb_devserver.set_firmware("lamp", data, "lamp-fw", "1.1")
    assert checksum == hashlib.sha256(data).hexdigest()
    pushes = sorted(dev.next()[1].decode() for _ in range(2))  # spec: order not fixed
    assert pushes == [
        compact({"deleted": ["fw_tag", "fw_url"]}),
        compact(
            {
                "fw_title": "lamp-fw",
                "fw_version": "1.1",
                "fw_size": MIB,
                "fw_checksum_algorithm": "SHA256",
                "fw_checksum": checksum,
            }
        ),
    ]
    shared = tb_devserver.shared_attributes("lamp")
    assert {k: v for k, v in shared.items() if k.startswith("fw_")} == {
        "fw_title": "lamp-fw",
        "fw_version": "1.1",
        "fw_size": MIB,
        "fw_checksum_algorithm": "SHA256",
        "fw_checksum": checksum,
    }
    assert tb_devserver.latest_telemetry("lamp")["fw_state"] == "INITIATED"


def test_tag_and_typed_in_checksum_are_pushed_as_given(tb_devserver, device):
    dev = device()
    dev.subscribe(ATTRS)
    got = tb_devserver.set_firmware(
        "lamp", b"abc", "lamp", "007", "md5", checksum="0" * 32, tag="lamp 007"
    )
    assert got == "0" * 32
    pushes = sorted((json.loads(dev.next()[1]) for _ in range(2)), key=lambda p: "deleted" in p)
    assert pushes[1] == {"deleted": ["fw_url"]}
    assert pushes[0] == {
        "fw_title": "lamp",
        "fw_version": "007",  # a string, not cast to 7
        "fw_size": 3,
        "fw_checksum_algorithm": "MD5",
        "fw_checksum": "0" * 32,
        "fw_tag": "lamp 007",
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checksum_of_each_algorithm_matches_an_independent_computation(
    tb_devserver, device, algorithm
):
    data = image(MIB, seed=len(algorithm))
    expected = expected_checksum(algorithm, data)
    dev = device()
    dev.subscribe(ATTRS)
    assert tb_devserver.set_firmware("lamp", data, "t", "v", algorithm.lower()) == expected
    pushed = [json.loads(dev.next()[1]) for _ in range(2)]
    attrs = next(p for p in pushed if "deleted" not in p)
    assert attrs["fw_checksum"] == expected
    assert attrs["fw_checksum_algorithm"] == algorithm


def test_clearing_deletes_every_fw_key_in_one_push(tb_devserver, device):
    dev = device()
    dev.subscribe(ATTRS)
    tb_devserver.clear_firmware("lamp")  # nothing assigned: nothing pushed
    tb_devserver.set_firmware("lamp", b"x", "t", "v")
    dev.next(), dev.next()
    tb_devserver.clear_firmware("lamp")
    assert json.loads(dev.next()[1]) == {"deleted": ALL_FW_KEYS}
    assert not [k for k in tb_devserver.shared_attributes("lamp") if k.startswith("fw_")]
    assert dev.messages.empty()
    info = dev.request(1, 0, 100)
    dev.expect_error_then_close("NOT_FOUND", info)


def test_bad_arguments_raise_clear_errors(tb_devserver, tmp_path):
    tb_devserver.add_device("lamp")
    with pytest.raises(TypeError, match="data must be bytes"):
        tb_devserver.set_firmware("lamp", 123, "t", "v")
    with pytest.raises(TypeError, match="version must be a str"):
        tb_devserver.set_firmware("lamp", b"x", "t", 1)
    with pytest.raises(ValueError, match="must not be empty"):
        tb_devserver.set_firmware("lamp", b"x", "", "v")
    with pytest.raises(
        ValueError, match='unknown checksum algorithm "SHA1"; expected one of MD5, SHA256'
    ):
        tb_devserver.set_firmware("lamp", b"x", "t", "v", "SHA1")
    with pytest.raises(KeyError):
        tb_devserver.set_firmware("nobody", b"x", "t", "v")
    with pytest.raises(FileNotFoundError):
        tb_devserver.set_firmware("lamp", str(tmp_path / "missing.bin"), "t", "v")
    path = tmp_path / "fw.bin"
    path.write_bytes(b"from a file")
    for given in (path, str(path)):
        assert tb_devserver.set_firmware("lamp", given, "t", "v", "CRC32") == expected_checksum(
            "CRC32", b"from a file"
        )
    assert tb_devserver.shared_attributes("lamp")["fw_size"] == len(b"from a file")


# ---- item 42: chunks ------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 4096, 65536])
def test_one_mib_image_reassembles_at_each_chunk_size(tb_devserver, device, size):
    data = image(MIB)
    checksum = tb_devserver.set_firmware("lamp", data, "t", "v")
    dev = device()
    got = bytearray()
    chunks = 0
    while len(got) < len(data):
        # The size goes with the first request only: the server remembers it per request id.
        part = dev.chunk(7, chunks, size if chunks == 0 else None)
        assert part, f"empty chunk {chunks} after {len(got)} bytes"
        got += part
        chunks += 1
    assert chunks == (1 if size == 0 else len(data) // size)
    assert bytes(got) == data
    assert hashlib.sha256(got).hexdigest() == checksum
    if size:
        assert dev.chunk(7, chunks, None) == b""  # past the end: empty payload


def test_chunk_details_index_as_number_out_of_range_and_qos0(tb_devserver, device):
    data = image(10_000)
    tb_devserver.set_firmware("lamp", data, "t", "v")
    dev = device()
    assert dev.chunk(1, 2, 4096) == data[8192:]  # short last chunk
    assert dev.chunk(1, 3, None) == b""
    assert dev.chunk(1, 1000, 4096) == b""
    info = dev.request(2, "007", 1000)  # answered on .../chunk/7
    assert dev.next() == ("v2/fw/response/2/chunk/7", data[7000:8000], 1)
    assert info.is_published()
    dev.subscribe("v2/fw/response/+/chunk/+", 0)
    dev.client.publish("v2/fw/request/3/chunk/1", b"10", qos=0)
    assert dev.next() == ("v2/fw/response/3/chunk/1", data[10:20], 0)
    # Not the pattern: acknowledged as an unknown topic, nothing else, connection kept.
    info = dev.request(4, "x", 10)
    info.wait_for_publish(TIMEOUT)
    assert dev.chunk(5, 0, 10) == data[:10]
    assert not dev.closed.is_set()


def test_running_download_keeps_its_image_after_reassignment(tb_devserver, device):
    tb_devserver.set_firmware("lamp", b"old image", "t", "1")
    dev = device()
    assert dev.chunk(1, 0, 3) == b"old"
    tb_devserver.set_firmware("lamp", b"NEW IMAGE", "t", "2")
    assert dev.chunk(1, 1, None) == b" im"
    assert dev.chunk(2, 0, 3) == b"NEW"


# ---- items 43-44: errors --------------------------------------------------------------------


def test_chunk_size_over_the_packet_limit_is_payload_too_large(tb_devserver, device):
    tb_devserver.set_firmware("lamp", image(200_000), "t", "v")
    dev = device()
    info = dev.request(1, 0, 65537)
    dev.expect_error_then_close("PAYLOAD_TOO_LARGE", info)


@pytest.mark.parametrize("kind", ["fw", "sw"])
def test_no_firmware_is_not_found_on_the_fw_error_topic(device, kind):
    dev = device()
    info = dev.client.publish(f"v2/{kind}/request/1/chunk/0", b"100", qos=1)
    dev.expect_error_then_close("NOT_FOUND", info)


@pytest.mark.parametrize("payload", [b'{"size":4096}', b" 4096", b"99999999999", b"abc"])
def test_non_numeric_chunk_size_closes_without_puback(tb_devserver, device, payload):
    tb_devserver.set_firmware("lamp", b"data", "t", "v")
    dev = device()
    info = dev.client.publish("v2/fw/request/1/chunk/0", payload, qos=1)
    assert dev.closed.wait(TIMEOUT), "the server did not close the connection"
    assert info.mid not in dev.acked
    assert dev.messages.empty()


# ---- CLI ------------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thingsboard_sdk", "devserver", "--port", "0", *args],
        cwd=cwd,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_firmware_option_assigns_and_serves(tmp_path):
    data = image(300_000)
    path = tmp_path / "build:1" / "lamp.bin"  # a ':' in the path is fine
    path.parent.mkdir()
    path.write_bytes(data)
    with devserver_cli(
        "--port",
        "0",
        "--device",
        "Lamp:LAMP_TOKEN",
        "--firmware",
        f"LAMP_TOKEN:{path}:lamp:1.2:MURMUR3_128",
        cwd=tmp_path,
    ) as (proc, lines):
        port = listening_port(lines)
        expected = expected_checksum("MURMUR3_128", data)
        assert any(f"lamp 1.2 from {path} (MURMUR3_128 {expected})" in ln for ln in lines), lines
        dev = RawDevice(port, "LAMP_TOKEN")
        try:
            assert dev.chunk(1, 0, None) == data
        finally:
            dev.close()
        stop_cli(proc, signal.SIGINT)


@pytest.mark.parametrize(
    "value, message",
    [
        ("DEMO_DEVICE_TOKEN:{path}:lamp", "is not TOKEN:PATH:TITLE:VERSION[:ALGORITHM]"),
        ("DEMO_DEVICE_TOKEN:{path}::1.0", "is not TOKEN:PATH:TITLE:VERSION[:ALGORITHM]"),
        (":{path}:lamp:1.0", "is not TOKEN:PATH:TITLE:VERSION[:ALGORITHM]"),
        ("DEMO_DEVICE_TOKEN:{path}.missing:lamp:1.0", "cannot read"),
        ("OTHER_TOKEN:{path}:lamp:1.0", "no device has access token 'OTHER_TOKEN'"),
    ],
)
def test_cli_bad_firmware_values_exit_2(tmp_path, value, message):
    path = tmp_path / "fw.bin"
    path.write_bytes(b"x")
    r = run_cli("--firmware", value.format(path=path), cwd=tmp_path)
    assert r.returncode == 2, r
    assert message in r.stderr
    assert "Traceback" not in r.stderr
