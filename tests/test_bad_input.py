"""Bad input from the caller: a clear exception, and nothing goes out on the wire."""

from __future__ import annotations

import pytest
from thingsboard_sdk.tb_device_mqtt import TBDeviceMqttClient


def circular():
    d: dict = {"a": 1}
    d["self"] = d
    return d


def circular_list():
    lst: list = [1]
    lst.append(lst)
    return {"l": lst}


BAD_DATA = [
    pytest.param({"CPU", 12.0}, id="set-typo-from-docs"),
    pytest.param(b'{"a":1}', id="bytes"),
    pytest.param({"a": b"x"}, id="bytes-value"),
    pytest.param(object(), id="object"),
    pytest.param({"a": object()}, id="object-value"),
    pytest.param({"a": float("nan")}, id="nan"),
    pytest.param({"a": float("inf")}, id="inf"),
    pytest.param({"a": float("-inf")}, id="-inf"),
    pytest.param({"a": [1.0, float("nan")]}, id="nested-nan"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({"a": {(1, 2): 3}}, id="nested-tuple-key"),
    pytest.param({None: 1}, id="none-key"),
    pytest.param(circular(), id="circular-dict"),
    pytest.param(circular_list(), id="circular-list"),
    pytest.param([{"a": 1}, {"b": {1, 2}}], id="set-in-list"),
]


@pytest.mark.parametrize("method", ["send_telemetry", "send_attributes"])
@pytest.mark.parametrize("data", BAD_DATA)
def test_bad_data_raises_and_publishes_nothing(client, tb_peer, method, data):
    mark = tb_peer.mark()
    with pytest.raises((TypeError, ValueError)):
        getattr(client, method)(data)
    before = tb_peer.barrier(client)[mark:]
    assert before == [], f"something was published: {before}"
    assert client.connected


def test_set_typo_message_says_set_and_dict(client, tb_peer):
    with pytest.raises(TypeError) as info:
        client.send_telemetry({"CPU", 12.0})
    text = str(info.value).lower()
    assert "set" in text and "dict" in text, text


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_message_names_the_problem(client, bad):
    with pytest.raises((TypeError, ValueError)) as info:
        client.send_telemetry({"v": bad})
    text = str(info.value).lower()
    assert any(word in text for word in ("nan", "inf", "finite")), text


def test_non_str_key_message(client):
    with pytest.raises((TypeError, ValueError)) as info:
        client.send_telemetry({1: 2})
    assert "key" in str(info.value).lower()


@pytest.mark.parametrize("qos", [2, 3, -1])
def test_qos_outside_0_1_rejected_at_construction(qos):
    with pytest.raises(ValueError) as info:
        TBDeviceMqttClient("127.0.0.1", 1883, access_token="t", quality_of_service=qos)
    assert str(qos) in str(info.value)


@pytest.mark.parametrize("request_id", ["1+", "#", "a/b", "+", "1/2", "x#y"])
def test_rpc_reply_bad_id_rejected(client, tb_peer, request_id):
    mark = tb_peer.mark()
    with pytest.raises(ValueError):
        client.send_rpc_reply(request_id, {"r": 1})
    assert tb_peer.barrier(client)[mark:] == []


@pytest.mark.parametrize("response", [{"CPU", 1}, {"a": float("nan")}, object()])
def test_rpc_reply_bad_response_rejected(client, tb_peer, response):
    mark = tb_peer.mark()
    with pytest.raises((TypeError, ValueError)):
        client.send_rpc_reply("3", response)
    assert tb_peer.barrier(client)[mark:] == []


def test_claim_bad_duration_rejected_or_sent_as_number(client, tb_peer):
    mark = tb_peer.mark()
    with pytest.raises((TypeError, ValueError)):
        client.claim_device("k", duration_ms=float("nan"))
    assert tb_peer.barrier(client)[mark:] == []


def test_bad_input_then_good_input_still_works(client, tb_peer):
    for bad in ({"CPU", 1}, {"a": float("nan")}, b"x"):
        with pytest.raises((TypeError, ValueError)):
            client.send_telemetry(bad)
    mark = tb_peer.mark()
    client.send_telemetry({"good": 1})
    assert tb_peer.wait_for("v1/devices/me/telemetry", since=mark).payload == b'{"good":1}'


NOT_CALLABLE = [
    pytest.param(lambda c: c.request_attributes(client_keys=["a"], callback=5), id="attr-request"),
    pytest.param(lambda c: c.send_rpc_call("getTime", {}, "cb"), id="rpc-call"),
    pytest.param(lambda c: c.set_server_side_rpc_request_handler(5), id="rpc-handler"),
    pytest.param(lambda c: c.subscribe_to_attribute("a", 5), id="subscribe"),
    pytest.param(lambda c: c.subscribe_to_all_attributes(None), id="subscribe-all-none"),
]


@pytest.mark.parametrize("call", NOT_CALLABLE)
def test_callback_that_cannot_be_called_is_refused_at_once(client, tb_peer, call):
    # Found by trying: a non-callable was stored, and a TypeError showed up in the log only
    # when the response or update arrived, long after the line that was wrong.
    mark = tb_peer.mark()
    with pytest.raises(TypeError) as info:
        call(client)
    assert "callable" in str(info.value)
    assert tb_peer.barrier(client)[mark:] == []


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"request_timeout": float("nan")}, "request_timeout"),
        ({"request_timeout": float("inf")}, "request_timeout"),
        ({"access_token": 123}, "access_token"),
        ({"host": None}, "host"),
        ({"keepalive": "a"}, "keepalive"),
        ({"reconnect_min_delay": "a"}, "reconnect_min_delay"),
        ({"reconnect_max_delay": None}, "reconnect_max_delay"),
        ({"firmware_chunk_timeout": "a"}, "firmware_chunk_timeout"),
    ],
)
def test_bad_constructor_argument_names_itself(kwargs, name):
    args = {"host": "127.0.0.1", "port": 1883, "access_token": "t", **kwargs}
    with pytest.raises((TypeError, ValueError)) as info:
        TBDeviceMqttClient(**args)
    assert name in str(info.value)


def test_wait_for_msg_nan_timeout_is_refused_not_endless(client):
    # NaN compared false with everything, so the wait never ended.
    with pytest.raises(ValueError, match="timeout"):
        client.wait_for_msg(timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        client.wait_for_msg(timeout="1")
    assert client.wait_for_msg(timeout=-1) is False


def test_claim_duration_too_big_names_itself(client, tb_peer):
    mark = tb_peer.mark()
    with pytest.raises(ValueError, match="duration_ms"):
        client.claim_device("k", duration_ms=2**70)
    assert tb_peer.barrier(client)[mark:] == []


def test_connect_timeout_that_is_not_a_number_names_itself():
    # Found by trying: connect(timeout="a") said only "could not convert string to float".
    c = TBDeviceMqttClient("127.0.0.1", 1883, "t")
    with pytest.raises(TypeError, match="timeout must be a number of seconds, got 'a'"):
        c.connect(timeout="a")
    assert not c.connected


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda c: c.request_attributes(["a"], callback=print, timeout="a"), id="attributes"
        ),
        pytest.param(lambda c: c.send_rpc_call("m", {}, print, timeout="a"), id="rpc-call"),
    ],
)
def test_request_timeout_that_is_not_a_number_names_itself(client, tb_peer, call):
    mark = tb_peer.mark()
    with pytest.raises(TypeError, match="timeout must be a number of seconds"):
        call(client)
    assert tb_peer.barrier(client)[mark:] == []
