"""More hostile input, beyond test_bad_input.py and test_hostile_network.py.

Caller side: lone surrogates, ``None`` keys deep inside, 10,000-deep nesting, a 10 MB payload,
odd RPC reply ids: a clear exception, nothing published, the client goes on.
Server side: junk on every subscribed topic while a request waits for its answer, 30-digit ids,
a 1 MB attribute push, late and unknown answers: a logged drop (or delivery, where the data is
valid), the pending request still gets its real answer, the client goes on.
"""

from __future__ import annotations

import logging
import time

import pytest
from conftest import pump_until


def deep_dict(n: int):
    d: object = 1
    for _ in range(n):
        d = {"a": d}
    return d


def deep_list(n: int):
    d: object = 1
    for _ in range(n):
        d = [d]
    return {"a": d}


def dropped(caplog, topic: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("thingsboard_sdk")
        and r.levelno == logging.WARNING
        and "dropped" in r.getMessage()
        and topic in r.getMessage()
    ]


# ---- caller side ---------------------------------------------------------------------------

CLIENT_BAD = [
    pytest.param({"a": "\ud800"}, "valid unicode", id="lone-surrogate-value"),
    pytest.param({"\udfff": 1}, "valid unicode", id="lone-surrogate-key"),
    pytest.param({"a": ["ok", {"b": "x\udc80y"}]}, "valid unicode", id="nested-surrogate"),
    pytest.param({"a": {"b": {None: 1}}}, "key", id="deep-none-key"),
    pytest.param([{"a": 1}, {None: 2}], "key", id="none-key-in-list"),
    pytest.param(deep_dict(10_000), "nested", id="10000-deep-dict"),
    pytest.param(deep_list(10_000), "nested", id="10000-deep-list"),
    pytest.param({"a": "x" * 10_000_000}, "65536", id="10MB-string"),
    pytest.param([{"k": "v" * 1000}, {"big": "v" * 100_000}], "65536", id="100KB-value-in-list"),
]


@pytest.mark.parametrize("method", ["send_telemetry", "send_attributes"])
@pytest.mark.parametrize("data, words", CLIENT_BAD)
def test_hostile_caller_data_raises_and_sends_nothing(client, tb_peer, method, data, words):
    if method == "send_attributes" and isinstance(data, list):
        pytest.skip("attributes are a dict; a list is refused for its shape")
    mark = tb_peer.mark()
    t = time.perf_counter()
    with pytest.raises((TypeError, ValueError)) as info:
        getattr(client, method)(data)
    took = time.perf_counter() - t
    assert words in str(info.value).lower(), str(info.value)
    assert took < 2.0, f"rejecting took {took:.2f} s"
    assert tb_peer.barrier(client)[mark:] == []
    assert client.send_telemetry({"after": 1}).wait(5) is True


@pytest.mark.parametrize(
    "request_id",
    ["", " 1", "1 ", "1\x00", "\u0661", "+1", "1/+", "#1", "1" * 11, "-1", "0x1", "1e3"],
)
def test_rpc_reply_odd_ids_rejected(client, tb_peer, request_id):
    mark = tb_peer.mark()
    with pytest.raises(ValueError) as info:
        client.send_rpc_reply(request_id, {"r": 1})
    assert "id" in str(info.value)
    assert tb_peer.barrier(client)[mark:] == []


@pytest.mark.parametrize("request_id", [None, 1.5, True, b"1", ["1"]])
def test_rpc_reply_id_of_wrong_type_rejected(client, tb_peer, request_id):
    mark = tb_peer.mark()
    with pytest.raises(TypeError):
        client.send_rpc_reply(request_id, {"r": 1})
    assert tb_peer.barrier(client)[mark:] == []


@pytest.mark.parametrize("method", ["v1/devices/me/#", "+", "a/b/#"])
def test_rpc_call_method_with_wildcards_goes_in_the_body(client, tb_peer, method):
    """A client-RPC method is data, not a topic: wildcards are sent as text in the body."""
    tb_peer.answer_rpc(lambda m, p: {"echo": m})
    got = []
    client.send_rpc_call(method, {}, lambda rid, r, e: got.append((r, e)), timeout=5)
    assert got == [({"echo": method}, None)]


def test_lone_surrogate_in_request_keys_and_method_rejected(client, tb_peer):
    mark = tb_peer.mark()
    with pytest.raises(ValueError):
        client.request_attributes(client_keys=["\ud800"], callback=None, timeout=1)
    with pytest.raises(ValueError):
        client.send_rpc_call("m\ud800", {}, None, timeout=1)
    with pytest.raises(ValueError):
        client.send_rpc_call("m", {"p": "\udfff"}, None, timeout=1)
    assert tb_peer.barrier(client)[mark:] == []


# ---- server side: junk while a request waits ---------------------------------------------

JUNK = [
    pytest.param(b"\xff\xfe\xfd", id="invalid-utf8"),
    pytest.param(b'{"a":"\xc3\x28"}', id="invalid-utf8-in-string"),
    pytest.param(b'{"shared":', id="truncated-json"),
    pytest.param(b"{'single':'quotes'}", id="not-json"),
    pytest.param(b"NaN", id="nan-literal"),
]
NOT_OBJECT = [
    pytest.param(b"[1,2]", id="array"),
    pytest.param(b"7", id="number"),
    pytest.param(b'"s"', id="string"),
    pytest.param(b"null", id="null"),
]


@pytest.mark.parametrize("junk", JUNK + NOT_OBJECT)
def test_junk_attribute_response_dropped_real_answer_wins(client, tb_peer, caplog, junk):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")

    def responder(msg):
        if not msg.topic.startswith("v1/devices/me/attributes/request/"):
            return None
        rid = msg.topic.rsplit("/", 1)[1]
        topic = f"v1/devices/me/attributes/response/{rid}"
        return [(topic, junk), (topic, {"shared": {"ok": 1}})]

    tb_peer.respond(responder)
    results = []
    rid = client.request_attributes(
        shared_keys=["ok"], callback=lambda r, e=None: results.append((r, e)), timeout=5
    )
    assert results == [({"shared": {"ok": 1}}, None)]
    assert dropped(caplog, f"attributes/response/{rid}"), "the junk was not logged"
    assert client.send_telemetry({"alive": 1}).wait(5) is True


@pytest.mark.parametrize("junk", JUNK)
def test_junk_rpc_response_dropped_real_answer_wins(client, tb_peer, caplog, junk):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")

    def responder(msg):
        if not msg.topic.startswith("v1/devices/me/rpc/request/"):
            return None
        rid = msg.topic.rsplit("/", 1)[1]
        topic = f"v1/devices/me/rpc/response/{rid}"
        return [(topic, junk), (topic, {"real": True})]

    tb_peer.respond(responder)
    results = []
    rid = client.send_rpc_call("m", {}, lambda i, r, e: results.append((i, r, e)), timeout=5)
    assert results == [(rid, {"real": True}, None)]
    assert dropped(caplog, f"rpc/response/{rid}"), "the junk was not logged"


@pytest.mark.parametrize(
    "topic",
    [
        "v1/devices/me/attributes",
        "v1/devices/me/rpc/request/5",
        "v1/devices/me/attributes/response/1",
        "v1/devices/me/rpc/response/1",
    ],
)
@pytest.mark.parametrize("junk", JUNK)
def test_junk_on_every_subscribed_topic_is_logged(client, tb_peer, caplog, topic, junk):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")
    got = []
    client.subscribe_to_attribute("end", lambda r, *a: got.append(r))
    client.set_server_side_rpc_request_handler(lambda *a: got.append(a))
    tb_peer.publish(topic, junk)
    tb_peer.push_attributes({"end": 1})
    pump_until(client, lambda: got, what="the update after the junk")
    assert got == [{"end": 1}]
    assert len(dropped(caplog, topic)) == 1, [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    "topic",
    [
        "v1/devices/me/rpc/request/" + "9" * 30,
        "v1/devices/me/attributes/response/" + "1" * 30,
        "v1/devices/me/rpc/response/" + "1" * 30,
        "v1/devices/me/rpc/request/4294967296",  # one past u32
        "v1/devices/me/rpc/response/00000000001",
    ],
)
def test_30_digit_and_overflowing_ids_dropped(client, tb_peer, caplog, topic):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")
    handled = []
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append(rid))
    tb_peer.publish(topic, {"method": "m", "params": {}})
    tb_peer.server_rpc(2, "after", {})
    pump_until(client, lambda: "2" in handled)
    assert handled == ["2"]
    assert dropped(caplog, topic)


def test_one_megabyte_attribute_push_is_delivered(client, tb_peer):
    """Valid data, just large: delivered whole, and the client goes on."""
    big = {"blob": "x" * 1_000_000, "n": 1}
    got = []
    client.subscribe_to_all_attributes(lambda r, *a: got.append(r))
    tb_peer.push_attributes(big)
    tb_peer.push_attributes({"n": 2})
    pump_until(client, lambda: len(got) >= 2, timeout=20)
    assert got[0] == big
    assert got[1] == {"n": 2}
    assert client.send_telemetry({"alive": 1}).wait(5) is True


def test_late_duplicate_answer_is_dropped_not_delivered_twice(client, tb_peer, caplog):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")

    def responder(msg):
        if not msg.topic.startswith("v1/devices/me/rpc/request/"):
            return None
        topic = "v1/devices/me/rpc/response/" + msg.topic.rsplit("/", 1)[1]
        return [(topic, {"n": 1}), (topic, {"n": 2})]

    tb_peer.respond(responder)
    calls = []
    rid = client.send_rpc_call("m", {}, lambda *a: calls.append(a), timeout=5)
    assert calls == [(rid, {"n": 1}, None)]
    pump_until(client, lambda: dropped(caplog, f"rpc/response/{rid}"), timeout=5)
    assert calls == [(rid, {"n": 1}, None)]


def test_answer_after_timeout_is_dropped(client, tb_peer, caplog):
    caplog.set_level(logging.WARNING, logger="thingsboard_sdk")
    calls = []
    rid = client.send_rpc_call("slow", {}, lambda *a: calls.append(a), timeout=0.3)
    assert len(calls) == 1 and calls[0][1] is None and isinstance(calls[0][2], TimeoutError)
    tb_peer.publish(f"v1/devices/me/rpc/response/{rid}", {"late": True})
    pump_until(client, lambda: dropped(caplog, f"rpc/response/{rid}"), timeout=5)
    assert len(calls) == 1
