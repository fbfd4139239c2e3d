"""Fault injection between an MQTT client and its broker: a TCP proxy on 127.0.0.1.

The one home of the fault proxy: the fault tests (``tests/faults.py``) and the fault benchmark
(``benches/faults.py``, which loads this file by path so it runs without the engine built) both
use it. It needs nothing but the standard library.

``FaultProxy(upstream_host, upstream_port)`` listens on a free port of 127.0.0.1 and relays every
connection to the upstream (mosquitto). While relaying it can

- ``reset()``: end every relayed connection with a TCP RST on both sides;
- ``cut_mid_packet()``: forward only the first half of the next chunk the client sends, then
  end that connection (the broker sees half an MQTT packet, the client a reset);
- ``blackhole()``: forward nothing in either direction and hold new connections unanswered, as a
  route that silently drops packets; ``restore()`` lets the held bytes through, as TCP
  retransmission would once the route is back. A held connection that its client closed before
  the route came back is dropped, not relayed: its segments would meet no connection at the
  server, as on a real route;
- ``down()``: reset every connection and refuse new ones (accept, then RST at once);
- ``latency``: delay every chunk by this many seconds, in both directions.

``restore()`` returns the ``time.monotonic()`` at which the link was back, so a caller can
measure how long the client takes to notice. Two threads per direction per connection (a reader
that timestamps chunks and a writer that releases them): latency then delays, it does not
throttle.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from typing import Optional

__all__ = ["FaultProxy"]

HOST = "127.0.0.1"

PASS, BLACKHOLE, DOWN = "pass", "blackhole", "down"


def _rst(sock: socket.socket) -> None:
    """Close ``sock`` with a RST (SO_LINGER 0) rather than a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Wake a thread blocked in recv() on it first: a socket closed under a blocked recv() stays
    # open in the kernel (no RST) until that recv returns.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Conn:
    """One relayed connection: the client's socket and (once allowed) the upstream one."""

    def __init__(self, proxy: FaultProxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: Optional[socket.socket] = None
        self.closed = threading.Event()
        self.client_gone = threading.Event()  # the client's side ended (EOF or error)
        self.up_q: queue.Queue[Optional[tuple[float, bytes]]] = queue.Queue()
        self.down_q: queue.Queue[Optional[tuple[float, bytes]]] = queue.Queue()

    def start(self) -> None:
        threading.Thread(target=self._open, daemon=True).start()

    def _open(self) -> None:
        # Read the client right away (a held connection's CONNECT is buffered, not lost), but
        # open the upstream side only while the link passes traffic.
        threading.Thread(target=self._reader, args=(self.client, self.up_q), daemon=True).start()
        if not self.proxy._wait_passing(self.closed):
            self.kill()
            return
        if self.client_gone.is_set():
            # Closed by its client while held: on a real route its retransmitted SYN or data
            # would meet no connection at the server. Relaying it now would open a session
            # the client gave up on (and, with the same client id, take the live one over).
            self.kill()
            return
        try:
            self.upstream = socket.create_connection(self.proxy.upstream, timeout=5)
            self.upstream.settimeout(None)
            self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            self.kill()
            return
        if self.closed.is_set():  # reset while we were connecting
            _rst(self.upstream)
            return
        threading.Thread(
            target=self._reader, args=(self.upstream, self.down_q), daemon=True
        ).start()
        threading.Thread(
            target=self._writer, args=(self.up_q, self.upstream, True), daemon=True
        ).start()
        threading.Thread(
            target=self._writer, args=(self.down_q, self.client, False), daemon=True
        ).start()

    def _reader(self, src: socket.socket, q: queue.Queue) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                q.put((time.monotonic(), data))
        except OSError:
            pass
        if src is self.client:
            self.client_gone.set()
        q.put(None)

    def _writer(self, q: queue.Queue, dst: socket.socket, upward: bool) -> None:
        try:
            while not self.closed.is_set():
                item = q.get()
                if item is None:
                    break
                t, data = item
                delay = t + self.proxy.latency - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not self.proxy._wait_passing(self.closed):
                    return
                if upward and len(data) >= 2 and self.proxy._take_cut():
                    dst.sendall(data[: len(data) // 2])
                    time.sleep(0.05)  # let the half reach the broker before the RST
                    self.proxy.cuts_done += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        self.kill()

    def kill(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.up_q.put(None)
        self.down_q.put(None)
        _rst(self.client)
        if self.upstream is not None:
            _rst(self.upstream)
        self.proxy._forget(self)


class FaultProxy:
    """A fault-injecting TCP relay from ``127.0.0.1:self.port`` to ``upstream``."""

    def __init__(self, upstream_host: str, upstream_port: int, latency: float = 0.0):
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.host = HOST
        self.mode = PASS
        self.accepted = 0
        self.cuts_done = 0
        self._cut_armed = False
        self._cond = threading.Condition()
        self._conns: list[_Conn] = []
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- internals -------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                self.accepted += 1
                if self.mode == DOWN or self._closed:
                    _rst(sock)
                    continue
                conn = _Conn(self, sock)
                self._conns.append(conn)
            conn.start()

    def _wait_passing(self, closed: threading.Event) -> bool:
        """Blocks while the link is blackholed; False once the connection is gone."""
        with self._cond:
            while self.mode != PASS and not closed.is_set():
                if self.mode == DOWN:
                    return False
                self._cond.wait(0.05)
            return not closed.is_set()

    def _take_cut(self) -> bool:
        with self._cond:
            armed, self._cut_armed = self._cut_armed, False
            return armed

    def _forget(self, conn: _Conn) -> None:
        with self._cond:
            if conn in self._conns:
                self._conns.remove(conn)

    def _kill_all(self) -> None:
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            conn.kill()

    # -- faults ----------------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Relayed connections open right now."""
        with self._cond:
            return len(self._conns)

    def reset(self) -> None:
        """RST every relayed connection; new connections pass as before."""
        self._kill_all()

    def cut_mid_packet(self, timeout: float = 5.0) -> None:
        """Forward half of the next client chunk, then reset that connection. Waits until done."""
        done = self.cuts_done
        with self._cond:
            self._cut_armed = True
        deadline = time.monotonic() + timeout
        while self.cuts_done == done:
            if time.monotonic() >= deadline:
                raise AssertionError("proxy: no client traffic to cut within the timeout")
            time.sleep(0.005)

    def blackhole(self) -> None:
        """Stop forwarding in both directions; connections stay open, new ones are held."""
        with self._cond:
            self.mode = BLACKHOLE
            self._cond.notify_all()

    def down(self) -> None:
        """Reset every connection and refuse new ones until ``restore()``."""
        with self._cond:
            self.mode = DOWN
            self._cond.notify_all()
        self._kill_all()

    def restore(self) -> float:
        """Back to passing traffic; returns the monotonic time it happened."""
        with self._cond:
            self.mode = PASS
            self._cond.notify_all()
            return time.monotonic()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._cond:
            self.mode = DOWN
            self._cond.notify_all()
        self._kill_all()
