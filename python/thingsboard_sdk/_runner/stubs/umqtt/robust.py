"""``umqtt.robust`` stand-in: micropython-lib's reconnecting client.

On an ``OSError``, ``publish``, ``wait_msg`` and ``check_msg`` reconnect (``connect(False)``,
retrying every ``DELAY`` seconds) and try again; ``DEBUG = True`` prints each error.
"""

import time as _time

from . import simple


class MQTTClient(simple.MQTTClient):
    """``umqtt.simple.MQTTClient`` that reconnects."""

    DELAY = 2
    DEBUG = False

    def delay(self, i):
        """Waits before reconnect attempt ``i``."""
        _time.sleep(self.DELAY)

    def log(self, in_reconnect, e):
        if self.DEBUG:
            if in_reconnect:
                print(f"mqtt reconnect: {e!r}")
            else:
                print(f"mqtt: {e!r}")

    def reconnect(self):
        """Connects again (keeping the session) until it works."""
        i = 0
        while True:
            try:
                return super().connect(False)
            except OSError as e:
                self.log(True, e)
                i += 1
                self.delay(i)

    def publish(self, topic, msg, retain=False, qos=0):
        while True:
            try:
                return super().publish(topic, msg, retain, qos)
            except OSError as e:
                self.log(False, e)
            self.reconnect()

    def wait_msg(self):
        while True:
            try:
                return super().wait_msg()
            except OSError as e:
                self.log(False, e)
            self.reconnect()

    def check_msg(self, attempts=2):
        while attempts:
            self.sock.setblocking(False)
            try:
                return super().wait_msg()
            except OSError as e:
                self.log(False, e)
            self.reconnect()
            attempts -= 1
