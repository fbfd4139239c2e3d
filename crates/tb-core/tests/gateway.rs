//! A gateway session end to end on a fake clock: exact topics and bytes of every gateway
//! message (thingsboard-gateway.md A.2-A.10, the reference's shapes from B.1), routing of what
//! the server sends, and re-announcement after a reconnect.

#![cfg(feature = "gateway")]

mod common;

use common::{
    connect_expecting, expect_subscribe, publishes, reconnect, topics_and_payloads, DEVICE_FILTERS,
};
use serde_json::json;
use tb_core::{
    Config, Device, Error, Event, GatewayEvent, MessageId, Mode, PeerError, QoS, RequestId,
};

const Q1: QoS = QoS::AtLeastOnce;

fn gateway() -> Device {
    let mut d = Device::new(Config {
        mode: Mode::Gateway,
        ..Config::default()
    });
    let mut filters = DEVICE_FILTERS.to_vec();
    filters.extend([
        "v1/gateway/attributes",
        "v1/gateway/attributes/response",
        "v1/gateway/rpc",
    ]);
    connect_expecting(&mut d, &filters);
    d
}

fn one(d: &mut Device) -> (String, String) {
    let mut sent = publishes(d, 0);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (t, p, _) = sent.remove(0);
    (t, p)
}

#[test]
fn every_gateway_message_has_the_reference_topic_and_bytes() {
    let mut d = gateway();
    d.gw_connect_device("Boiler 7", "boiler", Q1).unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/connect".into(),
            r#"{"device":"Boiler 7","type":"boiler"}"#.into()
        )
    );
    d.gw_connect_device("Pump 2", "", Q1).unwrap();
    assert_eq!(one(&mut d).1, r#"{"device":"Pump 2","type":"default"}"#);
    d.gw_send_telemetry("Boiler 7", &json!({"temp": 71.5}), Q1)
        .unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/telemetry".into(),
            r#"{"Boiler 7":[{"temp":71.5}]}"#.into()
        )
    );
    d.gw_send_telemetry(
        "Boiler 7",
        &json!([{"ts": 1700000000000u64, "values": {"on": true}}]),
        Q1,
    )
    .unwrap();
    assert_eq!(
        one(&mut d).1,
        r#"{"Boiler 7":[{"ts":1700000000000,"values":{"on":true}}]}"#
    );
    d.gw_send_attributes("Pump 2", &json!({"model": "B-200"}), Q1)
        .unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/attributes".into(),
            r#"{"Pump 2":{"model":"B-200"}}"#.into()
        )
    );
    let r = d
        .gw_request_attributes(0, "Boiler 7", &["setpoint"], false, 5000)
        .unwrap();
    assert_eq!(r, RequestId(1));
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/attributes/request".into(),
            r#"{"keys":["setpoint"],"device":"Boiler 7","client":false,"id":1}"#.into()
        )
    );
    // The counter is shared with the device's own attribute requests, as in the reference.
    assert_eq!(
        d.request_attributes(0, &["a"], &[], 5000).unwrap(),
        RequestId(2)
    );
    publishes(&mut d, 0);
    d.gw_send_rpc_reply("Boiler 7", 0, &json!({"ok": true}), Q1)
        .unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/rpc".into(),
            r#"{"device":"Boiler 7","id":0,"data":{"ok":true}}"#.into()
        )
    );
    d.gw_claim("Pump 2", Some("s3cret"), Some(60000), Q1)
        .unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/claim".into(),
            r#"{"Pump 2":{"secretKey":"s3cret","durationMs":60000}}"#.into()
        )
    );
    d.gw_disconnect_device("Pump 2", Q1).unwrap();
    assert_eq!(
        one(&mut d),
        (
            "v1/gateway/disconnect".into(),
            r#"{"device":"Pump 2"}"#.into()
        )
    );
    assert_eq!(d.gw_devices().collect::<Vec<_>>(), ["Boiler 7"]);
}

#[test]
fn bad_arguments_are_refused_before_queueing() {
    let mut d = gateway();
    assert!(matches!(
        d.gw_connect_device("", "x", Q1),
        Err(Error::Usage(_))
    ));
    assert!(d.gw_send_telemetry("D", &json!(5), Q1).is_err());
    assert!(d.gw_send_attributes("D", &json!([1]), Q1).is_err());
    assert_eq!(d.unacknowledged(), 0);
    let mut plain = Device::new(Config::default());
    let e = plain.gw_connect_device("D", "x", Q1).unwrap_err();
    assert!(e.to_string().contains("gateway"), "{e}");
}

#[test]
fn server_messages_become_gateway_events_routed_to_subscriptions() {
    let mut d = gateway();
    let all = d.gw_subscribe_to_attribute("*", "*");
    let dev_all = d.gw_subscribe_to_attribute("Boiler 7", "*");
    let dev_key = d.gw_subscribe_to_attribute("Boiler 7", "setpoint");
    let other = d.gw_subscribe_to_attribute("Pump 2", "*");
    d.handle_publish(
        0,
        "v1/gateway/attributes",
        br#"{"device":"Boiler 7","data":{"setpoint":65}}"#,
    );
    match d.poll_gateway_event() {
        Some(GatewayEvent::AttributeUpdate {
            device,
            data,
            subscriptions,
        }) => {
            assert_eq!(device, "Boiler 7");
            assert_eq!(data["setpoint"], 65);
            assert_eq!(subscriptions, [all, dev_all, dev_key]);
        }
        other => panic!("{other:?}"),
    }
    assert!(d.gw_unsubscribe(other));
    assert!(!d.gw_unsubscribe(other));

    d.handle_publish(
        0,
        "v1/gateway/rpc",
        br#"{"device":"Boiler 7","data":{"id":3,"method":"setSetpoint","params":{"value":60}}}"#,
    );
    match d.poll_gateway_event() {
        Some(GatewayEvent::RpcRequest { device, data }) => {
            assert_eq!(device, "Boiler 7");
            assert_eq!(
                serde_json::Value::Object(data),
                json!({"id": 3, "method": "setSetpoint", "params": {"value": 60}})
            );
        }
        other => panic!("{other:?}"),
    }

    let id = d
        .gw_request_attributes(0, "Boiler 7", &["setpoint"], false, 5000)
        .unwrap();
    d.handle_publish(
        0,
        "v1/gateway/attributes/response",
        br#"{"id":1,"device":"Boiler 7","value":65}"#,
    );
    assert_eq!(
        d.poll_gateway_event(),
        Some(GatewayEvent::AttributeResponse {
            id,
            device: "Boiler 7".into(),
            result: Ok(json!({"id": 1, "device": "Boiler 7", "value": 65})),
        })
    );
    // The same id again is no longer pending: dropped, as on the device topics.
    d.handle_publish(
        0,
        "v1/gateway/attributes/response",
        br#"{"id":1,"device":"Boiler 7","value":65}"#,
    );
    assert_eq!(d.poll_gateway_event(), None);
    assert!(matches!(
        d.poll_event(),
        Some(Event::Dropped {
            reason: PeerError::UnknownRequest(1),
            ..
        })
    ));

    d.handle_publish(
        0,
        "v1/gateway/disconnect",
        br#"{"device":"Boiler 7","reason":150}"#,
    );
    assert_eq!(
        d.poll_gateway_event(),
        Some(GatewayEvent::DeviceDisconnected {
            device: "Boiler 7".into(),
            reason: Some(150),
        })
    );
}

#[test]
fn hostile_gateway_messages_are_dropped_and_named() {
    let mut d = gateway();
    for (topic, payload, want) in [
        ("v1/gateway/rpc", &b"{"[..], "not valid JSON"),
        ("v1/gateway/rpc", b"[1]", "expected a JSON object"),
        ("v1/gateway/rpc", br#"{"data":{}}"#, "\"device\""),
        (
            "v1/gateway/attributes",
            br#"{"device":"D","data":5}"#,
            "\"data\"",
        ),
        (
            "v1/gateway/attributes/response",
            br#"{"device":"D"}"#,
            "\"id\"",
        ),
        ("v1/gateway/whatever", br#"{"device":"D"}"#, "unknown topic"),
    ] {
        d.handle_publish(0, topic, payload);
        match d.poll_event() {
            Some(Event::Dropped { topic: t, reason }) => {
                assert_eq!(t, topic);
                assert!(reason.to_string().contains(want), "{reason}");
            }
            other => panic!("{topic}: {other:?}"),
        }
    }
    assert_eq!(d.poll_gateway_event(), None);
}

#[test]
fn attribute_requests_time_out_with_their_device() {
    let mut d = gateway();
    let id = d
        .gw_request_attributes(100, "D", &["a", "b"], true, 1000)
        .unwrap();
    assert_eq!(d.poll_timeout(), Some(1100));
    d.handle_timeout(1099);
    assert_eq!(d.poll_gateway_event(), None);
    d.handle_timeout(1100);
    match d.poll_gateway_event() {
        Some(GatewayEvent::AttributeResponse {
            id: got,
            device,
            result: Err(t),
        }) => {
            assert_eq!((got, device.as_str(), t.after_ms), (id, "D", 1000));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reconnect_announces_connected_sub_devices_before_resending() {
    let mut d = gateway();
    d.gw_connect_device("A", "t1", Q1).unwrap();
    d.gw_connect_device("B", "t2", Q1).unwrap();
    d.gw_connect_device("C", "t3", Q1).unwrap();
    d.gw_disconnect_device("B", Q1).unwrap();
    let first = publishes(&mut d, 0);
    for (_, _, id) in &first {
        d.handle_puback(*id);
    }
    let t = d.gw_send_telemetry("A", &json!({"x": 1}), Q1).unwrap();
    publishes(&mut d, 0); // written, never acknowledged
    reconnect(&mut d);
    let again = publishes(&mut d, 0);
    let seen = topics_and_payloads(&again);
    assert_eq!(
        seen,
        [
            ("v1/gateway/connect", r#"{"device":"A","type":"t1"}"#),
            ("v1/gateway/connect", r#"{"device":"C","type":"t3"}"#),
            ("v1/gateway/telemetry", r#"{"A":[{"x":1}]}"#),
        ]
    );
    // Announcements are the gateway's own (id 0): acknowledging them completes nothing else.
    assert_eq!(again[0].2, MessageId(0));
    assert!(d.is_pending(t));
    for (_, _, id) in &again {
        d.handle_puback(*id);
    }
    assert!(!d.is_pending(t));
    assert_eq!(d.unacknowledged(), 0);
    assert_eq!(d.unacknowledged_qos1(), 0);
}

#[test]
fn the_brokers_echo_of_gateway_uploads_is_dropped() {
    let mut d = gateway();
    d.gw_send_attributes("D", &json!({"a": 1}), Q1).unwrap();
    d.gw_send_rpc_reply("D", 1, &json!("ok"), Q1).unwrap();
    let sent = publishes(&mut d, 0);
    for (topic, payload, _) in &sent {
        d.handle_publish(5, topic, payload.as_bytes());
        assert!(matches!(
            d.poll_event(),
            Some(Event::Dropped {
                reason: PeerError::Echo,
                ..
            })
        ));
    }
    assert_eq!(d.poll_gateway_event(), None);
}

#[test]
fn big_sub_device_telemetry_is_split_under_one_id() {
    let mut d = gateway();
    let mut m = serde_json::Map::new();
    for i in 0..40 {
        m.insert(format!("k{i:02}"), json!("v".repeat(3000)));
    }
    let id = d
        .gw_send_telemetry("Dev", &serde_json::Value::Object(m.clone()), Q1)
        .unwrap();
    let sent = publishes(&mut d, 0);
    assert!(sent.len() >= 2, "{}", sent.len());
    let mut got = serde_json::Map::new();
    for (topic, payload, pid) in &sent {
        assert_eq!(topic, "v1/gateway/telemetry");
        assert_eq!(*pid, id);
        // spec 2.5: remaining length = 2 + topic + packet id + payload.
        assert!(2 + topic.len() + 2 + payload.len() <= 65536);
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        for entry in v["Dev"].as_array().unwrap() {
            got.extend(entry.as_object().unwrap().clone());
        }
    }
    assert_eq!(got, m);
    for (i, (_, _, pid)) in sent.iter().enumerate() {
        assert!(d.is_pending(id), "part {i}");
        d.handle_puback(*pid);
    }
    assert!(!d.is_pending(id));
    assert_eq!(d.unacknowledged_qos1(), 0);
}

#[test]
fn after_a_reconnect_the_limits_request_goes_first_then_the_announcements_once() {
    let mut d = Device::new(Config {
        mode: Mode::Gateway,
        ask_session_limits: true,
        ..Config::default()
    });
    d.handle_connected();
    expect_subscribe(&mut d);
    let limits = (
        "v1/devices/me/rpc/request/0".to_string(),
        r#"{"method":"getSessionLimits","params":{"timeout":5000}}"#.to_string(),
    );
    let first = publishes(&mut d, 0);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].0.clone(), first[0].1.clone()), limits);
    d.gw_connect_device("A", "t1", Q1).unwrap();
    d.gw_connect_device("C", "t3", Q1).unwrap();
    for (_, _, id) in publishes(&mut d, 0) {
        d.handle_puback(id);
    }
    // The limits request was never answered nor acknowledged: it is replaced, not doubled.
    reconnect(&mut d);
    let again = publishes(&mut d, 0);
    let seen = topics_and_payloads(&again);
    assert_eq!(
        seen,
        [
            (limits.0.as_str(), limits.1.as_str()),
            ("v1/gateway/connect", r#"{"device":"A","type":"t1"}"#),
            ("v1/gateway/connect", r#"{"device":"C","type":"t3"}"#),
        ]
    );
    assert_eq!(d.unacknowledged_qos1(), 3);
    for (_, _, id) in &again {
        d.handle_puback(*id);
    }
    assert_eq!(d.unacknowledged_qos1(), 0);
}
