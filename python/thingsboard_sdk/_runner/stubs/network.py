"""``network`` stand-in: a WLAN that connects at once (the host's own network is used).

Status codes are those of the Pico W (CYW43) port: ``STAT_GOT_IP == 3``.
"""

import logging
import socket

log = logging.getLogger("thingsboard_sdk.runner.network")

STA_IF = 0
AP_IF = 1

STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_GOT_IP = 3
STAT_CONNECT_FAIL = -1
STAT_NO_AP_FOUND = -2
STAT_WRONG_PASSWORD = -3

AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4

_interfaces = {}


def _host_address():
    """The address this host uses for outgoing traffic (a UDP connect sends nothing)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks a route
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def _mac():
    import machine  # the stand-in, loaded by the same hook

    return bytes(machine.unique_id()[:6])


class WLAN:
    """A Wi-Fi interface; ``WLAN(STA_IF)`` returns the same interface every time."""

    IF_STA = STA_IF
    IF_AP = AP_IF
    # Pico W power-management modes for config(pm=...): accepted and remembered
    PM_NONE = 0x000010
    PM_PERFORMANCE = 0xA11142
    PM_POWERSAVE = 0x000011

    def __new__(cls, interface_id=STA_IF):
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError(f"invalid WLAN interface identifier {interface_id!r}")
        if interface_id not in _interfaces:
            wlan = super().__new__(cls)
            wlan._id = interface_id
            wlan._active = False
            wlan._connected = False
            wlan._ssid = None
            wlan._config = {"mac": _mac(), "hostname": socket.gethostname()}
            _interfaces[interface_id] = wlan
        return _interfaces[interface_id]

    def __repr__(self):
        return "<WLAN %s>" % ("STA_IF" if self._id == STA_IF else "AP_IF")

    def active(self, is_active=None):
        """Returns whether the interface is up, or turns it on/off."""
        if is_active is None:
            return self._active
        self._active = bool(is_active)
        if not self._active:
            self._connected = False
        log.info("WLAN active(%s)", self._active)
        return None

    def connect(self, ssid=None, key=None, *, bssid=None, **kwargs):
        """Connects at once: the host's network is already there."""
        if not self._active:
            self._active = True
        self._ssid = ssid
        self._connected = True
        log.info("WLAN connect(%r): connected at once (host network)", ssid)

    def disconnect(self):
        """Drops the (pretend) Wi-Fi link; the host's network is not touched."""
        self._connected = False
        log.info("WLAN disconnect()")

    def isconnected(self):
        """True once ``connect()`` was called (and ``AP_IF`` whenever active)."""
        if self._id == AP_IF:
            return self._active
        return self._active and self._connected

    def status(self, param=None):
        """The link status (``STAT_*``), or ``status("rssi")`` in dBm."""
        if param == "rssi":
            return -50
        if param is not None:
            raise ValueError(f"unknown status param {param!r}")
        if not self._active:
            return STAT_IDLE
        return STAT_GOT_IP if self._connected else STAT_IDLE

    def ifconfig(self, config=None):
        """``(ip, netmask, gateway, dns)``; the IP is this host's."""
        if config is not None:
            log.info("WLAN ifconfig(%r) ignored on the host", config)
            return None
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        ip = _host_address()
        gateway = ip.rsplit(".", 1)[0] + ".1"
        return (ip, "255.255.255.0", gateway, gateway)

    def ipconfig(self, *args, **kwargs):
        """Newer MicroPython's ``ipconfig("addr4")``."""
        if args == ("addr4",):
            ip, mask = self.ifconfig()[:2]
            return (ip, mask)
        return None

    def config(self, *args, **kwargs):
        """``config("mac")``, ``config("ssid")``...; settings are remembered and logged."""
        if kwargs:
            self._config.update(kwargs)
            log.info("WLAN config(%s)", ", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
            return None
        if len(args) != 1:
            raise TypeError("config() takes one parameter name or keyword settings")
        name = args[0]
        if name in ("ssid", "essid"):
            return self._config.get(name, self._ssid or "")
        if name in self._config:
            return self._config[name]
        if name == "channel":
            return 1
        raise ValueError(f"unknown config param {name!r}")

    def scan(self):
        """No radio on the host: the network the script connected to, if any."""
        if self._ssid is None:
            return []
        ssid = self._ssid.encode() if isinstance(self._ssid, str) else bytes(self._ssid)
        return [(ssid, self._config["mac"], 1, -50, AUTH_WPA2_PSK, False)]


def hostname(name=None):
    """The host's name (setting it is logged and ignored)."""
    if name is not None:
        log.info("hostname(%r) ignored on the host", name)
        return None
    return socket.gethostname()


def country(code=None):
    """Country code for the radio (no effect on the host)."""
    return "XX" if code is None else None
