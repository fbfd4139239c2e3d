"""``umqtt`` stand-in: micropython-lib's MQTT clients, ``umqtt.simple`` and ``umqtt.robust``."""
