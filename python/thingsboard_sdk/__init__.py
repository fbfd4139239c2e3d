"""ThingsBoard device SDK: the MicroPython client API on CPython, with a Rust engine.

The documented entry point is ``from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient``.
"""

from ._engine import __version__

__all__ = ["__version__"]
