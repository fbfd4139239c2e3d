"""Compatibility module: the MicroPython SDK's ``umqtt`` error type.

Host code written for the MicroPython SDK catches ``MQTTException``; it keeps working here.
"""


class MQTTException(Exception):
    """An MQTT-level error (the MicroPython SDK raises it when the broker refuses a request)."""


__all__ = ["MQTTException"]
