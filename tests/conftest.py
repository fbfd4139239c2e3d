"""Shared fixtures: a real mosquitto, a scripted ThingsBoard peer, a fake broker, subprocesses.

Everything talks over real sockets to 127.0.0.1 only. Nothing here sleeps to synchronise:
waits are on ``threading.Condition``/``Event`` or poll a condition with a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pwd
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import paho.mqtt.client as mqtt
import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

# no example database and no .hypothesis/ directory in the checkout
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="tb-hypothesis-"))
hypothesis_settings.register_profile("tb", database=None)
hypothesis_settings.load_profile("tb")

# A harness may start pytest with SIGINT ignored (a background job of a shell without job
# control); every child would inherit that, and the Ctrl-C tests could not interrupt them. A
# caught signal is reset to its default at exec, so catching it here gives each child a
# working Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def compact(data: Any) -> bytes:
    """Compact JSON, the encoding the contract promises for every payload."""
    return json.dumps(data, separators=(",", ":")).encode()


def wait_until(pred: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``pred`` until it is truthy; fail after ``timeout`` seconds.

    Used only where no event exists to wait on (e.g. a socket becoming connectable or the
    client noticing a dead link); the poll interval is short and bounded by a deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def pump_until(client: Any, pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Dispatch incoming messages on this thread until ``pred()`` is truthy.

    Uses the host extra ``wait_for_msg(timeout=...)`` so the loop blocks in the client rather
    than spinning.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s pumping for {what or pred}")
        client.wait_for_msg(timeout=min(0.2, left))


def mosquitto_binary() -> str:
    """Path of mosquitto; installs the Debian package when it is missing and we are root."""
    found = os.environ.get("MOSQUITTO") or shutil.which("mosquitto")
    if not found and os.path.exists("/usr/sbin/mosquitto"):
        found = "/usr/sbin/mosquitto"
    if not found and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "mosquitto"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not found or not os.path.exists(found):
        pytest.fail("mosquitto is not installed (apt-get install -y mosquitto)", pytrace=False)
    return found


# --------------------------------------------------------------------------------------------
# mosquitto
# --------------------------------------------------------------------------------------------


class Mosquitto:
    """One mosquitto process on 127.0.0.1 with a generated config; restartable on its port."""

    def __init__(self, workdir: Path, port: int | None = None, persistence: bool = False):
        self.host = HOST
        self.port = port or free_port()
        self.workdir = workdir
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"
        self.starts = 0

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            # run as whoever runs the tests (mosquitto drops root to user "mosquitto", which
            # cannot write the persistence file into our temporary directory)
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        if self.persistence:
            # Keeps the peer's persistent session (subscriptions and queued messages) across a
            # restart, so that "every number arrives" measures the client, not the broker.
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                f"persistence_file mosquitto-{self.port}.db",
                "autosave_interval 0",
            ]
        else:
            lines.append("persistence false")
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        assert not self.running, "mosquitto already running"
        self._write_config()
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                start_new_session=True,
            )
        finally:
            logf.close()
        self.starts += 1
        self._record_pid()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not accept on {self.port}:\n{self.log_text()}"
                    ) from None
                time.sleep(0.01)

    def _pidfile(self, pid: int) -> Path | None:
        # .ci/run sets TB_TEST_PID_DIR so it can stop our brokers if pytest itself is killed
        d = os.environ.get("TB_TEST_PID_DIR")
        return Path(d) / f"mosquitto-{pid}.pid" if d else None

    def _record_pid(self) -> None:
        assert self.proc is not None
        path = self._pidfile(self.proc.pid)
        if path:
            path.write_text(str(self.proc.pid))

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        path = self._pidfile(proc.pid)
        if path:
            with contextlib.suppress(OSError):
                path.unlink()
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A mosquitto shared by the whole session, on a free port."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


@pytest.fixture
def restartable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto on a fixed port for this test, with persistence; stop()/start() it."""
    with Mosquitto(tmp_path, persistence=True) as b:
        yield b


@pytest.fixture
def proxy(restartable_broker: Mosquitto) -> Iterator[Any]:
    """A ``faults.FaultProxy`` in front of ``restartable_broker``; closed after the test."""
    from faults import FaultProxy

    p = FaultProxy(restartable_broker.host, restartable_broker.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def token() -> str:
    """A fresh access token per test (mosquitto does not check it; it keeps tests apart)."""
    return "tok-" + uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------------------------
# the scripted ThingsBoard peer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Msg:
    """One PUBLISH the peer received."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    seq: int

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


Pred = Union[str, "re.Pattern[str]", Callable[[Msg], bool]]
Reply = tuple  # (topic, payload) or (topic, payload, qos)
Responder = Callable[[Msg], Optional[Iterable[Reply]]]


def _as_pred(pred: Pred) -> Callable[[Msg], bool]:
    if isinstance(pred, str):
        return lambda m: m.topic == pred
    if isinstance(pred, re.Pattern):
        return lambda m: pred.fullmatch(m.topic) is not None
    return pred


def _as_payload(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return compact(payload)


ATTR_REQUEST = re.compile(r"v1/devices/me/attributes/request/(\d+)")
RPC_REQUEST = re.compile(r"v1/devices/me/rpc/request/(\d+)")


class TBPeer:
    """The server side of ThingsBoard, scripted, over the same mosquitto.

    Subscribes to the device-side topics with MQTT 5 ``noLocal`` so that it never sees (and
    never answers) its own publishes. Records every PUBLISH it receives, in order.
    """

    DEVICE_TOPICS = (
        "v1/devices/me/#",
        "/provision/request",
        "v2/fw/request/#",
        "v1/gateway/#",
    )

    def __init__(self, host: str, port: int, *, persistent: bool = False):
        self.host = host
        self.port = port
        self.persistent = persistent
        self.client_id = "tb-peer-" + uuid.uuid4().hex[:10]
        self._cond = threading.Condition()
        self._messages: list[Msg] = []
        self._responders: list[Responder] = []
        self.responder_errors: list[BaseException] = []
        self._subscribed = threading.Event()
        self.sent: list[tuple[str, bytes, int]] = []
        self._own: collections.Counter[tuple[str, bytes]] = collections.Counter()
        if persistent:
            # mosquitto 2.0 does not restore MQTT 5 sessions from its persistence file, but it
            # does restore 3.1.1 clean_session=False ones; 3.1.1 has no noLocal, so this peer
            # drops its own publishes by content instead (see _on_message).
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
            )
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> TBPeer:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise RuntimeError("peer did not get its SUBACK")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def wait_subscribed(self, timeout: float = 15.0) -> None:
        if not self._subscribed.wait(timeout):
            raise AssertionError("peer did not resubscribe in time")

    # paho callbacks (run on paho's network thread) -----------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        if self.persistent and flags.session_present:
            self._subscribed.set()
            return
        if self.persistent:
            client.subscribe([(t, 1) for t in self.DEVICE_TOPICS])
        else:
            opts = SubscribeOptions(qos=1, noLocal=True)
            client.subscribe([(t, opts) for t in self.DEVICE_TOPICS])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._subscribed.clear()

    def _on_message(self, client, userdata, message) -> None:
        key = (message.topic, bytes(message.payload))
        with self._cond:
            if self._own[key] > 0:  # only for the 3.1.1 persistent peer: our own publish
                self._own[key] -= 1
                return
            msg = Msg(
                message.topic,
                bytes(message.payload),
                message.qos,
                bool(message.retain),
                len(self._messages),
            )
            self._messages.append(msg)
            self._cond.notify_all()
            responders = list(self._responders)
        for responder in responders:
            try:
                replies = responder(msg)
                for reply in replies or ():
                    topic, payload, *rest = reply
                    self._send(topic, payload, rest[0] if rest else 1)
            except BaseException as exc:  # recorded; asserted on by tests that care
                self.responder_errors.append(exc)

    # sending ------------------------------------------------------------------------------------

    def _send(self, topic: str, payload: Any, qos: int) -> mqtt.MQTTMessageInfo:
        data = _as_payload(payload)
        with self._cond:
            self.sent.append((topic, data, qos))
            if self.persistent:
                self._own[(topic, data)] += 1
        return self.client.publish(topic, data, qos=qos)

    def publish(self, topic: str, payload: Any, qos: int = 1, timeout: float = 5.0) -> None:
        """Publish as the server; payload may be bytes, str or JSON-able data (compact)."""
        info = self._send(topic, payload, qos)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise AssertionError(f"peer publish to {topic} not acknowledged in {timeout}s")

    def push_attributes(self, data: Any) -> None:
        """A shared-attribute update, as ThingsBoard pushes it."""
        self.publish("v1/devices/me/attributes", data)

    def server_rpc(self, request_id: Union[int, str], method: str, params: Any = None) -> None:
        self.publish(
            f"v1/devices/me/rpc/request/{request_id}", {"method": method, "params": params}
        )

    # auto-replies --------------------------------------------------------------------------------

    def respond(self, responder: Responder) -> Responder:
        """Add ``responder(msg) -> iterable of (topic, payload[, qos])``; it runs for each msg."""
        with self._cond:
            self._responders.append(responder)
        return responder

    def clear_responders(self) -> None:
        with self._cond:
            self._responders.clear()

    def answer_attribute_requests(self, answer: Union[dict, Callable[[dict], Any]]) -> None:
        """Answer ``attributes/request/N`` with ``attributes/response/N``."""

        def responder(msg: Msg):
            m = ATTR_REQUEST.fullmatch(msg.topic)
            if not m:
                return None
            body = answer(msg.json()) if callable(answer) else answer
            return [(f"v1/devices/me/attributes/response/{m.group(1)}", body)]

        self.respond(responder)

    def answer_rpc(self, answer: Union[Any, Callable[[str, Any], Any]]) -> None:
        """Answer the device's client-side RPC ``rpc/request/N`` with ``rpc/response/N``."""

        def responder(msg: Msg):
            m = RPC_REQUEST.fullmatch(msg.topic)
            if not m:
                return None
            req = msg.json()
            body = answer(req.get("method"), req.get("params")) if callable(answer) else answer
            return [(f"v1/devices/me/rpc/response/{m.group(1)}", body)]

        self.respond(responder)

    def answer_provision(self, answer: Union[dict, Callable[[dict], Any]]) -> None:
        """Answer ``/provision/request`` with ``/provision/response``."""

        def responder(msg: Msg):
            if msg.topic != "/provision/request":
                return None
            body = answer(msg.json()) if callable(answer) else answer
            return [("/provision/response", body)]

        self.respond(responder)

    # inspecting ----------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Msg]:
        with self._cond:
            return list(self._messages)

    def mark(self) -> int:
        """Index to pass as ``since`` so later waits ignore what came before."""
        with self._cond:
            return len(self._messages)

    def matching(self, pred: Pred, since: int = 0) -> list[Msg]:
        p = _as_pred(pred)
        with self._cond:
            return [m for m in self._messages[since:] if p(m)]

    def wait_for(self, pred: Pred, timeout: float = 5.0, since: int = 0) -> Msg:
        """The first message (from index ``since``) matching ``pred``; waits up to ``timeout``."""
        return self.wait_count(pred, 1, timeout, since)[0]

    def wait_count(self, pred: Pred, n: int, timeout: float = 5.0, since: int = 0) -> list[Msg]:
        p = _as_pred(pred)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self._messages[since:] if p(m)]
                if len(found) >= n:
                    return found[:n]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self._messages[since:]]
                    raise AssertionError(
                        f"peer: wanted {n} matching message(s) within {timeout}s, "
                        f"got {len(found)}; seen: {seen[-20:]}"
                    )
                self._cond.wait(left)

    def wait_for_predicate(self, check: Callable[[list[Msg]], bool], timeout: float = 10.0):
        """Wait until ``check(all_messages)`` is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self._messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"peer: condition not met within {timeout}s")
                self._cond.wait(left)

    def barrier(self, client: Any, timeout: float = 5.0) -> list[Msg]:
        """Send a sentinel telemetry from ``client`` and wait for it.

        MQTT keeps one client's publishes in order, so once the sentinel is here everything the
        client published before it is here too. Returns the messages before the sentinel
        (from the mark taken on entry... callers usually take their own mark first).
        """
        tag = uuid.uuid4().hex
        client.send_telemetry({"sentinel": tag})
        sentinel = self.wait_for(
            lambda m: m.topic == "v1/devices/me/telemetry" and tag.encode() in m.payload,
            timeout,
        )
        with self._cond:
            return list(self._messages[: sentinel.seq])


@pytest.fixture
def tb_peer(broker: Mosquitto) -> Iterator[TBPeer]:
    """A scripted ThingsBoard peer on the session mosquitto."""
    peer = TBPeer(broker.host, broker.port).start()
    try:
        yield peer
    finally:
        peer.stop()
    assert not peer.responder_errors, f"peer responder failed: {peer.responder_errors!r}"


@pytest.fixture
def peer_factory() -> Iterator[Callable[..., TBPeer]]:
    """Make extra peers (e.g. a persistent one on a restartable broker)."""
    peers: list[TBPeer] = []

    def make(b: Mosquitto, *, persistent: bool = False) -> TBPeer:
        p = TBPeer(b.host, b.port, persistent=persistent).start()
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.stop()


# --------------------------------------------------------------------------------------------
# device clients under test
# --------------------------------------------------------------------------------------------


@pytest.fixture
def make_client(broker: Mosquitto, token: str) -> Iterator[Callable[..., Any]]:
    """Factory for ``TBDeviceMqttClient``s pointed at the session broker; all are disconnected
    at teardown. ``connect=True`` connects and asserts success."""
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    made: list[Any] = []

    def make(
        *,
        connect: bool = True,
        host: str | None = None,
        port: int | None = None,
        access_token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.setdefault("client_id", "dev-" + uuid.uuid4().hex[:12])
        client = TBDeviceMqttClient(
            host or broker.host,
            port or broker.port,
            access_token=access_token or token,
            **kwargs,
        )
        made.append(client)
        if connect:
            rc = client.connect(timeout=10)
            assert rc is not None, f"connect failed: {getattr(client, 'last_error', None)}"
            assert client.connected is True
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):
            client.disconnect()


@pytest.fixture
def client(make_client: Callable[..., Any], tb_peer: TBPeer) -> Any:
    """A connected client with a peer already listening."""
    return make_client()


# --------------------------------------------------------------------------------------------
# a fake broker speaking raw MQTT 3.1.1, for things mosquitto cannot be made to do
# --------------------------------------------------------------------------------------------


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_packet(sock: socket.socket) -> tuple[int, int, bytes]:
    """(packet type, flags, body) of one MQTT packet."""
    first = _read_exact(sock, 1)[0]
    mult, length = 1, 0
    while True:
        b = _read_exact(sock, 1)[0]
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
    return first >> 4, first & 0x0F, _read_exact(sock, length)


def encode_packet(ptype: int, flags: int, body: bytes) -> bytes:
    n, enc = len(body), bytearray()
    while True:
        b = n % 128
        n //= 128
        enc.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([(ptype << 4) | flags]) + bytes(enc) + body


def mqtt_str(s: Union[str, bytes]) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(data)) + data


@dataclass
class ConnectInfo:
    client_id: str
    username: str | None
    password: bytes | None
    keepalive: int
    clean_session: bool


def parse_connect(body: bytes) -> ConnectInfo:
    i = 0

    def take_str() -> bytes:
        nonlocal i
        (n,) = struct.unpack_from("!H", body, i)
        i += 2
        s = body[i : i + n]
        i += n
        return s

    take_str()  # protocol name
    i += 1  # level
    flags = body[i]
    i += 1
    (keepalive,) = struct.unpack_from("!H", body, i)
    i += 2
    client_id = take_str().decode()
    if flags & 0x04:
        take_str()
        take_str()
    username = take_str().decode() if flags & 0x80 else None
    password = take_str() if flags & 0x40 else None
    return ConnectInfo(client_id, username, password, keepalive, bool(flags & 0x02))


class FakeBroker:
    """A tiny MQTT 3.1.1 server: answers CONNECT with a chosen CONNACK, SUBSCRIBE with SUBACK,
    QoS 1 PUBLISH with PUBACK, PINGREQ with PINGRESP. Records CONNECTs and PUBLISHes.

    ``connack=None`` means never answer CONNECT (a server that hangs).
    ``on_publish(topic, payload) -> list of (topic, payload)`` lets it answer publishes.
    """

    def __init__(
        self,
        *,
        connack: tuple[int, int] | None = (0, 0),
        on_publish: Callable[[str, bytes], Iterable[tuple[str, Any]]] | None = None,
    ):
        self.connack = connack
        self.on_publish = on_publish
        # cleared: SUBACKs wait until the test sets it (to see whether connect waits for them)
        self.release_suback = threading.Event()
        self.release_suback.set()
        self.connects: list[ConnectInfo] = []
        self.publishes: list[tuple[str, bytes, int]] = []
        self.subscriptions: list[tuple[str, int]] = []
        # every other packet the client sent (PUBACK, PUBREC, PUBCOMP, ...): (type, body)
        self.packets: list[tuple[int, bytes]] = []
        self.accepted = threading.Event()
        self._cond = threading.Condition()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self.host = HOST
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(conn)
            self.accepted.set()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        next_id = 1
        try:
            while True:
                ptype, flags, body = read_packet(conn)
                if ptype == 1:  # CONNECT
                    with self._cond:
                        self.connects.append(parse_connect(body))
                        self._cond.notify_all()
                    if self.connack is None:
                        continue
                    sp, rc = self.connack
                    conn.sendall(encode_packet(2, 0, bytes([sp & 1, rc])))
                    if rc:
                        conn.close()
                        return
                elif ptype == 8:  # SUBSCRIBE
                    pid = body[:2]
                    i, granted = 2, []
                    while i < len(body):
                        (n,) = struct.unpack_from("!H", body, i)
                        topic = body[i + 2 : i + 2 + n].decode()
                        qos = body[i + 2 + n] & 0x03
                        i += 3 + n
                        granted.append(min(qos, 1))
                        with self._cond:
                            self.subscriptions.append((topic, qos))
                            self._cond.notify_all()
                    self.release_suback.wait(30)
                    conn.sendall(encode_packet(9, 0, pid + bytes(granted)))
                elif ptype == 3:  # PUBLISH
                    qos = (flags >> 1) & 0x03
                    (n,) = struct.unpack_from("!H", body, 0)
                    topic = body[2 : 2 + n].decode()
                    i = 2 + n
                    if qos:
                        pid = body[i : i + 2]
                        i += 2
                        conn.sendall(encode_packet(4, 0, pid))
                    payload = body[i:]
                    with self._cond:
                        self.publishes.append((topic, payload, qos))
                        self._cond.notify_all()
                    for rtopic, rpayload in (
                        self.on_publish(topic, payload) if self.on_publish else ()
                    ):
                        data = _as_payload(rpayload)
                        pkt = mqtt_str(rtopic) + struct.pack("!H", next_id) + data
                        next_id += 1
                        conn.sendall(encode_packet(3, 0x02, pkt))
                elif ptype == 12:  # PINGREQ
                    conn.sendall(encode_packet(13, 0, b""))
                elif ptype == 14:  # DISCONNECT
                    conn.close()
                    return
                else:  # PUBACK (4) and others: recorded, nothing to answer
                    with self._cond:
                        self.packets.append((ptype, body))
                        self._cond.notify_all()
        except (OSError, ConnectionError):
            with contextlib.suppress(OSError):
                conn.close()

    def send(self, ptype: int, flags: int, body: bytes) -> None:
        """Writes one packet to the newest connection (a test scripting the server)."""
        self._socks[-1].sendall(encode_packet(ptype, flags, body))

    def wait(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake broker: condition not met in time")
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def fake_broker() -> Iterator[Callable[..., FakeBroker]]:
    made: list[FakeBroker] = []

    def make(**kwargs: Any) -> FakeBroker:
        fb = FakeBroker(**kwargs)
        made.append(fb)
        return fb

    yield make
    for fb in made:
        fb.close()


# --------------------------------------------------------------------------------------------
# subprocesses
# --------------------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def spawn_cli(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """Starts ``python -m thingsboard_sdk ARGS`` in ``cwd``, unbuffered, with piped output."""
    return subprocess.Popen(
        [sys.executable, "-m", "thingsboard_sdk", *args],
        cwd=cwd,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


class PyRunner:
    """Runs python snippets in a fresh interpreter, from a temporary directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def _write(self, code: str) -> Path:
        self._n += 1
        path = self.workdir / f"snippet_{self._n}.py"
        path.write_text(textwrap.dedent(code))
        return path

    def run(self, code: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        path = self._write(code)
        return subprocess.run(
            [sys.executable, str(path)],
            cwd=self.workdir,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, code: str) -> subprocess.Popen[bytes]:
        """Start the snippet; stdout/stderr are unbuffered binary pipes, so ``read_until``
        never reads past a line and ``finish`` (communicate) sees everything after it."""
        path = self._write(code)
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=self.workdir,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> tuple[str, str]:
        """Wait for the child to end; its remaining (stdout, stderr) as text."""
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"child did not exit in {timeout}s\n{out.decode(errors='replace')}\n"
                f"{err.decode(errors='replace')}"
            ) from None
        return out.decode(errors="replace"), err.decode(errors="replace")

    @staticmethod
    def read_until(
        proc: subprocess.Popen[bytes], marker: str, timeout: float = 30.0, *, stderr: bool = False
    ) -> list[str]:
        """Read stdout (or stderr) lines until one contains ``marker``; returns the lines read."""
        stream = proc.stderr if stderr else proc.stdout
        assert stream is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(stream, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {marker!r} from child within {timeout}s: {lines}")
                if not sel.select(left):
                    continue
                raw = stream.readline()  # unbuffered: reads up to the newline only
                if not raw:
                    err = proc.stderr.read() if proc.stderr and not stderr else b""
                    raise AssertionError(
                        f"child ended before {marker!r}: {lines}\n{err.decode(errors='replace')}"
                    )
                line = raw.decode(errors="replace")
                lines.append(line)
                if marker in line:
                    return lines

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()


@contextlib.contextmanager
def devserver_cli(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[str]]]:
    """Runs ``python -m thingsboard_sdk devserver ARGS`` until it says it is ready.

    Args:
        args: the command line after ``devserver``.
        cwd: the child's working directory.

    Yields:
        ``(proc, lines)``: the child and the stdout lines up to "press Ctrl-C to stop". On the
        way out a child still running is killed and its pipes are closed.
    """
    proc = spawn_cli("devserver", *args, cwd=cwd)
    try:
        yield proc, PyRunner.read_until(proc, "press Ctrl-C to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def stop_cli(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Sends ``sig`` and checks the child exits 0 without a traceback.

    Returns:
        The rest of its (stdout, stderr) as text.
    """
    proc.send_signal(sig)
    out, err = PyRunner.finish(proc, timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def listening_port(lines: list[str]) -> int:
    """The MQTT port in the dev server's "listening on 127.0.0.1:PORT" line."""
    for line in lines:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no 'listening on' line in {lines}")


@pytest.fixture
def run_py(tmp_path: Path) -> Iterator[PyRunner]:
    """``run_py.run(code)`` -> CompletedProcess; ``run_py.spawn(code)`` -> Popen."""
    runner = PyRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.close()
