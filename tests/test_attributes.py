"""request_attributes, attribute subscriptions, callback thread and callback exceptions."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from conftest import ATTR_REQUEST, pump_until

ATTRIBUTES = "v1/devices/me/attributes"


def is_timeout(exc) -> bool:
    return exc is TimeoutError or isinstance(exc, TimeoutError)


# -- request_attributes --------------------------------------------------------------------------


def test_request_attributes_payload_ids_and_callback(client, tb_peer):
    tb_peer.answer_attribute_requests(
        lambda req: {"client": {"a": 1, "b": "x"}, "shared": {"c": True}}
    )
    results = []
    mark = tb_peer.mark()
    client.request_attributes(
        client_keys=["a", "b"],
        shared_keys=["c"],
        callback=lambda result, exc=None: results.append((result, exc)),
    )
    assert results == [({"client": {"a": 1, "b": "x"}, "shared": {"c": True}}, None)]
    req = tb_peer.wait_for(ATTR_REQUEST, since=mark)
    assert req.topic == "v1/devices/me/attributes/request/1"
    assert req.payload == b'{"clientKeys":"a,b","sharedKeys":"c"}'
    assert req.qos == 1

    client.request_attributes(shared_keys=["c"], callback=lambda r, e=None: results.append((r, e)))
    req2 = tb_peer.wait_for(ATTR_REQUEST, since=req.seq + 1)
    assert req2.topic == "v1/devices/me/attributes/request/2"
    assert req2.payload == b'{"sharedKeys":"c"}'
    assert len(results) == 2


def test_request_attributes_only_given_keys_present(client, tb_peer):
    tb_peer.answer_attribute_requests({})
    mark = tb_peer.mark()
    client.request_attributes(client_keys=["atr1", "atr2"], callback=lambda r, e=None: None)
    client.request_attributes(callback=lambda r, e=None: None)
    reqs = tb_peer.wait_count(ATTR_REQUEST, 2, since=mark)
    assert reqs[0].payload == b'{"clientKeys":"atr1,atr2"}'
    assert reqs[1].payload == b"{}"


def test_request_attributes_returns_request_id(client, tb_peer):
    tb_peer.answer_attribute_requests({})
    assert client.request_attributes(shared_keys=["x"], callback=lambda r, e=None: None) == 1
    assert client.request_attributes(shared_keys=["x"], callback=lambda r, e=None: None) == 2


def test_request_attributes_callback_tuple_gets_its_extra_argument(client, tb_peer):
    # The reference also accepts (callback, extra) and calls callback(result, exc, extra).
    tb_peer.answer_attribute_requests({"shared": {"c": 1}})
    results = []
    client.request_attributes(
        shared_keys=["c"], callback=(lambda r, e, extra: results.append((r, e, extra)), "tag")
    )
    assert results == [({"shared": {"c": 1}}, None, "tag")]


def test_request_attributes_callback_tuple_gets_the_timeout_too(make_client, tb_peer):
    client = make_client(request_timeout=0.3)
    results = []
    client.request_attributes(
        shared_keys=["c"], callback=(lambda r, e, extra: results.append((r, e, extra)), 7)
    )
    assert len(results) == 1 and results[0][0] is None and results[0][2] == 7
    assert isinstance(results[0][1], TimeoutError)


def test_request_attributes_empty_response(client, tb_peer):
    tb_peer.answer_attribute_requests({})
    results = []
    client.request_attributes(client_keys=["missing"], callback=lambda r, e=None: results.append(r))
    assert results == [{}]


def test_request_attributes_timeout_calls_back_with_timeout_error(client, tb_peer):
    results = []
    t0 = time.monotonic()
    client.request_attributes(
        shared_keys=["never"], callback=lambda r, e=None: results.append((r, e)), timeout=0.5
    )
    elapsed = time.monotonic() - t0
    assert 0.4 <= elapsed < 5, elapsed
    assert len(results) == 1
    result, exc = results[0]
    assert result is None and is_timeout(exc)


def test_request_timeout_constructor_extra(make_client, tb_peer):
    client = make_client(request_timeout=0.5)
    results = []
    t0 = time.monotonic()
    client.request_attributes(client_keys=["a"], callback=lambda r, e=None: results.append((r, e)))
    assert time.monotonic() - t0 < 5
    assert results and results[0][0] is None and is_timeout(results[0][1])


def test_late_response_after_timeout_is_dropped(client, tb_peer):
    results = []
    client.request_attributes(
        shared_keys=["x"], callback=lambda r, e=None: results.append((r, e)), timeout=0.3
    )
    assert len(results) == 1
    tb_peer.publish("v1/devices/me/attributes/response/1", {"shared": {"x": 1}})
    got = []
    client.subscribe_to_attribute("sync", lambda r, *a: got.append(r))
    tb_peer.push_attributes({"sync": 1})
    pump_until(client, lambda: got)
    assert len(results) == 1  # the late answer did not call the callback again


def test_request_attributes_waits_for_its_own_response_dispatching_others(client, tb_peer):
    """Other messages arriving first are dispatched; only the matching id ends the wait."""
    updates = []
    client.subscribe_to_all_attributes(lambda r, *a: updates.append(r))

    def responder(msg):
        m = ATTR_REQUEST.fullmatch(msg.topic)
        if not m:
            return None
        n = int(m.group(1))
        return [
            (ATTRIBUTES, {"pushed": n}),
            (f"v1/devices/me/attributes/response/{n + 100}", {"shared": {"wrong": 1}}),
            (f"v1/devices/me/attributes/response/{n}", {"shared": {"right": n}}),
        ]

    tb_peer.respond(responder)
    results = []
    client.request_attributes(shared_keys=["right"], callback=lambda r, e=None: results.append(r))
    assert results == [{"shared": {"right": 1}}]
    assert updates == [{"pushed": 1}]


# -- subscriptions --------------------------------------------------------------------------------


def test_subscription_ids_count_from_one(client):
    assert client.subscribe_to_attribute("a", lambda r, *a: None) == 1
    assert client.subscribe_to_attribute("b", lambda r, *a: None) == 2
    assert client.subscribe_to_all_attributes(lambda r, *a: None) == 3
    assert client.subscribe_to_attribute("a", lambda r, *a: None) == 4


def test_subscriptions_fire_by_key_with_whole_update(client, tb_peer):
    calls = {"a": [], "b": [], "all": []}
    client.subscribe_to_attribute("a", lambda r, *args: calls["a"].append(r))
    client.subscribe_to_attribute("b", lambda r, *args: calls["b"].append(r))
    client.subscribe_to_all_attributes(lambda r, *args: calls["all"].append(r))
    tb_peer.push_attributes({"a": 1, "other": 2})
    pump_until(client, lambda: calls["all"])
    assert calls == {"a": [{"a": 1, "other": 2}], "b": [], "all": [{"a": 1, "other": 2}]}


def test_subscription_callback_accepts_result_and_args(client, tb_peer):
    seen = []

    def callback(result, *args):
        seen.append((result, args))

    client.subscribe_to_attribute("frequency", callback)
    tb_peer.push_attributes({"frequency": 10})
    pump_until(client, lambda: seen)
    assert seen[0][0] == {"frequency": 10}


def test_unsubscribe_and_unknown_id(client, tb_peer):
    a, everything, sync = [], [], []
    sid_a = client.subscribe_to_attribute("a", lambda r, *x: a.append(r))
    sid_all = client.subscribe_to_all_attributes(lambda r, *x: everything.append(r))
    client.subscribe_to_attribute("sync", lambda r, *x: sync.append(r))
    client.unsubscribe_from_attribute(sid_a)
    client.unsubscribe_from_attribute(999)  # unknown: no-op
    tb_peer.push_attributes({"a": 1})
    tb_peer.push_attributes({"sync": 1})
    pump_until(client, lambda: sync)
    assert a == [] and everything == [{"a": 1}, {"sync": 1}]
    client.unsubscribe_from_attribute(sid_all)
    tb_peer.push_attributes({"a": 2})
    tb_peer.push_attributes({"sync": 2})
    pump_until(client, lambda: len(sync) == 2)
    assert a == [] and len(everything) == 2


@pytest.mark.parametrize(
    "clear",
    [
        # reference: unsubscribe_from_attribute("*") empties the subscription dict
        pytest.param(lambda c: c.unsubscribe_from_attribute("*"), id="unsubscribe-star"),
        pytest.param(lambda c: c.clean_device_sub_dict(), id="clean_device_sub_dict"),
    ],
)
def test_clearing_removes_every_attribute_subscription(client, tb_peer, clear):
    a = []
    client.subscribe_to_attribute("a", lambda r, *x: a.append(r))
    client.subscribe_to_all_attributes(lambda r, *x: a.append(r))
    clear(client)
    sync = []
    client.subscribe_to_attribute("sync", lambda r, *x: sync.append(r))
    tb_peer.push_attributes({"a": 1})
    tb_peer.push_attributes({"sync": 1})
    pump_until(client, lambda: sync)
    assert a == []


def test_subscribe_makes_no_mqtt_traffic(client, tb_peer):
    mark = tb_peer.mark()
    client.subscribe_to_attribute("k", lambda r, *a: None)
    before = tb_peer.barrier(client)
    assert [m for m in before[mark:]] == []


def test_own_attribute_publish_echo_is_not_an_update(client, tb_peer):
    """mosquitto sends the device its own v1/devices/me/attributes publish back."""
    updates = []
    client.subscribe_to_all_attributes(lambda r, *a: updates.append(r))
    mark = tb_peer.mark()
    client.send_attributes({"mine": 1})
    tb_peer.wait_for(ATTRIBUTES, since=mark)
    tb_peer.push_attributes({"theirs": 2})
    pump_until(client, lambda: {"theirs": 2} in updates)
    assert {"mine": 1} not in updates


# -- check_for_msg / wait_for_msg, callback thread, callback errors -----------------------------


def test_check_for_msg_returns_at_once_when_idle(client):
    t0 = time.monotonic()
    for _ in range(20):
        client.check_for_msg()
    assert time.monotonic() - t0 < 0.5


def test_check_for_msg_dispatches(client, tb_peer):
    got = []
    client.subscribe_to_attribute("x", lambda r, *a: got.append(r))
    tb_peer.push_attributes({"x": 1})
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        client.check_for_msg()
        time.sleep(0.01)
    assert got == [{"x": 1}]


def test_wait_for_msg_timeout_returns_false(client):
    t0 = time.monotonic()
    assert client.wait_for_msg(timeout=0.3) is False
    assert 0.2 <= time.monotonic() - t0 < 3


def test_wait_for_msg_blocks_until_a_message(client, tb_peer):
    got = []
    client.subscribe_to_attribute("w", lambda r, *a: got.append(r))
    timer = threading.Timer(0.3, tb_peer.push_attributes, args=({"w": 1},))
    timer.start()
    try:
        assert client.wait_for_msg() in (True, None)
        if not got:  # an echo or similar may have been the one message processed
            pump_until(client, lambda: got)
        assert got == [{"w": 1}]
    finally:
        timer.cancel()


def test_callbacks_run_on_the_calling_thread(client, tb_peer):
    idents = {}
    tb_peer.answer_attribute_requests({"shared": {}})
    tb_peer.answer_rpc({"ok": True})
    client.subscribe_to_attribute(
        "t", lambda r, *a: idents.setdefault("attr", threading.get_ident())
    )
    client.set_server_side_rpc_request_handler(
        lambda rid, body: idents.setdefault("server_rpc", threading.get_ident())
    )

    def work():
        idents["worker"] = threading.get_ident()
        client.request_attributes(
            shared_keys=["t"],
            callback=lambda r, e=None: idents.setdefault("req", threading.get_ident()),
        )
        client.send_rpc_call(
            "m", {}, lambda i, r, e=None: idents.setdefault("rpc", threading.get_ident())
        )
        tb_peer.push_attributes({"t": 1})
        tb_peer.server_rpc(3, "x", {})
        pump_until(client, lambda: "attr" in idents and "server_rpc" in idents)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    w = idents.pop("worker")
    assert idents == {"attr": w, "server_rpc": w, "req": w, "rpc": w}
    assert w != threading.get_ident()


def test_no_callback_runs_without_a_call(client, tb_peer):
    got = []
    client.subscribe_to_attribute("q", lambda r, *a: got.append(r))
    tb_peer.push_attributes({"q": 1})
    tb_peer.barrier(client)  # the update has reached the broker and the client's socket
    assert got == []  # nobody called check_for_msg/wait_for_msg yet
    pump_until(client, lambda: got)


def test_exception_in_callback_is_logged_and_next_message_processed(client, tb_peer, caplog):
    caplog.set_level(logging.DEBUG, logger="thingsboard_sdk")
    calls = []

    def bad(result, *args):
        calls.append(result)
        raise RuntimeError("boom-in-callback")

    client.subscribe_to_attribute("k", bad)
    tb_peer.push_attributes({"k": 1})
    tb_peer.push_attributes({"k": 2})
    pump_until(client, lambda: len(calls) == 2)
    assert calls == [{"k": 1}, {"k": 2}]
    records = [
        r
        for r in caplog.records
        if r.name.startswith("thingsboard_sdk")
        and "boom-in-callback"
        in (
            r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        )
    ]
    assert records, caplog.text
    assert any(r.exc_info for r in records) or "Traceback" in caplog.text
    # the client still works
    h = client.send_telemetry({"after": 1})
    assert h.wait(5)
