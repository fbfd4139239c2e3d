"""Server-side RPC (handler, reply) and client-side RPC (send_rpc_call)."""

from __future__ import annotations

import time

from conftest import RPC_REQUEST, compact, pump_until


def is_timeout(exc) -> bool:
    return exc is TimeoutError or isinstance(exc, TimeoutError)


# -- server-side RPC ------------------------------------------------------------------------------


def test_server_rpc_handler_gets_str_id_and_decoded_body(client, tb_peer):
    got = []
    client.set_server_side_rpc_request_handler(lambda rid, body: got.append((rid, body)))
    tb_peer.server_rpc(0, "setLed", {"on": True})
    tb_peer.server_rpc(41, "getTemp", "celsius")
    pump_until(client, lambda: len(got) == 2)
    assert got == [
        ("0", {"method": "setLed", "params": {"on": True}}),
        ("41", {"method": "getTemp", "params": "celsius"}),
    ]
    assert all(type(rid) is str for rid, _ in got)


def test_only_the_most_recent_handler_is_kept(client, tb_peer):
    first, second = [], []
    client.set_server_side_rpc_request_handler(lambda rid, body: first.append(rid))
    client.set_server_side_rpc_request_handler(lambda rid, body: second.append(rid))
    tb_peer.server_rpc(5, "m", None)
    pump_until(client, lambda: second)
    assert first == [] and second == ["5"]


def test_rpc_reply_from_handler_str_id(client, tb_peer):
    def handler(request_id, request_body):
        client.send_rpc_reply(request_id, {"status": "success"})

    client.set_server_side_rpc_request_handler(handler)
    mark = tb_peer.mark()
    tb_peer.server_rpc(17, "doIt", {})
    reply = None
    deadline = time.monotonic() + 10
    while reply is None and time.monotonic() < deadline:
        client.wait_for_msg(timeout=0.2)
        found = tb_peer.matching("v1/devices/me/rpc/response/17", since=mark)
        reply = found[0] if found else None
    assert reply is not None
    assert reply.payload == b'{"status":"success"}'
    assert reply.qos == 1


def test_rpc_reply_with_int_id_and_string_response(client, tb_peer):
    mark = tb_peer.mark()
    handle = client.send_rpc_reply(5, "ok")
    msg = tb_peer.wait_for("v1/devices/me/rpc/response/5", since=mark)
    assert msg.payload == b'"ok"'
    assert handle.wait(5) is True


def test_rpc_reply_qos0(make_client, tb_peer):
    client = make_client(quality_of_service=0)
    mark = tb_peer.mark()
    client.send_rpc_reply("9", {"r": 1})
    assert tb_peer.wait_for("v1/devices/me/rpc/response/9", since=mark).qos == 0


def test_echoed_rpc_reply_is_a_no_op(client, tb_peer, caplog):
    """The device receives its own rpc/response/N back from mosquitto; nothing must happen."""
    rpc_calls = []
    tb_peer.answer_rpc(lambda method, params: {"pong": params})
    client.send_rpc_reply("1", {"not": "a client rpc answer"})
    client.send_rpc_reply("2", {"x": 1})
    # a later client RPC with id 1 must get the peer's answer, not the echo of our reply
    client.send_rpc_call("ping", 1, lambda i, r, e=None: rpc_calls.append((i, r, e)))
    assert rpc_calls == [(1, {"pong": 1}, None)]
    assert client.send_telemetry({"still": "ok"}).wait(5)


def test_own_client_rpc_request_echo_does_not_reach_server_handler(client, tb_peer):
    """mosquitto echoes rpc/request/N (the client RPC) back to the device."""
    handled = []
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append((rid, body)))
    tb_peer.answer_rpc({"ok": 1})
    results = []
    client.send_rpc_call("clientSide", {"a": 1}, lambda i, r, e=None: results.append(r))
    assert results == [{"ok": 1}]
    tb_peer.server_rpc(77, "fromServer", {})
    pump_until(client, lambda: any(rid == "77" for rid, _ in handled))
    assert [rid for rid, _ in handled] == ["77"]


# -- client-side RPC ------------------------------------------------------------------------------


def test_send_rpc_call_payload_id_and_callback(client, tb_peer):
    tb_peer.answer_rpc(lambda method, params: {"method": method, "time": 1234})
    results = []
    mark = tb_peer.mark()
    rid = client.send_rpc_call(
        "getTime", {"tz": "UTC"}, lambda i, resp, exc=None: results.append((i, resp, exc))
    )
    assert results == [(1, {"method": "getTime", "time": 1234}, None)]
    assert type(results[0][0]) is int
    assert rid in (1, None)
    req = tb_peer.wait_for(RPC_REQUEST, since=mark)
    assert req.topic == "v1/devices/me/rpc/request/1"
    assert req.payload == compact({"method": "getTime", "params": {"tz": "UTC"}})
    assert req.qos == 1
    client.send_rpc_call("again", None, lambda i, resp, exc=None: results.append((i, resp, exc)))
    assert results[1] == (2, {"method": "again", "time": 1234}, None)
    req2 = tb_peer.wait_for(RPC_REQUEST, since=req.seq + 1)
    assert req2.topic == "v1/devices/me/rpc/request/2"
    assert req2.payload == b'{"method":"again","params":null}'


def test_rpc_and_attribute_counters_are_independent(client, tb_peer):
    tb_peer.answer_rpc({"r": 1})
    tb_peer.answer_attribute_requests({})
    ids = []
    client.request_attributes(client_keys=["a"], callback=lambda r, e=None: None)
    client.send_rpc_call("m", {}, lambda i, r, e=None: ids.append(i))
    assert ids == [1]


def test_send_rpc_call_timeout(client, tb_peer):
    results = []
    t0 = time.monotonic()
    client.send_rpc_call(
        "noAnswer", {}, lambda i, r, e=None: results.append((i, r, e)), timeout=0.5
    )
    assert 0.4 <= time.monotonic() - t0 < 5
    assert len(results) == 1
    i, r, e = results[0]
    assert i == 1 and r is None and is_timeout(e)


def test_send_rpc_call_waits_for_its_own_id(client, tb_peer):
    handled = []
    client.set_server_side_rpc_request_handler(lambda rid, body: handled.append(rid))

    def responder(msg):
        m = RPC_REQUEST.fullmatch(msg.topic)
        if not m:
            return None
        n = int(m.group(1))
        return [
            ("v1/devices/me/rpc/request/900", {"method": "serverSide", "params": {}}),
            (f"v1/devices/me/rpc/response/{n + 50}", {"wrong": True}),
            (f"v1/devices/me/rpc/response/{n}", {"right": n}),
        ]

    tb_peer.respond(responder)
    results = []
    client.send_rpc_call("m", {}, lambda i, r, e=None: results.append((i, r, e)))
    assert results == [(1, {"right": 1}, None)]
    assert "900" in handled
