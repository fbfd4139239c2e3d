"""``tb_device_mqtt`` stand-in: the MicroPython SDK's module as projects copy it onto a board
(``from tb_device_mqtt import TBDeviceMqttClient``); the same objects as
``thingsboard_sdk.tb_device_mqtt``."""

from thingsboard_sdk.tb_device_mqtt import *  # noqa: F403
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient  # noqa: F401
