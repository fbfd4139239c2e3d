"""``sdk_core.device_mqtt`` stand-in: the reference's base client is ``TBDeviceMqttClient``."""

from thingsboard_sdk.tb_device_mqtt import *  # noqa: F403
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

TBDeviceMqttClientBase = TBDeviceMqttClient
