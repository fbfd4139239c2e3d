"""claim_device, get_provision_request, provision() and ProvisionClient."""

from __future__ import annotations

import time

import pytest
from conftest import FakeBroker
from thingsboard_sdk.provision_client import ProvisionClient
from thingsboard_sdk.tb_device_mqtt import ProvisionError, TBDeviceMqttClient

CLAIM = "v1/devices/me/claim"
SUCCESS = {
    "credentialsValue": "Xy12abc",
    "credentialsType": "ACCESS_TOKEN",
    "status": "SUCCESS",
}
NOT_FOUND = {"errorMsg": "Provision data was not found!", "status": "NOT_FOUND"}


# -- claiming -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs, payload",
    [
        (("k",), {}, b'{"secretKey":"k"}'),
        (("k",), {"duration_ms": 60000}, b'{"secretKey":"k","durationMs":60000}'),
        ((), {"secret_key": "k", "duration_ms": 60000}, b'{"secretKey":"k","durationMs":60000}'),
        ((), {}, b"{}"),
        ((), {"duration_ms": 5}, b'{"durationMs":5}'),
    ],
)
def test_claim_payloads(client, tb_peer, args, kwargs, payload):
    mark = tb_peer.mark()
    handle = client.claim_device(*args, **kwargs)
    msg = tb_peer.wait_for(CLAIM, since=mark)
    assert msg.payload == payload
    assert msg.qos == 1
    assert handle.wait(5) is True


# -- get_provision_request ------------------------------------------------------------------------

BASE = {"provisionDeviceKey": "pk", "provisionDeviceSecret": "ps"}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, BASE),
        ({"device_name": "My Device"}, {**BASE, "deviceName": "My Device"}),
        (
            {"access_token": "tok"},
            {**BASE, "token": "tok", "credentialsType": "ACCESS_TOKEN"},
        ),
        (
            {"client_id": "c", "username": "u", "password": "p"},
            {
                **BASE,
                "username": "u",
                "password": "p",
                "clientId": "c",
                "credentialsType": "MQTT_BASIC",
            },
        ),
        ({"username": "u"}, {**BASE, "username": "u", "credentialsType": "MQTT_BASIC"}),
        ({"password": "p"}, {**BASE, "password": "p", "credentialsType": "MQTT_BASIC"}),
        ({"client_id": "c"}, {**BASE, "clientId": "c", "credentialsType": "MQTT_BASIC"}),
        (
            {"hash": "MIIB..."},
            {**BASE, "hash": "MIIB...", "credentialsType": "X509_CERTIFICATE"},
        ),
        ({"gateway": True}, {**BASE, "gateway": True}),
        (
            # access token wins over basic credentials and hash (reference order)
            {
                "access_token": "t",
                "username": "u",
                "hash": "h",
                "device_name": "D",
                "gateway": True,
            },
            {
                **BASE,
                "token": "t",
                "credentialsType": "ACCESS_TOKEN",
                "deviceName": "D",
                "gateway": True,
            },
        ),
        (
            {"username": "u", "hash": "h"},
            {**BASE, "username": "u", "credentialsType": "MQTT_BASIC"},
        ),
    ],
)
def test_get_provision_request_branches(kwargs, expected):
    req = TBDeviceMqttClient.get_provision_request("pk", "ps", **kwargs)
    assert req == expected
    assert None not in req.values()


def test_get_provision_request_both_parameter_spellings():
    docs = TBDeviceMqttClient.get_provision_request(provision_key="pk", provision_secret="ps")
    ref = TBDeviceMqttClient.get_provision_request(
        provision_device_key="pk", provision_device_secret="ps"
    )
    assert docs == ref == BASE


def test_get_provision_request_on_instance_too():
    c = TBDeviceMqttClient("127.0.0.1", 1, access_token="t")
    assert c.get_provision_request("pk", "ps", device_name="n") == {**BASE, "deviceName": "n"}


# -- provision() -----------------------------------------------------------------------------------


def test_provision_on_class_success(broker, tb_peer):
    tb_peer.answer_provision(SUCCESS)
    req = TBDeviceMqttClient.get_provision_request("pk", "ps", device_name="dev1")
    mark = tb_peer.mark()
    creds = TBDeviceMqttClient.provision(broker.host, broker.port, req)
    assert creds == SUCCESS
    sent = tb_peer.wait_for("/provision/request", since=mark)
    assert (
        sent.payload
        == b'{"provisionDeviceKey":"pk","provisionDeviceSecret":"ps","deviceName":"dev1"}'
    )


def test_provision_on_instance_success(make_client, broker, tb_peer):
    tb_peer.answer_provision(lambda req: {**SUCCESS, "credentialsValue": req["token"]})
    client = make_client(connect=False)
    req = TBDeviceMqttClient.get_provision_request("pk", "ps", access_token="wanted")
    creds = client.provision(broker.host, broker.port, req)
    assert creds["status"] == "SUCCESS"
    assert creds["credentialsType"] == "ACCESS_TOKEN"
    assert creds["credentialsValue"] == "wanted"
    assert client.connected is False  # a separate session


def test_provision_basic_credentials_dict_value(broker, tb_peer):
    answer = {
        "credentialsValue": {"clientId": "c1", "userName": "u1", "password": "p1"},
        "credentialsType": "MQTT_BASIC",
        "status": "SUCCESS",
    }
    tb_peer.answer_provision(answer)
    req = TBDeviceMqttClient.get_provision_request(
        "pk", "ps", client_id="c1", username="u1", password="p1"
    )
    assert TBDeviceMqttClient.provision(broker.host, broker.port, req) == answer


@pytest.mark.parametrize(
    "answer",
    [NOT_FOUND, {"errorMsg": "Failed to provision device!", "status": "FAILURE"}],
)
def test_provision_failure_raises_provision_error(broker, tb_peer, answer):
    tb_peer.answer_provision(answer)
    req = TBDeviceMqttClient.get_provision_request("bad", "bad")
    with pytest.raises(ProvisionError) as info:
        TBDeviceMqttClient.provision(broker.host, broker.port, req)
    assert info.value.status == answer["status"]
    assert info.value.error_msg == answer["errorMsg"]
    assert isinstance(info.value, Exception)


def test_provision_no_answer_raises_after_timeout(broker, tb_peer):
    req = TBDeviceMqttClient.get_provision_request("pk", "ps")
    t0 = time.monotonic()
    with pytest.raises(ProvisionError):
        TBDeviceMqttClient.provision(broker.host, broker.port, req, timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_provision_unreachable_raises_provision_error():
    from conftest import free_port

    req = TBDeviceMqttClient.get_provision_request("pk", "ps")
    with pytest.raises(ProvisionError):
        TBDeviceMqttClient.provision("127.0.0.1", free_port(), req, timeout=2)


def test_provision_session_identifies_as_provision(fake_broker):
    fb: FakeBroker = fake_broker(
        on_publish=lambda topic, payload: (
            [("/provision/response", SUCCESS)] if topic == "/provision/request" else []
        )
    )
    req = TBDeviceMqttClient.get_provision_request("pk", "ps")
    assert TBDeviceMqttClient.provision(fb.host, fb.port, req, timeout=5) == SUCCESS
    info = fb.connects[0]
    assert "provision" in (info.username, info.client_id)
    assert ("/provision/response", 1) in fb.subscriptions or (
        "/provision/response",
        0,
    ) in fb.subscriptions
    assert fb.publishes[0][0] == "/provision/request"


# -- ProvisionClient (the reference's class) ------------------------------------------------


def test_provision_client_credentials(broker, tb_peer):
    tb_peer.answer_provision(SUCCESS)
    req = TBDeviceMqttClient.get_provision_request("pk", "ps")
    pc = ProvisionClient(broker.host, broker.port, req)
    assert pc.credentials is None
    pc.provision()
    assert pc.credentials == SUCCESS
