//! Drives a `Device` through whole exchanges on a fake clock, checking exact topics and bytes.

mod common;

use common::{connect_expecting, expect_subscribe, publishes, DEVICE_FILTERS};
use serde_json::json;
use tb_core::{
    Config, Device, Error, Event, PeerError, ProvisionOutcome, QoS, RequestId, SubscriptionId,
    Transmit,
};

fn connected(cfg: Config) -> Device {
    let mut d = Device::new(cfg);
    let qos = connect_expecting(&mut d, &DEVICE_FILTERS);
    assert_eq!(qos, d.config().qos);
    d
}

#[test]
fn telemetry_is_compact_json_on_the_telemetry_topic() {
    let mut d = connected(Config::default());
    d.send_telemetry(&json!({"temperature": 25.5, "humidity": 60}))
        .unwrap();
    let sent = publishes(&mut d, 0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "v1/devices/me/telemetry");
    assert_eq!(sent[0].1, r#"{"temperature":25.5,"humidity":60}"#);
}

#[test]
fn nothing_is_sent_while_disconnected_and_everything_after_connack() {
    let mut d = Device::new(Config::default());
    d.send_attributes(&json!({"a": 1})).unwrap();
    assert!(d.poll_transmit(0).is_none());
    d.handle_connected();
    expect_subscribe(&mut d);
    let sent = publishes(&mut d, 0);
    assert_eq!(sent[0].0, "v1/devices/me/attributes");
}

#[test]
fn unacknowledged_qos1_messages_are_resent_in_order_after_reconnect() {
    let mut d = connected(Config::default());
    for i in 0..5 {
        d.send_telemetry(&json!({ "i": i })).unwrap();
    }
    let first = publishes(&mut d, 0);
    assert_eq!(first.len(), 5);
    assert!(d.handle_puback(first[0].2));
    assert!(d.handle_puback(first[2].2));
    assert!(
        !d.handle_puback(first[2].2),
        "a second PUBACK is not counted"
    );
    d.handle_disconnected();
    d.send_telemetry(&json!({"i": 5})).unwrap();
    assert!(d.poll_transmit(0).is_none());
    d.handle_connected();
    expect_subscribe(&mut d);
    let again: Vec<String> = publishes(&mut d, 0).into_iter().map(|p| p.1).collect();
    assert_eq!(
        again,
        [r#"{"i":1}"#, r#"{"i":3}"#, r#"{"i":4}"#, r#"{"i":5}"#]
    );
    assert_eq!(d.unacknowledged_qos1(), 4);
}

#[test]
fn qos0_messages_are_not_held_for_a_puback() {
    let mut d = connected(Config {
        qos: QoS::AtMostOnce,
        ..Config::default()
    });
    d.send_telemetry(&json!({"a": 1})).unwrap();
    let sent = publishes(&mut d, 0);
    assert_eq!(sent.len(), 1);
    assert_eq!(d.unacknowledged_qos1(), 0);
    // Held until the host reports it written.
    assert_eq!(d.unacknowledged(), 1);
    assert!(d.handle_puback(sent[0].2));
    assert_eq!(d.unacknowledged(), 0);
}

#[test]
fn queue_bound_refuses_without_queueing() {
    let mut d = Device::new(Config {
        max_queued: 2,
        ..Config::default()
    });
    d.send_telemetry(&json!({"a": 1})).unwrap();
    d.send_telemetry(&json!({"a": 2})).unwrap();
    let err = d.send_telemetry(&json!({"a": 3})).unwrap_err();
    assert!(matches!(err, Error::Capacity(_)));
    assert!(err.to_string().contains("queue is full"));
    assert_eq!(d.unacknowledged(), 2);
}

#[test]
fn oversize_publish_is_refused_before_queueing() {
    let mut d = Device::new(Config::default());
    let big = "x".repeat(70_000);
    let err = d.send_telemetry(&json!({ "blob": big })).unwrap_err();
    assert!(err.to_string().contains("at most 65536"), "{err}");
    assert_eq!(d.unacknowledged(), 0);
    let fits = "x".repeat(65_000);
    d.send_telemetry(&json!({ "blob": fits })).unwrap();
}

#[test]
fn attribute_request_ids_count_from_one_and_responses_match_them() {
    let mut d = connected(Config::default());
    let a = d
        .request_attributes(0, &["atr1", "atr2"], &[], 10_000)
        .unwrap();
    let b = d.request_attributes(0, &[], &["s"], 10_000).unwrap();
    assert_eq!((a, b), (RequestId(1), RequestId(2)));
    let sent = publishes(&mut d, 0);
    assert_eq!(sent[0].0, "v1/devices/me/attributes/request/1");
    assert_eq!(sent[0].1, r#"{"clientKeys":"atr1,atr2"}"#);
    assert_eq!(sent[1].0, "v1/devices/me/attributes/request/2");
    d.handle_publish(
        1,
        "v1/devices/me/attributes/response/2",
        br#"{"shared":{"s":1}}"#,
    );
    assert_eq!(
        d.poll_event(),
        Some(Event::AttributeResponse {
            id: RequestId(2),
            result: Ok(json!({"shared": {"s": 1}}))
        })
    );
    assert_eq!(d.poll_timeout(), Some(10_000));
    d.handle_timeout(9_999);
    assert_eq!(d.poll_event(), None);
    d.handle_timeout(10_000);
    match d.poll_event() {
        Some(Event::AttributeResponse { id, result: Err(t) }) => {
            assert_eq!(id, RequestId(1));
            assert_eq!(t.after_ms, 10_000);
        }
        other => panic!("expected timeout, got {other:?}"),
    }
    // A late answer to a timed-out request is dropped.
    d.handle_publish(2, "v1/devices/me/attributes/response/1", b"{}");
    assert!(matches!(
        d.poll_event(),
        Some(Event::Dropped {
            reason: PeerError::UnknownRequest(1),
            ..
        })
    ));
}

#[test]
fn client_rpc_round_trip() {
    let mut d = connected(Config::default());
    let id = d.send_rpc_call(0, "getTime", &json!({}), 10_000).unwrap();
    assert_eq!(id, RequestId(1));
    let sent = publishes(&mut d, 0);
    assert_eq!(sent[0].0, "v1/devices/me/rpc/request/1");
    assert_eq!(sent[0].1, r#"{"method":"getTime","params":{}}"#);
    // mosquitto echoes the request back on rpc/request/1: not a server RPC.
    d.handle_publish(1, "v1/devices/me/rpc/request/1", sent[0].1.as_bytes());
    assert!(matches!(
        d.poll_event(),
        Some(Event::Dropped {
            reason: PeerError::Echo,
            ..
        })
    ));
    d.handle_publish(2, "v1/devices/me/rpc/response/1", br#"{"time":5}"#);
    assert_eq!(
        d.poll_event(),
        Some(Event::RpcResponse {
            id: RequestId(1),
            result: Ok(json!({"time": 5}))
        })
    );
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn server_rpc_request_id_is_text_and_reply_reuses_it() {
    let mut d = connected(Config::default());
    d.handle_publish(
        0,
        "v1/devices/me/rpc/request/0",
        br#"{"method":"setLed","params":{"on":true}}"#,
    );
    assert_eq!(
        d.poll_event(),
        Some(Event::RpcRequest {
            id: "0".into(),
            body: json!({"method": "setLed", "params": {"on": true}})
        })
    );
    d.send_rpc_reply("0", &json!("ok")).unwrap();
    let sent = publishes(&mut d, 0);
    assert_eq!(sent[0].0, "v1/devices/me/rpc/response/0");
    assert_eq!(sent[0].1, r#""ok""#);
    // The echo of the reply is dropped, not taken for a client-RPC response.
    d.handle_publish(1, "v1/devices/me/rpc/response/0", br#""ok""#);
    assert!(matches!(
        d.poll_event(),
        Some(Event::Dropped {
            reason: PeerError::Echo,
            ..
        })
    ));
    assert!(d.send_rpc_reply("1/2", &json!(1)).is_err());
    assert!(d.send_rpc_reply("+", &json!(1)).is_err());
    assert_eq!(d.unacknowledged(), 1);
}

#[test]
fn attribute_updates_name_matching_subscriptions_in_reference_order() {
    let mut d = connected(Config::default());
    let freq = d.subscribe_to_attribute("frequency");
    let all = d.subscribe_to_attribute("*");
    let other = d.subscribe_to_attribute("other");
    assert_eq!(
        (freq, all, other),
        (SubscriptionId(1), SubscriptionId(2), SubscriptionId(3))
    );
    d.handle_publish(0, "v1/devices/me/attributes", br#"{"frequency":5,"x":1}"#);
    match d.poll_event() {
        Some(Event::AttributeUpdate {
            data,
            subscriptions,
        }) => {
            assert_eq!(
                serde_json::Value::Object(data),
                json!({"frequency": 5, "x": 1})
            );
            assert_eq!(subscriptions, vec![all, freq]);
        }
        other => panic!("{other:?}"),
    }
    assert!(d.unsubscribe_from_attribute(all));
    assert!(!d.unsubscribe_from_attribute(SubscriptionId(99)));
    d.clear_subscriptions();
    d.handle_publish(0, "v1/devices/me/attributes", br#"{"frequency":6}"#);
    assert!(matches!(
        d.poll_event(),
        Some(Event::AttributeUpdate { subscriptions, .. }) if subscriptions.is_empty()
    ));
}

#[test]
fn own_attribute_publish_echo_is_dropped_once_and_expires() {
    let mut d = connected(Config::default());
    d.send_attributes(&json!({"model": "X"})).unwrap();
    publishes(&mut d, 100);
    d.handle_publish(200, "v1/devices/me/attributes", br#"{"model":"X"}"#);
    assert!(matches!(
        d.poll_event(),
        Some(Event::Dropped {
            reason: PeerError::Echo,
            ..
        })
    ));
    // A second identical push is a real update.
    d.handle_publish(300, "v1/devices/me/attributes", br#"{"model":"X"}"#);
    assert!(matches!(
        d.poll_event(),
        Some(Event::AttributeUpdate { .. })
    ));
    // After the echo window an identical push is a real update too.
    d.send_attributes(&json!({"model": "Y"})).unwrap();
    publishes(&mut d, 400);
    d.handle_publish(20_000, "v1/devices/me/attributes", br#"{"model":"Y"}"#);
    assert!(matches!(
        d.poll_event(),
        Some(Event::AttributeUpdate { .. })
    ));
}

#[test]
fn hostile_publishes_become_dropped_events() {
    let mut d = connected(Config::default());
    let cases: &[(&str, &[u8])] = &[
        ("v1/devices/me/attributes", b"{not json"),
        ("v1/devices/me/attributes", b"\xff\xfe"),
        ("v1/devices/me/attributes", b"[1,2]"),
        ("v1/devices/me/attributes", b"42"),
        ("v1/devices/me/rpc/response/abc", b"{}"),
        ("v1/devices/me/rpc/response/7", b"{}"),
        ("v1/devices/me/rpc/request/x", b"{}"),
        ("v1/devices/me/rpc/request/1", b"\"scalar\""),
        (
            "v1/devices/me/attributes/response/123456789012345678901234567890",
            b"{}",
        ),
        ("v1/devices/me/attributes/response/3", b"{}"),
        ("some/other/topic", b"{}"),
        ("", b""),
    ];
    for (topic, payload) in cases {
        d.handle_publish(0, topic, payload);
        assert!(
            matches!(d.poll_event(), Some(Event::Dropped { .. })),
            "{topic} {payload:?}"
        );
    }
    // Still works afterwards.
    d.send_telemetry(&json!({"ok": true})).unwrap();
    assert_eq!(publishes(&mut d, 0).len(), 1);
}

#[test]
fn provisioning_session_subscribes_then_publishes_the_request() {
    let mut d = Device::new(Config {
        mode: tb_core::Mode::Provisioning,
        ..Config::default()
    });
    d.provision(
        &json!({"provisionDeviceKey": "k", "provisionDeviceSecret": "s", "deviceName": null}),
    )
    .unwrap();
    d.handle_connected();
    assert_eq!(
        d.poll_transmit(0),
        Some(Transmit::Subscribe {
            filters: &["/provision/response"],
            qos: QoS::AtLeastOnce
        })
    );
    let sent = publishes(&mut d, 0);
    assert_eq!(sent[0].0, "/provision/request");
    assert_eq!(
        sent[0].1,
        r#"{"provisionDeviceKey":"k","provisionDeviceSecret":"s"}"#
    );
    d.handle_publish(
        1,
        "/provision/response",
        br#"{"credentialsValue":"t","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
    );
    assert!(matches!(
        d.poll_event(),
        Some(Event::ProvisionResponse(ProvisionOutcome::Success(_)))
    ));
}
