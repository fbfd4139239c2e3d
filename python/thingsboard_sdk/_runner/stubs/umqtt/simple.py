"""``umqtt.simple`` stand-in: micropython-lib's MQTT 3.1.1 client over a host socket.

Same API and behaviour as on a board: ``connect()`` sends CONNECT and returns the CONNACK's
session-present flag (``MQTTException(code)`` on a refusal); ``publish`` with QoS 1 blocks
until its PUBACK; ``subscribe`` needs ``set_callback`` first and blocks until its SUBACK;
``wait_msg()`` blocks for one packet, ``check_msg()`` does not; incoming PUBLISHes go to the
callback as ``(topic, msg)`` bytes; QoS 2 is not supported; nothing pings by itself (call
``ping()`` within the keepalive). A ``user`` is sent with its ``password``, which must then
be given (``""`` for a ThingsBoard access token), as micropython-lib requires.

While the runner runs, ``--server``/``--devserver``/``--token`` apply to these clients too
(the access token is the MQTT user name).
"""

import socket as _socket
import struct as _struct

from thingsboard_sdk._runner import _state
from thingsboard_sdk.umqtt import MQTTException  # noqa: F401 - the SDK's class, shared


class _Sock:
    """A host socket with MicroPython's ``read``/``write`` stream semantics."""

    def __init__(self, sock):
        self._s = sock

    def read(self, n):
        if self._s.gettimeout() == 0.0:  # non-blocking: what is there, or None
            try:
                return self._s.recv(n)
            except BlockingIOError:
                return None
        data = b""
        while len(data) < n:
            chunk = self._s.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def write(self, buf, n=None):
        data = bytes(buf if n is None else buf[:n])
        self._s.sendall(data)
        return len(data)

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def settimeout(self, value):
        self._s.settimeout(value)

    def close(self):
        self._s.close()

    def fileno(self):
        return self._s.fileno()


def _bytes(value):
    return value.encode() if isinstance(value, str) else bytes(value)


def _varlen(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class MQTTClient:
    """An MQTT client; ``port=0`` means 1883 (8883 with ``ssl``)."""

    def __init__(
        self,
        client_id,
        server,
        port=0,
        user=None,
        password=None,
        keepalive=0,
        ssl=None,
        ssl_params=None,
    ):
        if port == 0:
            port = 8883 if ssl else 1883
        self.client_id = client_id
        self.sock = None
        self.server = server
        self.port = port
        self.ssl = ssl
        self.ssl_params = ssl_params or {}
        self.pid = 0
        self.cb = None
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False

    def _send_str(self, s):
        s = _bytes(s)
        self.sock.write(_struct.pack("!H", len(s)))
        self.sock.write(s)

    def _recv_len(self):
        n = 0
        sh = 0
        while True:
            b = self.sock.read(1)[0]
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7

    def set_callback(self, f):
        """``f(topic, msg)`` is called for each incoming message."""
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        """The will the broker publishes if this client vanishes."""
        assert 0 <= qos <= 2
        assert topic
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def connect(self, clean_session=True, timeout=None):
        """Connects and sends CONNECT.

        Returns:
            The CONNACK's session-present flag (0 or 1).

        Raises:
            MQTTException: the broker refused (the CONNACK return code is its argument).
            OSError: the server cannot be reached.
        """
        server, port, user = _state.mqtt_target(self.server, self.port, self.user, bool(self.ssl))
        sock = _socket.socket()
        sock.settimeout(timeout)
        addr = _socket.getaddrinfo(server, port)[0][-1]
        try:
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        if self.ssl is True:
            import ussl

            sock = ussl.wrap_socket(sock, **self.ssl_params)._s
        elif self.ssl:
            sock = self.ssl.wrap_socket(sock, server_hostname=server)._s
        self.sock = _Sock(sock)
        flags = 0x02 if clean_session else 0
        payload = bytearray()
        cid = _bytes(self.client_id)
        payload += _struct.pack("!H", len(cid)) + cid
        if self.lw_topic:
            flags |= 0x04 | (self.lw_qos & 0x1) << 3 | (self.lw_qos & 0x2) << 3
            flags |= self.lw_retain << 5
            for part in (self.lw_topic, self.lw_msg):
                data = _bytes(part)
                payload += _struct.pack("!H", len(data)) + data
        if user:
            if self.pswd is None:
                raise TypeError(
                    "umqtt: a user without a password; micropython-lib sends both, pass "
                    "password='' (ThingsBoard access tokens need no password)"
                )
            flags |= 0xC0
            for part in (user, self.pswd):
                data = _bytes(part)
                payload += _struct.pack("!H", len(data)) + data
        variable = b"\x00\x04MQTT\x04" + bytes([flags]) + _struct.pack("!H", self.keepalive)
        body = variable + bytes(payload)
        self.sock.write(b"\x10" + _varlen(len(body)) + body)
        resp = self.sock.read(4)
        assert resp[0] == 0x20 and resp[1] == 0x02
        if resp[3] != 0:
            raise MQTTException(resp[3])
        return resp[2] & 1

    def disconnect(self):
        """Sends DISCONNECT and closes the socket."""
        self.sock.write(b"\xe0\0")
        self.sock.close()

    def ping(self):
        """Sends PINGREQ (its PINGRESP is consumed by ``wait_msg``)."""
        self.sock.write(b"\xc0\0")

    def _newpid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def publish(self, topic, msg, retain=False, qos=0):
        """Publishes ``msg`` on ``topic``; with QoS 1 waits for the PUBACK."""
        topic, msg = _bytes(topic), _bytes(msg)
        head = bytes([0x30 | qos << 1 | retain])
        size = 2 + len(topic) + len(msg)
        pid = None
        if qos > 0:
            size += 2
            pid = self._newpid()
        packet = head + _varlen(size) + _struct.pack("!H", len(topic)) + topic
        if pid is not None:
            packet += _struct.pack("!H", pid)
        self.sock.write(packet + msg)
        if qos == 1:
            while True:
                op = self.wait_msg()
                if op == 0x40:
                    sz = self.sock.read(1)
                    assert sz == b"\x02"
                    rcv = self.sock.read(2)
                    if pid == (rcv[0] << 8 | rcv[1]):
                        return
        elif qos == 2:
            raise AssertionError("umqtt.simple does not support QoS 2")

    def subscribe(self, topic, qos=0):
        """Subscribes to ``topic`` and waits for the SUBACK.

        Raises:
            MQTTException: the broker refused the subscription (0x80).
        """
        assert self.cb is not None, "Subscribe callback is not set"
        topic = _bytes(topic)
        pid = self._newpid()
        body = _struct.pack("!H", pid) + _struct.pack("!H", len(topic)) + topic + bytes([qos])
        self.sock.write(b"\x82" + _varlen(len(body)) + body)
        while True:
            op = self.wait_msg()
            if op == 0x90:
                resp = self.sock.read(4)
                assert resp[1] == pid >> 8 and resp[2] == pid & 0xFF
                if resp[3] == 0x80:
                    raise MQTTException(resp[3])
                return

    def wait_msg(self):
        """Reads one packet: an incoming PUBLISH goes to the callback (QoS 1 is
        acknowledged), a PINGRESP is consumed; other packet types are returned as their
        first byte with the rest left to read.

        Returns:
            The packet's first byte, or None (a PINGRESP, or nothing in ``check_msg``).

        Raises:
            OSError: the connection closed (``OSError(-1)``).
        """
        res = self.sock.read(1)
        self.sock.setblocking(True)
        if res is None:
            return None
        if res == b"":
            raise OSError(-1)
        if res == b"\xd0":  # PINGRESP
            sz = self.sock.read(1)[0]
            assert sz == 0
            return None
        op = res[0]
        if op & 0xF0 != 0x30:
            return op
        sz = self._recv_len()
        topic_len = self.sock.read(2)
        topic_len = (topic_len[0] << 8) | topic_len[1]
        topic = self.sock.read(topic_len)
        sz -= topic_len + 2
        pid = None
        if op & 6:
            raw = self.sock.read(2)
            pid = raw[0] << 8 | raw[1]
            sz -= 2
        msg = self.sock.read(sz)
        self.cb(topic, msg)
        if op & 6 == 2:
            self.sock.write(b"\x40\x02" + _struct.pack("!H", pid))
        elif op & 6 == 4:
            raise AssertionError("umqtt.simple does not support QoS 2")
        return op

    def check_msg(self):
        """Like :meth:`wait_msg` but returns None at once when nothing has arrived."""
        self.sock.setblocking(False)
        return self.wait_msg()
