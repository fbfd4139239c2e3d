"""``run -v``: every MQTT packet the script's clients send and receive, as it crosses the wire.

Design: a relay on 127.0.0.1 sits between each client and its server (the runner's
``Redirect`` hands the client the relay's address); bytes are forwarded untouched and at
once, and a copy is decoded packet by packet for the log. It sees what the broker sees,
whichever client made it (``TBDeviceMqttClient``, provisioning, ``umqtt``), without a hook in
the engine. TLS connections are relayed too but cannot be decoded: the log says so.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from typing import Callable, Dict, Optional, Tuple

log = logging.getLogger("thingsboard_sdk.runner.wire")

NAMES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
}
PAYLOAD_SHOWN = 300  # characters of a payload in the log


def _text(data: bytes) -> str:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return f"<{len(data)} bytes: {data[:32].hex()}{'...' if len(data) > 32 else ''}>"
    try:  # compact JSON stays as sent; anything else is shown as text
        json.loads(text)
    except ValueError:
        text = repr(text)
    return text if len(text) <= PAYLOAD_SHOWN else text[:PAYLOAD_SHOWN] + f"... ({len(data)} B)"


def _str(body: bytes, i: int) -> Tuple[bytes, int]:
    (n,) = struct.unpack_from("!H", body, i)
    return body[i + 2 : i + 2 + n], i + 2 + n


def describe(ptype: int, flags: int, body: bytes) -> str:
    """One log line for an MQTT 3.1.1 packet (type, flags and body without fixed header)."""
    name = NAMES.get(ptype, f"type {ptype}")
    try:
        if ptype == 1:
            _proto, i = _str(body, 0)
            cflags = body[i + 1]
            (keepalive,) = struct.unpack_from("!H", body, i + 2)
            cid, i = _str(body, i + 4)
            parts = [f"client_id={cid.decode(errors='replace')!r}", f"keepalive={keepalive}"]
            parts.append(f"clean={1 if cflags & 0x02 else 0}")
            if cflags & 0x04:
                topic, i = _str(body, i)
                _msg, i = _str(body, i)
                parts.append(f"will={topic.decode(errors='replace')!r}")
            if cflags & 0x80:
                user, i = _str(body, i)
                parts.append(f"username={user.decode(errors='replace')!r}")
            if cflags & 0x40:
                parts.append("password=***")
            return f"{name} " + " ".join(parts)
        if ptype == 2:
            return f"{name} session_present={body[0] & 1} rc={body[1]}"
        if ptype == 3:
            qos = (flags >> 1) & 3
            topic, i = _str(body, 0)
            pid = ""
            if qos:
                pid = f" id={struct.unpack_from('!H', body, i)[0]}"
                i += 2
            retain = " retain" if flags & 1 else ""
            dup = " dup" if flags & 8 else ""
            return (
                f"{name} {topic.decode(errors='replace')} qos={qos}{pid}{retain}{dup} "
                f"{_text(body[i:])}"
            )
        if ptype in (4, 5, 6, 7, 11):
            return f"{name} id={struct.unpack_from('!H', body, 0)[0]}"
        if ptype in (8, 10):
            (pid,) = struct.unpack_from("!H", body, 0)
            i, topics = 2, []
            while i < len(body):
                topic, i = _str(body, i)
                entry = topic.decode(errors="replace")
                if ptype == 8:
                    entry += f" qos={body[i]}"
                    i += 1
                topics.append(entry)
            return f"{name} id={pid} " + ", ".join(topics)
        if ptype == 9:
            (pid,) = struct.unpack_from("!H", body, 0)
            return f"{name} id={pid} granted={list(body[2:])}"
    except (IndexError, struct.error):
        return f"{name} (malformed, {len(body)} bytes)"
    return name


class _Decoder:
    """Splits one direction's byte stream into packets."""

    def __init__(self, emit: Callable[[int, int, bytes], None]) -> None:
        self._buf = bytearray()
        self._emit = emit
        self.tls = False

    def feed(self, data: bytes) -> None:
        if self.tls:
            return
        self._buf += data
        while True:
            if not self._buf:
                return
            if self._buf[0] == 0x16:  # a TLS handshake record, not MQTT
                self.tls = True
                self._emit(-1, 0, b"")
                return
            length, mult, i = 0, 1, 1
            while True:
                if i >= len(self._buf):
                    return
                byte = self._buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80 or i > 4:
                    break
            if len(self._buf) < i + length:
                return
            head = self._buf[0]
            body = bytes(self._buf[i : i + length])
            del self._buf[: i + length]
            self._emit(head >> 4, head & 0x0F, body)


class WireTap:
    """Relays for the run's MQTT connections, one listener per server address."""

    def __init__(self) -> None:
        self._relays: Dict[Tuple[str, int], Tuple[str, int]] = {}
        self._listeners: list = []
        self._lock = threading.Lock()
        self._n = 0
        self._closed = False

    def via(self, host: str, port: int) -> Tuple[str, int]:
        """The address a client connects to instead of ``host:port`` (a relay to it).

        Falls back to ``host:port`` itself if no relay can be opened.
        """
        try:
            key = (str(host), int(port))
        except (TypeError, ValueError):
            return host, port  # the client reports the bad address itself
        with self._lock:
            if key in self._relays:
                return self._relays[key]
            try:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                listener.listen(16)
            except OSError as exc:
                log.warning("cannot show packets to %s:%s: %s", host, port, exc)
                return host, port
            self._listeners.append(listener)
            addr = listener.getsockname()[:2]
            self._relays[key] = addr
        threading.Thread(
            target=self._accept, args=(listener, key), name="wire-accept", daemon=True
        ).start()
        return addr

    def close(self) -> None:
        """Stops accepting new connections (open ones end with their client)."""
        self._closed = True
        with self._lock:
            for listener in self._listeners:
                try:
                    listener.close()
                except OSError:
                    pass

    def _accept(self, listener: socket.socket, target: Tuple[str, int]) -> None:
        while not self._closed:
            try:
                down, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._n += 1
                n = self._n
            threading.Thread(
                target=self._connect, args=(down, target, n), name="wire", daemon=True
            ).start()

    def _connect(self, down: socket.socket, target: Tuple[str, int], n: int) -> None:
        tag = f"#{n}"
        try:
            up = socket.create_connection(target, timeout=30)
            up.settimeout(None)
        except OSError as exc:
            log.info("%s cannot reach %s:%d: %s", tag, target[0], target[1], exc)
            down.close()
            return
        log.info("%s connected to %s:%d", tag, target[0], target[1])
        for sock in (up, down):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def emit(arrow: str) -> Callable[[int, int, bytes], None]:
            def show(ptype: int, flags: int, body: bytes) -> None:
                if ptype < 0:
                    log.info("%s %s TLS: packets are encrypted, not shown", tag, arrow)
                else:
                    log.info("%s %s %s", tag, arrow, describe(ptype, flags, body))

            return show

        done = threading.Event()
        threading.Thread(
            target=self._pump, args=(up, down, _Decoder(emit("<-")), done), daemon=True
        ).start()
        self._pump(down, up, _Decoder(emit("->")), done)
        done.wait(5)
        for sock in (up, down):
            try:
                sock.close()
            except OSError:
                pass
        log.info("%s closed", tag)

    @staticmethod
    def _pump(
        src: socket.socket,
        dst: socket.socket,
        decoder: _Decoder,
        done: Optional[threading.Event],
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                decoder.feed(data)  # logged first: the line precedes what it causes
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if done is not None and threading.current_thread().name != "wire":
                done.set()
