"""A tiny MQTT 3.1.1 codec for the benchmark: just what the raw sender and the subscriber need.

Standard library only, so any interpreter (each sender's venv) can import it.
Spec: MQTT 3.1.1 (OASIS), sections 2 (fixed header) and 3 (CONNECT, PUBLISH, PUBACK,
SUBSCRIBE, DISCONNECT).
"""

from __future__ import annotations

import socket
import struct
import time

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGRESP = 13
DISCONNECT_PACKET = b"\xe0\x00"


def encode_remaining_length(n: int) -> bytes:
    """Encode the fixed header's variable-length 'remaining length' (1-4 bytes, 7 bits each)."""
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def _mqtt_str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def encode_connect(client_id: str, username: str | None = None, keepalive: int = 0) -> bytes:
    """CONNECT with clean session, MQTT 3.1.1 ("MQTT", level 4)."""
    flags = 0x02  # clean session
    payload = _mqtt_str(client_id.encode())
    if username is not None:
        flags |= 0x80
        payload += _mqtt_str(username.encode())
    var = _mqtt_str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = var + payload
    return bytes([CONNECT << 4]) + encode_remaining_length(len(body)) + body


def encode_publish(topic: bytes, payload: bytes, packet_id: int, qos: int = 1) -> bytes:
    """PUBLISH; a packet id is written only for QoS > 0."""
    body = _mqtt_str(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    body += payload
    return bytes([(PUBLISH << 4) | (qos << 1)]) + encode_remaining_length(len(body)) + body


def encode_puback(packet_id: int) -> bytes:
    return b"\x40\x02" + struct.pack("!H", packet_id)


def encode_subscribe(packet_id: int, topic: bytes, qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _mqtt_str(topic) + bytes([qos])
    # SUBSCRIBE's fixed-header flags must be 0b0010 (spec 3.8.1).
    return bytes([(SUBSCRIBE << 4) | 0x02]) + encode_remaining_length(len(body)) + body


def split_packets(buf: bytes | bytearray) -> tuple[list[tuple[int, int, bytes]], int]:
    """Split complete packets off the front of ``buf``.

    Returns:
        ``([(type, flags, body), ...], consumed)``; bytes after ``consumed`` are an incomplete
        packet that needs more data.
    """
    packets = []
    pos = 0
    end = len(buf)
    while pos + 2 <= end:
        first = buf[pos]
        mult = 1
        length = 0
        i = pos + 1
        while True:
            if i >= end:
                return packets, pos
            byte = buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if i + length > end:
            break
        packets.append((first >> 4, first & 0x0F, bytes(buf[i : i + length])))
        pos = i + length
    return packets, pos


def connect(
    host: str, port: int, client_id: str, username: str | None = None, timeout: float = 10.0
) -> socket.socket:
    """Open a TCP_NODELAY socket, send CONNECT and wait for a successful CONNACK.

    Raises:
        ConnectionError: the broker refused the connection or closed it.
        TimeoutError: no CONNACK within ``timeout``.
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(encode_connect(client_id, username))
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("broker closed the connection before CONNACK")
        buf += data
        packets, _ = split_packets(buf)
        if packets:
            ptype, _flags, body = packets[0]
            if ptype != CONNACK or len(body) < 2 or body[1] != 0:
                raise ConnectionError(f"CONNECT refused: type={ptype} body={body!r}")
            sock.settimeout(None)
            return sock
    raise TimeoutError("no CONNACK")
