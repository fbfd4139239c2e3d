//! One test per item of spec/thingsboard-mqtt.md section 17 (items 1-40, 45), talking raw
//! MQTT bytes over TCP to the dev server.

mod common;

use std::time::Duration;

use common::*;
use tb_devserver::*;

const ATTR_RESP: &str = "v1/devices/me/attributes/response/";

// ---- Connection -----------------------------------------------------------------------

#[test]
fn item01_accepts_31_311_5_and_closes_other_protocols_without_connack() {
    let s = server();
    let addr = s.local_addr();
    let mut c = Client::open(addr);
    c.send(&connect_raw("MQTT", 4, "c", Some(TOKEN), None, true));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    drop(c);
    let mut c = Client::open(addr);
    c.send(&connect_raw("MQIsdp", 3, "c31", Some(TOKEN), None, true));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    c.send(&PINGREQ);
    assert_eq!(c.frame(), PINGRESP);
    drop(c);
    let mut c = Client::open(addr);
    c.send(&connect_raw("MQTT", 5, "c5", Some(TOKEN), None, true));
    // session present 0, reason 0, property length 0
    assert_eq!(c.frame(), [0x20, 3, 0, 0, 0]);
    drop(c);
    for (name, level) in [("MQTT", 3), ("MQTT", 6), ("MQIsdp", 4), ("MQXX", 4)] {
        let mut c = Client::open(addr);
        c.send(&connect_raw(name, level, "c", Some(TOKEN), None, true));
        c.expect_closed();
    }
    // MQTT 3.1 client ids are limited to 1..23 characters.
    let mut c = Client::open(addr);
    c.send(&connect_raw(
        "MQIsdp",
        3,
        &"x".repeat(24),
        Some(TOKEN),
        None,
        true,
    ));
    c.expect_closed();
    let rejected = s
        .connection_events()
        .iter()
        .filter(|e| e.kind == ConnectionEventKind::Rejected)
        .count();
    assert_eq!(rejected, 5);
}

#[test]
fn item02_known_token_connects_whatever_password_and_client_id() {
    let s = server();
    let mut c = Client::open(s.local_addr());
    c.send(&connect("anything-goes", Some(TOKEN), Some("pswd")));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    let mut c = Client::open(s.local_addr());
    c.send(&connect("", Some(TOKEN), None));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    wait_for(&s, || s.is_connected(DEVICE).unwrap().then_some(()));
}

#[test]
fn item03_unknown_token_gets_5_then_close_and_0x86_on_mqtt5() {
    let s = server();
    for pw in [None, Some("pw")] {
        let mut c = Client::open(s.local_addr());
        c.send(&connect("c", Some("WRONG"), pw));
        assert_eq!(c.frame(), [0x20, 2, 0, 5]);
        c.expect_closed();
    }
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 5, "c", Some("WRONG"), None, true));
    assert_eq!(c.frame(), [0x20, 3, 0, 0x86, 0]);
    c.expect_closed();
    let ev = s.connection_events();
    assert!(ev.iter().all(|e| e.kind == ConnectionEventKind::Refused));
    assert_eq!(ev[0].return_code, Some(5));
}

#[test]
fn item04_no_credentials_gets_2_with_client_id_and_5_without() {
    let s = server();
    let mut c = Client::open(s.local_addr());
    c.send(&connect("some-client", None, None));
    assert_eq!(c.frame(), [0x20, 2, 0, 2]);
    c.expect_closed();
    let mut c = Client::open(s.local_addr());
    c.send(&connect("", None, None));
    assert_eq!(c.frame(), [0x20, 2, 0, 5]);
    c.expect_closed();
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 5, "some-client", None, None, true));
    assert_eq!(c.frame(), [0x20, 3, 0, 0x85, 0]);
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 5, "", None, None, true));
    assert_eq!(c.frame(), [0x20, 3, 0, 0x87, 0]);
    assert_eq!(c.frame(), [0xe0, 1, 0x87]); // DISCONNECT with the same code
    c.expect_closed();
}

#[test]
fn item04_basic_credentials_match_client_id_username_password() {
    let s = server();
    s.add_device(DeviceSpec::mqtt_basic(
        "b1",
        Some("cid".into()),
        Some("user".into()),
        Some("pw".into()),
    ))
    .unwrap();
    s.add_device(DeviceSpec::mqtt_basic(
        "b2",
        Some("only-cid".into()),
        None,
        None,
    ))
    .unwrap();
    let mut c = Client::open(s.local_addr());
    c.send(&connect("cid", Some("user"), Some("pw")));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    let mut c = Client::open(s.local_addr());
    c.send(&connect("cid", Some("user"), Some("bad")));
    assert_eq!(c.frame(), [0x20, 2, 0, 5]);
    let mut c = Client::open(s.local_addr());
    c.send(&connect("only-cid", None, None));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    wait_for(&s, || {
        (s.is_connected("b1").unwrap() && s.is_connected("b2").unwrap()).then_some(())
    });
}

#[test]
fn item05_session_present_is_not_clean_session_even_on_refusal() {
    let s = server();
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 4, "c", Some(TOKEN), None, false));
    assert_eq!(c.frame(), [0x20, 2, 1, 0]);
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 4, "c", Some("WRONG"), None, false));
    assert_eq!(c.frame(), [0x20, 2, 1, 5]);
    // Nothing survives a reconnect: no attribute push without a new SUBSCRIBE.
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 4, "c", Some(TOKEN), None, false));
    assert_eq!(c.frame(), [0x20, 2, 1, 0]);
    c.send(&subscribe(1, &[("v1/devices/me/attributes", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    drop(c);
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 4, "c", Some(TOKEN), None, false));
    assert_eq!(c.frame(), [0x20, 2, 1, 0]);
    wait_for(&s, || s.is_connected(DEVICE).unwrap().then_some(()));
    s.set_shared_attributes(DEVICE, r#"{"a":1}"#).unwrap();
    c.expect_silence_then_alive(300);
}

#[test]
fn item06_provision_username_or_client_id_connects_without_checks() {
    let s = server();
    let mut c = Client::open(s.local_addr());
    c.send(&connect("any", Some("provision"), Some("whatever")));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    let mut c2 = Client::open(s.local_addr());
    c2.send(&connect("provision", None, None));
    assert_eq!(c2.frame(), [0x20, 2, 0, 0]);
    // Provisioning-only: telemetry is not accepted (PUBACK then close).
    c2.send(&publish("v1/devices/me/telemetry", 1, 7, b"{\"a\":1}"));
    assert_eq!(c2.frame(), [0x40, 2, 0, 7]);
    c2.expect_closed();
}

#[test]
fn item07_second_connection_closes_the_first() {
    let s = server();
    let mut first = Client::device(s.local_addr());
    let mut second = Client::device(s.local_addr());
    first.expect_closed();
    second.send(&PINGREQ);
    assert_eq!(second.frame(), PINGRESP);
    // MQTT 5: DISCONNECT 0x8E (Session Taken Over) before the close.
    let mut a = Client::open(s.local_addr());
    a.v5 = true;
    a.send(&connect_raw("MQTT", 5, "a", Some(TOKEN), None, true));
    assert_eq!(a.frame(), [0x20, 3, 0, 0, 0]);
    second.expect_closed();
    let mut b = Client::open(s.local_addr());
    b.send(&connect("b", Some(TOKEN), None));
    assert_eq!(b.frame(), [0x20, 2, 0, 0]);
    assert_eq!(a.frame(), [0xe0, 1, 0x8e]);
    a.expect_closed();
}

#[test]
fn item08_packets_pipelined_before_connack_are_processed_in_order() {
    let s = server();
    let mut c = Client::open(s.local_addr());
    let mut burst = connect("c", Some(TOKEN), None);
    burst.extend(subscribe(1, &[("v1/devices/me/attributes", 1)]));
    burst.extend(publish("v1/devices/me/telemetry", 1, 2, b"{\"t\":1}"));
    burst.extend(PINGREQ);
    c.send(&burst);
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    assert_eq!(c.frame(), PINGRESP);
}

#[test]
fn item09_pingreq_answered_and_idle_connections_closed_after_inactivity_timeout() {
    let s = server_with(Config {
        inactivity_timeout: Duration::from_millis(400),
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    // Keepalive is 60 s but activity keeps the session: ping every 200 ms for 800 ms.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        c.send(&PINGREQ);
        assert_eq!(c.frame(), PINGRESP);
    }
    c.expect_closed();
    wait_for(&s, || {
        s.connection_events()
            .iter()
            .any(|e| {
                e.kind == ConnectionEventKind::Disconnected && e.reason == "inactivity timeout"
            })
            .then_some(())
    });
}

#[test]
fn item10_remaining_length_over_64k_closes_without_puback() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    // topic (2 + 23) + pkid 2 + payload = exactly 65536: accepted.
    let topic = "v1/devices/me/telemetry";
    let fits = 65536 - 2 - topic.len() - 2;
    let mut payload = b"{\"k\":\"".to_vec();
    payload.resize(fits - 2, b'x');
    payload.extend_from_slice(b"\"}");
    c.send(&publish(topic, 1, 1, &payload));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    payload.insert(6, b'y');
    c.send(&publish(topic, 1, 2, &payload));
    c.expect_closed();
    // MQTT 5: DISCONNECT 0x81 first.
    let mut c = Client::open(s.local_addr());
    c.send(&connect_raw("MQTT", 5, "c", Some(TOKEN), None, true));
    assert_eq!(c.frame(), [0x20, 3, 0, 0, 0]);
    c.send(&publish_v(topic, 1, 2, &payload, true));
    assert_eq!(c.frame(), [0xe0, 1, 0x81]);
    c.expect_closed();
}

// ---- Subscriptions and QoS --------------------------------------------------------------

#[test]
fn item11_qos_capped_at_1_and_unknown_filters_get_0x80() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(
        9,
        &[
            ("v1/devices/me/attributes", 2),
            ("#", 0),
            ("v1/devices/me/rpc/request/+", 0),
        ],
    ));
    assert_eq!(c.frame(), [0x90, 5, 0, 9, 1, 0x80, 0]);
    c.expect_silence_then_alive(50);
    let mut c5 = Client::open(s.local_addr());
    c5.send(&connect_raw("MQTT", 5, "c", Some(TOKEN), None, true));
    assert_eq!(c5.frame(), [0x20, 3, 0, 0, 0]);
    c5.send(&subscribe_v(
        3,
        &[("bad/filter", 1), ("v1/devices/me/attributes", 1)],
        true,
    ));
    assert_eq!(c5.frame(), [0x90, 5, 0, 3, 0, 0x8f, 1]);
}

#[test]
fn item12_only_the_listed_filters_are_accepted() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    let accepted = [
        "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/response/+",
        "v2/fw/response/+/chunk/+",
        "v2/fw/error",
        "v2/a",
        "v2/r/req/+",
    ];
    let refused = [
        "v1/devices/me/#",
        "v2/fw/response/+",
        "v1/devices/me/attributes/+",
        "+/+",
    ];
    for (i, f) in accepted.iter().enumerate() {
        c.send(&subscribe(i as u16 + 1, &[(f, 1)]));
        assert_eq!(c.frame(), [0x90, 3, 0, i as u8 + 1, 1], "{f}");
    }
    for (i, f) in refused.iter().enumerate() {
        c.send(&subscribe(i as u16 + 20, &[(f, 1)]));
        assert_eq!(c.frame(), [0x90, 3, 0, i as u8 + 20, 0x80], "{f}");
    }
}

#[test]
fn item13_server_publishes_use_subscription_qos_else_1_and_count_ids_from_1() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    // No subscription: attribute response at QoS 1, packet id 1.
    c.send(&publish("v1/devices/me/attributes/request/5", 0, 0, b"{}"));
    let p = c.publish();
    assert_eq!((p.qos, p.pkid, p.retain), (1, 1, false));
    assert_eq!(p.topic, format!("{ATTR_RESP}5"));
    c.send(&puback(1));
    // Subscribed at QoS 0: QoS 0, but the id counter still advances.
    c.send(&subscribe(1, &[("v1/devices/me/attributes/response/+", 0)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 0]);
    c.send(&publish("v1/devices/me/attributes/request/6", 0, 0, b"{}"));
    let f = c.frame();
    assert_eq!(f[0], 0x30, "QoS 0, no retain");
    c.send(&unsubscribe(2, &["v1/devices/me/attributes/response/+"]));
    assert_eq!(c.frame(), [0xb0, 2, 0, 2]);
    c.send(&publish("v1/devices/me/attributes/request/7", 0, 0, b"{}"));
    let p = c.publish();
    assert_eq!((p.qos, p.pkid), (1, 3));
}

#[test]
fn item14_qos2_publish_is_processed_and_answered_with_puback() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 2, 77, b"{\"q\":2}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 77]);
    assert_eq!(
        s.latest_telemetry(DEVICE).unwrap()["q"].value,
        TbValue::Long(2)
    );
}

// ---- Uplinks and validation -------------------------------------------------------------

#[test]
fn item15_valid_uplinks_pubacked_at_qos1_silent_at_qos0() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 1, 1, b"{\"a\":1}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    c.send(&publish(
        "v1/devices/me/attributes",
        1,
        2,
        b"{\"fw\":\"x\"}",
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.send(&publish("v1/devices/me/telemetry", 0, 0, b"{\"b\":2}"));
    c.expect_silence_then_alive(100);
    let latest = s.latest_telemetry(DEVICE).unwrap();
    assert_eq!(latest["b"].value, TbValue::Long(2));
    assert_eq!(
        s.client_attributes(DEVICE).unwrap()["fw"],
        TbValue::String("x".into())
    );
}

#[test]
fn item16_telemetry_shapes_flat_timestamped_and_mixed_arrays() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/telemetry",
        1,
        1,
        br#"[{"ts":1700000000000,"values":{"a":1}},{"b":2},{"ts":5,"c":3},{"ts":7,"values":{"d":4},"x":9}]"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let t = s.telemetry(DEVICE).unwrap();
    let get = |k: &str| t.iter().find(|p| p.key == k).cloned().unwrap();
    assert_eq!(get("a").ts, 1_700_000_000_000);
    assert_eq!(get("a").value, TbValue::Long(1));
    assert!(get("b").ts > 1_700_000_000_000);
    // {"ts":5,"c":3} is flat: ts is an ordinary key.
    assert_eq!(get("ts").value, TbValue::Long(5));
    assert_eq!(get("c").value, TbValue::Long(3));
    assert_eq!(get("d").ts, 7);
    assert!(t.iter().all(|p| p.key != "x"));
}

#[test]
fn item17_lenient_json_null_dropped_numeric_strings_cast() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/telemetry",
        1,
        1,
        br#"{temperature:25, n:null, s:"007", d:"1.50", x:42.0, j:{'k':[1,2]}, big:12345678901234567890}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let l = s.latest_telemetry(DEVICE).unwrap();
    assert_eq!(l["temperature"].value, TbValue::Long(25));
    assert!(!l.contains_key("n"));
    assert_eq!(l["s"].value, TbValue::Long(7));
    assert_eq!(l["d"].value, TbValue::Double(1.5));
    assert_eq!(l["x"].value, TbValue::Double(42.0));
    assert_eq!(l["j"].value, TbValue::Json("{\"k\":[1,2]}".into()));
    assert_eq!(
        l["big"].value,
        TbValue::String("12345678901234567890".into())
    );
}

#[test]
fn item18_invalid_payloads_close_on_mqtt3_and_get_0x99_on_mqtt5() {
    let s = server();
    let cases: [(&str, &[u8]); 9] = [
        ("v1/devices/me/telemetry", b"{\"a\":"),
        ("v1/devices/me/telemetry", b""),
        ("v1/devices/me/telemetry", b"42"),
        ("v1/devices/me/telemetry", b"[1,2]"),
        ("v1/devices/me/telemetry", b"{\"ts\":1,\"values\":5}"),
        ("v1/devices/me/attributes", b"[{\"a\":1}]"),
        ("v1/devices/me/attributes/request/abc", b"{}"),
        ("v1/devices/me/attributes/request/1", b"[]"),
        ("v1/devices/me/rpc/response/x", b"{}"),
    ];
    for (topic, payload) in cases {
        let mut c = Client::device(s.local_addr());
        c.send(&publish(topic, 1, 1, payload));
        c.expect_closed();
        let mut c = Client::open(s.local_addr());
        c.send(&connect_raw("MQTT", 5, "c", Some(TOKEN), None, true));
        assert_eq!(c.frame(), [0x20, 3, 0, 0, 0]);
        c.send(&publish_v(topic, 1, 1, payload, true));
        assert_eq!(c.frame(), [0x40, 4, 0, 1, 0x99, 0], "{topic} {payload:?}");
        c.send(&PINGREQ);
        assert_eq!(c.frame(), PINGRESP);
    }
}

#[test]
fn item18_puback_on_validation_failure_option() {
    let s = server_with(Config {
        send_puback_on_validation_failure: true,
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 1, 3, b"nope{"));
    assert_eq!(c.frame(), [0x40, 2, 0, 3]);
    c.expect_silence_then_alive(50);
}

#[test]
fn item19_empty_array_never_pubacked_empty_object_is() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 1, 1, b"[]"));
    c.expect_silence_then_alive(300);
    c.send(&publish("v1/devices/me/telemetry", 1, 2, b"{}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    assert!(s.telemetry(DEVICE).unwrap().is_empty());
}

#[test]
fn item20_unknown_topic_pubacked_and_dropped() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("some/other/topic", 1, 4, b"hello"));
    assert_eq!(c.frame(), [0x40, 2, 0, 4]);
    c.expect_silence_then_alive(50);
    let mut c = Client::open(s.local_addr());
    c.v5 = true;
    c.send(&connect_raw("MQTT", 5, "c", Some(TOKEN), None, true));
    assert_eq!(c.frame(), [0x20, 3, 0, 0, 0]);
    c.send(&publish_v("some/other/topic", 1, 4, b"hello", true));
    assert_eq!(c.frame(), [0x40, 4, 0, 4, 0x90, 0]);
}

#[test]
fn item21_gateway_topics_from_a_normal_device_are_ignored() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/gateway/telemetry",
        1,
        5,
        b"{\"Dev A\":[{\"t\":1}]}",
    ));
    c.expect_silence_then_alive(300);
}

// ---- Attributes -------------------------------------------------------------------------

fn seed_attributes(s: &DevServer) {
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/attributes",
        1,
        1,
        br#"{"model":"X1","serial":"A7","ver":"1.2"}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    s.set_shared_attributes(DEVICE, r#"{"targetTemp":22,"mode":"eco"," b":true}"#)
        .unwrap();
}

#[test]
fn item22_attribute_response_without_subscription_at_qos1() {
    let s = server();
    seed_attributes(&s);
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/attributes/request/1",
        1,
        10,
        br#"{"clientKeys":"model","sharedKeys":"targetTemp"}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 10]);
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/attributes/response/1");
    assert_eq!(p.qos, 1);
    assert_eq!(
        p.payload,
        r#"{"client":{"model":"X1"},"shared":{"targetTemp":22}}"#
    );
}

#[test]
fn item23_response_omits_empty_sections_and_unknown_keys() {
    let s = server();
    seed_attributes(&s);
    let mut c = Client::device(s.local_addr());
    let ask = |c: &mut Client, id: u16, body: &str| {
        c.send(&publish(
            &format!("v1/devices/me/attributes/request/{id}"),
            0,
            0,
            body.as_bytes(),
        ));
        c.publish().payload
    };
    assert_eq!(
        ask(&mut c, 1, r#"{"clientKeys":"nope","sharedKeys":"nada"}"#),
        "{}"
    );
    assert_eq!(
        ask(&mut c, 2, r#"{"clientKeys":"ver,nope"}"#),
        r#"{"client":{"ver":1.2}}"#
    );
    assert_eq!(
        ask(&mut c, 3, r#"{"sharedKeys":"mode"}"#),
        r#"{"shared":{"mode":"eco"}}"#
    );
    assert_eq!(ask(&mut c, 4, r#"{"clientKeys":""}"#), "{}");
}

#[test]
fn item24_empty_request_returns_everything_keys_not_trimmed() {
    let s = server();
    seed_attributes(&s);
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/attributes/request/0", 0, 0, b"{}"));
    assert_eq!(
        c.publish().payload,
        r#"{"client":{"model":"X1","serial":"A7","ver":1.2},"shared":{" b":true,"mode":"eco","targetTemp":22}}"#
    );
    c.send(&publish(
        "v1/devices/me/attributes/request/1",
        0,
        0,
        br#"{"sharedKeys":"mode, b"}"#,
    ));
    assert_eq!(
        c.publish().payload,
        r#"{"shared":{"mode":"eco"," b":true}}"#
    );
}

#[test]
fn item25_negative_request_id_pubacked_without_response() {
    let s = server();
    seed_attributes(&s);
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/attributes/request/-1", 1, 3, b"{}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 3]);
    c.expect_silence_then_alive(300);
}

#[test]
fn item26_shared_attribute_pushes_only_while_subscribed() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    s.set_shared_attributes(DEVICE, r#"{"early":1}"#).unwrap();
    c.send(&subscribe(1, &[("v1/devices/me/attributes", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    c.expect_silence_then_alive(100); // nothing pushed at subscribe time
    s.set_shared_attributes(DEVICE, r#"{"targetTemp":22.0,"on":true}"#)
        .unwrap();
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/attributes");
    assert_eq!(p.payload, r#"{"targetTemp":22.0,"on":true}"#);
    c.send(&puback(p.pkid));
    s.delete_shared_attributes(DEVICE, &["on", "ghost"])
        .unwrap();
    let p = c.publish();
    assert_eq!(p.payload, r#"{"deleted":["on","ghost"]}"#);
    c.send(&puback(p.pkid));
    c.send(&unsubscribe(2, &["v1/devices/me/attributes"]));
    assert_eq!(c.frame(), [0xb0, 2, 0, 2]);
    s.set_shared_attributes(DEVICE, r#"{"later":1}"#).unwrap();
    c.expect_silence_then_alive(200);
    assert_eq!(
        s.shared_attributes(DEVICE).unwrap()["targetTemp"],
        TbValue::Double(22.0)
    );
}

#[test]
fn item27_client_attribute_uploads_do_not_push_back() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/attributes", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    c.send(&publish("v1/devices/me/attributes", 1, 2, b"{\"a\":1}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.expect_silence_then_alive(200);
}

// ---- RPC --------------------------------------------------------------------------------

#[test]
fn item28_29_server_rpc_waits_for_subscription_ids_from_0() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    let call0 = s
        .start_rpc(
            DEVICE,
            "setLed",
            r#"{"on":true}"#,
            Duration::from_secs(10),
            false,
        )
        .unwrap();
    let call1 = s
        .start_rpc(DEVICE, "ping", "\"x\"", Duration::from_secs(10), false)
        .unwrap();
    assert_eq!((call0.id(), call1.id()), (0, 1));
    c.expect_silence_then_alive(100);
    c.send(&subscribe(1, &[("v1/devices/me/rpc/request/+", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/rpc/request/0");
    assert_eq!(p.payload, r#"{"method":"setLed","params":{"on":true}}"#);
    assert_eq!(p.qos, 1);
    let p1 = c.publish();
    assert_eq!(p1.topic, "v1/devices/me/rpc/request/1");
    assert_eq!(p1.payload, r#"{"method":"ping","params":"x"}"#);
    c.send(&puback(p.pkid));
    c.send(&publish(
        "v1/devices/me/rpc/response/0",
        1,
        5,
        b"{\"result\":\"ok\"}",
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 5]);
    assert_eq!(
        call0.wait(Duration::from_secs(5)),
        Some(RpcOutcome::Reply("{\"result\":\"ok\"}".into()))
    );
    // A live subscription gets new RPCs at once; send_rpc blocks for the reply.
    let s2 = s.handle();
    let waiter =
        std::thread::spawn(move || s2.send_rpc(DEVICE, "get", "{}", Duration::from_secs(5)));
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/rpc/request/2");
    c.send(&publish("v1/devices/me/rpc/response/2", 0, 0, b"42"));
    assert_eq!(waiter.join().unwrap().unwrap(), "42");
    let records = s.rpc_records(DEVICE).unwrap();
    assert_eq!(records[0].status, RpcStatus::Successful);
}

#[test]
fn item28_expired_rpcs_are_not_delivered() {
    let s = server();
    let call = s
        .start_rpc(DEVICE, "late", "{}", Duration::from_millis(50), false)
        .unwrap();
    assert_eq!(call.wait(Duration::from_secs(2)), Some(RpcOutcome::Expired));
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/rpc/request/+", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    c.expect_silence_then_alive(200);
    assert_eq!(s.rpc_records(DEVICE).unwrap()[0].status, RpcStatus::Expired);
}

#[test]
fn item30_stale_replies_pubacked_and_ignored() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/rpc/request/+", 0)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 0]);
    c.send(&publish("v1/devices/me/rpc/response/99", 1, 2, b"{}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    let call = s
        .start_rpc(DEVICE, "m", "{}", Duration::from_secs(5), false)
        .unwrap();
    let p = c.publish();
    assert_eq!(p.qos, 0);
    c.send(&publish("v1/devices/me/rpc/response/0", 1, 3, b"first"));
    assert_eq!(c.frame(), [0x40, 2, 0, 3]);
    c.send(&publish("v1/devices/me/rpc/response/0", 1, 4, b"second"));
    assert_eq!(c.frame(), [0x40, 2, 0, 4]);
    assert_eq!(
        call.wait(Duration::from_secs(1)),
        Some(RpcOutcome::Reply("first".into()))
    );
    assert_eq!(
        s.rpc_records(DEVICE).unwrap()[0].reply.as_deref(),
        Some("first")
    );
}

#[test]
fn item31_unacknowledged_qos1_rpc_marked_timeout_connection_kept() {
    let s = server_with(Config {
        rpc_delivery_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&subscribe(1, &[("v1/devices/me/rpc/request/+", 1)]));
    assert_eq!(c.frame(), [0x90, 3, 0, 1, 1]);
    let _call = s
        .start_rpc(DEVICE, "m", "{}", Duration::from_secs(10), false)
        .unwrap();
    let _ = c.publish(); // never PUBACKed
    wait_for(&s, || {
        (s.rpc_records(DEVICE).unwrap()[0].status == RpcStatus::Timeout).then_some(())
    });
    c.send(&PINGREQ);
    assert_eq!(c.frame(), PINGRESP);
}

#[test]
fn item32_client_rpc_default_timeout_reply_and_scripted_replies() {
    let s = server_with(Config {
        client_rpc_timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/rpc/request/7",
        1,
        1,
        br#"{"method":"getTime","params":{}}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/rpc/response/7");
    assert_eq!(p.payload, r#"{"error":"timeout"}"#);
    s.set_client_rpc_reply("getTime", Some(r#"{"time":123}"#));
    c.send(&publish(
        "v1/devices/me/rpc/request/8",
        0,
        0,
        br#"{"method":"getTime"}"#,
    ));
    let p = c.publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_str()),
        ("v1/devices/me/rpc/response/8", r#"{"time":123}"#)
    );
    s.set_client_rpc_handler(Some(std::sync::Arc::new(|r: &ClientRpcRequest| {
        (r.method == "echo").then(|| r.params.clone())
    })));
    c.send(&publish(
        "v1/devices/me/rpc/request/9",
        0,
        0,
        br#"{"method":"echo","params":[1,"a"]}"#,
    ));
    let p = c.publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_str()),
        ("v1/devices/me/rpc/response/9", r#"[1,"a"]"#)
    );
    let recs = s.client_rpc_requests(DEVICE).unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].reply.as_deref(), Some(r#"{"error":"timeout"}"#));
    assert_eq!(recs[1].params, "null");
}

#[test]
fn item33_get_session_limits_answered_by_the_transport() {
    let s = server_with(Config {
        rate_limits: RateLimits {
            messages: Some("200:1,6000:60".into()),
            ..RateLimits::default()
        },
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/rpc/request/1",
        1,
        2,
        br#"{"method":"getSessionLimits","params":{"timeout":5000}}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    let p = c.publish();
    assert_eq!(p.topic, "v1/devices/me/rpc/response/1");
    assert_eq!(
        p.payload,
        r#"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"200:1,6000:60","telemetryMessages":null,"telemetryDataPoints":null}}"#
    );
    s.add_device(DeviceSpec::access_token("gw", "GW_TOKEN").gateway(true))
        .unwrap();
    let mut g = Client::device_token(s.local_addr(), "GW_TOKEN");
    g.send(&publish(
        "v1/devices/me/rpc/request/1",
        0,
        0,
        br#"{"method":"getSessionLimits"}"#,
    ));
    assert!(g.publish().payload.ends_with(
        r#""gatewayRateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}"#
    ));
}

#[test]
fn item34_client_rpc_without_method_or_numeric_id_closes() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/rpc/request/1",
        1,
        1,
        br#"{"params":{}}"#,
    ));
    c.expect_closed();
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v1/devices/me/rpc/request/abc",
        1,
        1,
        br#"{"method":"m"}"#,
    ));
    c.expect_closed();
}

// ---- Claiming and provisioning ----------------------------------------------------------

#[test]
fn item35_claim_pubacked_nothing_else() {
    let s = server();
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/claim", 1, 1, b""));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    c.send(&publish(
        "v1/devices/me/claim",
        1,
        2,
        br#"{"secretKey":"abc","durationMs":60000}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.expect_silence_then_alive(100);
    let claims = s.claims(DEVICE).unwrap();
    assert_eq!(
        (claims[0].secret_key.as_str(), claims[0].duration_ms),
        ("", 86_400_000)
    );
    assert_eq!(
        (claims[1].secret_key.as_str(), claims[1].duration_ms),
        ("abc", 60_000)
    );
}

fn provision_server(delay: Duration) -> DevServer {
    let s = server_with(Config {
        provision_close_delay: delay,
        ..Config::default()
    });
    s.add_provision_profile(ProvisionProfile {
        key: "KEY".into(),
        secret: "SECRET".into(),
        strategy: ProvisionStrategy::AllowCreateNewDevices,
    });
    s.add_provision_profile(ProvisionProfile {
        key: "PRE".into(),
        secret: "PRESECRET".into(),
        strategy: ProvisionStrategy::CheckPreProvisionedDevices,
    });
    s
}

fn provision_client(s: &DevServer) -> Client {
    let mut c = Client::open(s.local_addr());
    c.send(&connect("", Some("provision"), None));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
    c
}

fn provision(s: &DevServer, request: &str) -> String {
    let mut c = provision_client(s);
    c.send(&publish("/provision/request", 1, 1, request.as_bytes()));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let p = c.publish();
    assert_eq!(p.topic, "/provision/response");
    p.payload
}

#[test]
fn item36_provisioning_session_accepts_only_its_topics() {
    let s = provision_server(Duration::from_secs(60));
    let mut c = provision_client(&s);
    c.send(&subscribe(
        1,
        &[("/provision/response", 1), ("v1/devices/me/attributes", 1)],
    ));
    assert_eq!(c.frame(), [0x90, 4, 0, 1, 1, 0x80]);
    c.send(&PINGREQ);
    assert_eq!(c.frame(), PINGRESP);
    c.send(&publish("v1/devices/me/attributes", 1, 2, b"{}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.expect_closed();
}

#[test]
fn item37_valid_request_pubacked_then_answered_then_closed_later() {
    let s = provision_server(Duration::from_millis(300));
    let mut c = provision_client(&s);
    c.send(&publish(
        "/provision/request",
        1,
        1,
        br#"{"deviceName":"new-dev","provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET","token":"NEWTOKEN"}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let p = c.publish();
    assert_eq!(
        p.payload,
        r#"{"credentialsValue":"NEWTOKEN","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#
    );
    c.expect_closed();
    assert_eq!(s.provisioned_devices()[0].name, "new-dev");
    Client::device_token(s.local_addr(), "NEWTOKEN");
    // Pre-provisioned strategy hands out the existing credentials once.
    s.add_device(DeviceSpec::access_token("pre-dev", "PRE_TOKEN").profile("PRE"))
        .unwrap();
    let req = r#"{"deviceName":"pre-dev","provisionDeviceKey":"PRE","provisionDeviceSecret":"PRESECRET"}"#;
    assert_eq!(
        provision(&s, req),
        r#"{"credentialsValue":"PRE_TOKEN","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#
    );
    assert_eq!(
        provision(&s, req),
        r#"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#
    );
}

#[test]
fn item38_not_found_and_failure_responses() {
    let s = provision_server(Duration::from_secs(60));
    let not_found = r#"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#;
    assert_eq!(
        provision(
            &s,
            r#"{"deviceName":"x","provisionDeviceKey":"KEY","provisionDeviceSecret":"WRONG"}"#
        ),
        not_found
    );
    assert_eq!(
        provision(
            &s,
            r#"{"provisionDeviceKey":"NOPE","provisionDeviceSecret":"SECRET"}"#
        ),
        not_found
    );
    assert_eq!(
        provision(
            &s,
            r#"{"deviceName":"dev1","provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET"}"#
        ),
        r#"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#
    );
}

#[test]
fn item39_missing_or_null_fields_pubacked_and_closed_without_response() {
    let s = provision_server(Duration::from_secs(60));
    for req in [
        r#"{"provisionDeviceSecret":"SECRET"}"#,
        r#"{"provisionDeviceKey":"KEY"}"#,
        r#"{"provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET","deviceName":null}"#,
        r#"{"provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET","credentialsType":"PSK"}"#,
    ] {
        let mut c = provision_client(&s);
        c.send(&publish("/provision/request", 1, 1, req.as_bytes()));
        assert_eq!(c.frame(), [0x40, 2, 0, 1], "{req}");
        c.expect_closed();
    }
    assert!(s.provisioned_devices().is_empty());
}

#[test]
fn item40_generated_token_and_mqtt_basic_credentials() {
    let s = provision_server(Duration::from_secs(60));
    let r = provision(
        &s,
        r#"{"deviceName":"g1","provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET"}"#,
    );
    let token = r
        .strip_prefix(r#"{"credentialsValue":""#)
        .and_then(|t| t.strip_suffix(r#"","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#))
        .unwrap();
    assert_eq!(token.len(), 20);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));
    Client::device_token(s.local_addr(), token);
    let r = provision(
        &s,
        r#"{"deviceName":"b1","provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET","credentialsType":"MQTT_BASIC","clientId":"c1","username":"u1","password":"p1"}"#,
    );
    assert_eq!(
        r,
        r#"{"credentialsValue":{"clientId":"c1","userName":"u1","password":"p1"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#
    );
    let r = provision(
        &s,
        r#"{"deviceName":"b2","provisionDeviceKey":"KEY","provisionDeviceSecret":"SECRET","credentialsType":"MQTT_BASIC","clientId":"c2"}"#,
    );
    assert_eq!(
        r,
        r#"{"credentialsValue":{"clientId":"c2","userName":"","password":""},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#
    );
    let mut c = Client::open(s.local_addr());
    c.send(&connect("c1", Some("u1"), Some("p1")));
    assert_eq!(c.frame(), [0x20, 2, 0, 0]);
}

// ---- Limits -----------------------------------------------------------------------------

#[test]
fn item45_rate_limit_closes_without_puback() {
    // Uploads count against telemetry messages (thingsboard-gateway.md A.11).
    let s = server_with(Config {
        rate_limits: RateLimits {
            telemetry_messages: Some("2:60".into()),
            ..RateLimits::default()
        },
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&publish("v1/devices/me/telemetry", 1, 1, b"{\"a\":1}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    c.send(&publish("v1/devices/me/attributes", 1, 2, b"{\"a\":1}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.send(&publish("v1/devices/me/telemetry", 1, 3, b"{\"a\":2}"));
    c.expect_closed();
    assert_eq!(s.telemetry(DEVICE).unwrap().len(), 1);
}

#[test]
fn item33_v2_get_session_limits_is_an_ordinary_rpc_and_v2_json_topics_work() {
    let s = server_with(Config {
        client_rpc_timeout: Duration::from_millis(100),
        ..Config::default()
    });
    let mut c = Client::device(s.local_addr());
    c.send(&publish(
        "v2/r/req/3",
        1,
        1,
        br#"{"method":"getSessionLimits","params":{}}"#,
    ));
    assert_eq!(c.frame(), [0x40, 2, 0, 1]);
    let p = c.publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_str()),
        ("v2/r/res/3", r#"{"error":"timeout"}"#)
    );
    c.send(&publish("v2/t", 1, 2, b"{\"v2\":1}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 2]);
    c.send(&publish("v2/a", 1, 3, b"{\"ca\":\"x\"}"));
    assert_eq!(c.frame(), [0x40, 2, 0, 3]);
    c.send(&publish("v2/a/req/4", 0, 0, br#"{"clientKeys":"ca"}"#));
    let p = c.publish();
    assert_eq!(
        (p.topic.as_str(), p.payload.as_str()),
        ("v2/a/res/4", r#"{"client":{"ca":"x"}}"#)
    );
    c.send(&publish("v2/t/p", 1, 5, b"\x0a\x00"));
    assert_eq!(c.frame(), [0x40, 2, 0, 5]);
    assert_eq!(
        s.latest_telemetry(DEVICE).unwrap()["v2"].value,
        TbValue::Long(1)
    );
}
