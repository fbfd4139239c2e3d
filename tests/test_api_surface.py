"""Import paths, names, signatures and shipped files (contract sections 1, 2; host-api.md)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import re
from pathlib import Path

import pytest


def test_documented_imports():
    from thingsboard_sdk.exceptions import QueueFullError
    from thingsboard_sdk.provision_client import ProvisionClient
    from thingsboard_sdk.tb_device_mqtt import MessageHandle, ProvisionError, TBDeviceMqttClient
    from thingsboard_sdk.umqtt import MQTTException

    assert inspect.isclass(TBDeviceMqttClient)
    assert inspect.isclass(ProvisionClient)
    assert issubclass(MQTTException, Exception)
    assert issubclass(ProvisionError, Exception)
    assert issubclass(QueueFullError, RuntimeError)
    assert MessageHandle is not None


def test_version_matches_distribution_metadata():
    import thingsboard_sdk

    assert isinstance(thingsboard_sdk.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", thingsboard_sdk.__version__)
    assert thingsboard_sdk.__version__ == importlib.metadata.version("thingsboard-sdk")


def test_py_typed_and_stubs_shipped():
    import thingsboard_sdk

    pkg = Path(thingsboard_sdk.__file__).parent
    assert (pkg / "py.typed").is_file()
    assert (pkg / "_engine.pyi").is_file()


def test_engine_is_private_extension():
    engine = importlib.import_module("thingsboard_sdk._engine")
    assert engine.__file__ and engine.__file__.endswith((".so", ".pyd"))


def test_no_top_level_sdk_core_installed():
    assert importlib.util.find_spec("sdk_core") is None


def test_constructor_signature():
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    params = list(inspect.signature(TBDeviceMqttClient).parameters.values())
    positional = [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == [
        ("host", inspect.Parameter.empty),
        ("port", 1883),
        ("access_token", None),
        ("quality_of_service", None),
        ("client_id", None),
        ("chunk_size", 0),
    ]
    keyword_only = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    for name, default in {
        "username": None,
        "password": None,
        "keepalive": 120,
        "tls": False,
        "ca_certs": None,
        "cert_file": None,
        "key_file": None,
        "tls_verify": True,
        "reconnect": True,
        "request_timeout": 10.0,
        "max_queued_messages": 100_000,
    }.items():
        assert keyword_only.get(name, "missing") == default, name


@pytest.mark.parametrize(
    "method, expected",
    [
        ("connect", [("timeout", 10)]),
        ("disconnect", []),
        ("send_telemetry", [("data", inspect.Parameter.empty)]),
        ("send_attributes", [("data", inspect.Parameter.empty)]),
        ("request_attributes", [("client_keys", None), ("shared_keys", None), ("callback", None)]),
        (
            "send_rpc_call",
            [
                ("method", inspect.Parameter.empty),
                ("params", inspect.Parameter.empty),
                ("callback", inspect.Parameter.empty),
            ],
        ),
        ("set_server_side_rpc_request_handler", [("handler", inspect.Parameter.empty)]),
        (
            "send_rpc_reply",
            [("request_id", inspect.Parameter.empty), ("response", inspect.Parameter.empty)],
        ),
        ("claim_device", [("secret_key", None), ("duration_ms", None)]),
        (
            "subscribe_to_attribute",
            [("key", inspect.Parameter.empty), ("callback", inspect.Parameter.empty)],
        ),
        ("subscribe_to_all_attributes", [("callback", inspect.Parameter.empty)]),
        ("unsubscribe_from_attribute", [("subscription_id", inspect.Parameter.empty)]),
        ("clean_device_sub_dict", []),
        ("check_for_msg", []),
        ("wait_for_msg", []),
    ],
)
def test_method_signatures(method, expected):
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    client = TBDeviceMqttClient("127.0.0.1", 1, access_token="t")
    params = inspect.signature(getattr(client, method)).parameters.values()
    got = [(p.name, p.default) for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert got == expected


def test_public_attributes_after_construction():
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    c = TBDeviceMqttClient("127.0.0.1", 1, access_token="t")
    assert c.connected is False
    assert c.quality_of_service == 1
    assert c.current_firmware_info == {"current_fw_title": "Initial", "current_fw_version": "v0"}
    assert hasattr(c, "firmware_info")
    assert hasattr(c, "firmware_data")
    assert c.last_error is None
    assert TBDeviceMqttClient("127.0.0.1", 1, quality_of_service=0).quality_of_service == 0


def test_provision_callable_on_class_and_instance():
    from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient

    assert callable(TBDeviceMqttClient.provision)
    assert callable(TBDeviceMqttClient("127.0.0.1", 1).provision)
    names = list(inspect.signature(TBDeviceMqttClient.provision).parameters)
    names = [n for n in names if n not in ("self", "cls")]
    assert names[:3] == ["host", "port", "provision_request"]


def test_provision_error_carries_status_and_error_msg():
    from thingsboard_sdk.tb_device_mqtt import ProvisionError

    err = ProvisionError("NOT_FOUND", "Provision data was not found!")
    assert err.status == "NOT_FOUND"
    assert err.error_msg == "Provision data was not found!"
    assert "NOT_FOUND" in str(err)
