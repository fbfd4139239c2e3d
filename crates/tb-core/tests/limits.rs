//! Session limits on a fake clock: the `getSessionLimits` exchange (thingsboard-mqtt.md 8),
//! holding data until the answer, pacing by every window (A.11), and splitting by the
//! server's `maxPayloadSize` and data-point windows.

#![cfg(feature = "limits")]

use serde_json::json;
use tb_core::{Config, Device, Event, Millis, Mode, RateLimit, RequestId, SessionLimits, Transmit};

fn asking(mode: Mode, hold: Millis) -> Device {
    let mut d = Device::new(Config {
        mode,
        ask_session_limits: true,
        limits_hold_ms: hold,
        ..Config::default()
    });
    d.handle_connected_at(0);
    assert!(matches!(
        d.poll_transmit(0),
        Some(Transmit::Subscribe { .. })
    ));
    d
}

fn drain(d: &mut Device, now: Millis) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(tx) = d.poll_transmit(now) {
        if let Transmit::Publish(p) = tx {
            d.handle_puback(p.id);
            out.push((p.topic.to_string(), String::from_utf8(p.payload).unwrap()));
        }
    }
    out
}

fn answer(d: &mut Device, now: Millis, body: serde_json::Value) {
    d.handle_publish(
        now,
        "v1/devices/me/rpc/response/0",
        body.to_string().as_bytes(),
    );
}

#[test]
fn session_limits_are_asked_first_and_data_waits_for_the_answer() {
    let mut d = asking(Mode::Device, 1000);
    d.send_telemetry(&json!({"a": 1})).unwrap();
    assert_eq!(
        drain(&mut d, 0),
        [(
            "v1/devices/me/rpc/request/0".to_string(),
            r#"{"method":"getSessionLimits","params":{"timeout":5000}}"#.to_string()
        )]
    );
    assert!(drain(&mut d, 10).is_empty(), "data waits for the answer");
    answer(
        &mut d,
        20,
        json!({"maxPayloadSize": 4096, "maxInflightMessages": 100,
               "rateLimits": {"messages": null, "telemetryMessages": "2:1",
                              "telemetryDataPoints": null}}),
    );
    assert!(d.poll_event().is_none(), "the answer is the device's own");
    let l = d.session_limits().unwrap();
    assert_eq!(l.max_payload_size, Some(4096));
    assert_eq!(d.config().max_packet_size, 4096);
    assert_eq!(drain(&mut d, 20).len(), 1);
}

#[test]
fn a_server_that_does_not_answer_delays_data_by_the_hold_only() {
    let mut d = asking(Mode::Device, 500);
    d.send_telemetry(&json!({"a": 1})).unwrap();
    assert_eq!(drain(&mut d, 0).len(), 1); // the request
    assert_eq!(d.poll_timeout(), Some(500));
    assert!(drain(&mut d, 499).is_empty());
    d.handle_timeout(500);
    assert_eq!(drain(&mut d, 500).len(), 1);
    assert!(d.session_limits().is_none());
}

#[test]
fn client_rpc_ids_still_count_from_one() {
    let mut d = asking(Mode::Device, 0);
    let id = d.send_rpc_call(0, "getTime", &json!({}), 5000).unwrap();
    assert_eq!(id, RequestId(1));
    let sent = drain(&mut d, 0);
    assert_eq!(sent[1].0, "v1/devices/me/rpc/request/1");
}

#[test]
fn telemetry_is_paced_by_its_windows_and_poll_timeout_says_when() {
    let mut d = asking(Mode::Device, 1000);
    drain(&mut d, 0);
    answer(
        &mut d,
        0,
        json!({"rateLimits": {"telemetryMessages": "2:1", "telemetryDataPoints": "100:1",
                              "messages": "1:1"}}),
    );
    for i in 0..5 {
        d.send_telemetry(&json!({ "i": i })).unwrap();
    }
    assert_eq!(drain(&mut d, 0).len(), 2);
    // 1 s window + 20 ms margin.
    assert_eq!(d.poll_timeout(), Some(1020));
    assert!(drain(&mut d, 1019).is_empty());
    d.handle_timeout(1020);
    assert_eq!(drain(&mut d, 1020).len(), 2);
    assert_eq!(drain(&mut d, 2040).len(), 1);
    // Attribute requests count against `messages`, not the telemetry windows.
    d.request_attributes(2040, &["a"], &[], 60_000).unwrap();
    d.request_attributes(2040, &["b"], &[], 60_000).unwrap();
    assert_eq!(drain(&mut d, 2040).len(), 1);
    assert_eq!(drain(&mut d, 3060).len(), 1);
}

#[test]
fn data_points_bound_the_size_of_each_part_and_are_paced() {
    let mut d = Device::new(Config {
        limits: Some(SessionLimits {
            device: tb_core::limits::LimitSet {
                telemetry_data_points: RateLimit::parse("3:1").unwrap(),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Config::default()
    });
    d.handle_connected();
    d.poll_transmit(0);
    let id = d
        .send_telemetry(&json!({"a": 1, "b": 2, "c": 3, "d": 4}))
        .unwrap();
    assert_eq!(
        drain(&mut d, 0),
        [(
            "v1/devices/me/telemetry".to_string(),
            r#"[{"a":1,"b":2,"c":3}]"#.to_string()
        )]
    );
    assert!(d.is_pending(id));
    assert_eq!(drain(&mut d, 1020)[0].1, r#"[{"d":4}]"#);
    assert!(!d.is_pending(id));
}

#[test]
fn queued_uploads_are_split_again_when_the_answer_shrinks_the_limits() {
    let mut d = Device::new(Config {
        ask_session_limits: true,
        limits_hold_ms: 1000,
        ..Config::default()
    });
    // Queued while offline, under the default 64 KiB.
    let mut m = serde_json::Map::new();
    for i in 0..10 {
        m.insert(format!("k{i}"), json!("x".repeat(300)));
    }
    let id = d.send_telemetry(&serde_json::Value::Object(m)).unwrap();
    d.handle_connected_at(0);
    d.poll_transmit(0);
    assert_eq!(drain(&mut d, 0).len(), 1); // the request only
    answer(&mut d, 1, json!({"maxPayloadSize": 1024}));
    let parts = drain(&mut d, 1);
    assert!(parts.len() >= 4, "{parts:?}");
    for (topic, payload) in &parts {
        assert!(2 + topic.len() + 2 + payload.len() <= 1024);
    }
    assert!(!d.is_pending(id));
    assert_eq!(d.unacknowledged_qos1(), 0);
}

#[test]
#[cfg(feature = "gateway")]
fn a_gateway_paces_relayed_traffic_by_gateway_rate_limits() {
    let mut d = asking(Mode::Gateway, 1000);
    drain(&mut d, 0);
    answer(
        &mut d,
        0,
        json!({"rateLimits": {"telemetryMessages": "100:1"},
               "gatewayRateLimits": {"messages": "1:1", "telemetryMessages": "2:1",
                                     "telemetryDataPoints": "100:1"}}),
    );
    let q = tb_core::QoS::AtLeastOnce;
    d.gw_connect_device("A", "t", q).unwrap();
    d.gw_connect_device("B", "t", q).unwrap();
    for i in 0..3 {
        d.gw_send_telemetry("A", &json!({ "i": i }), q).unwrap();
    }
    // One connect (gateway messages 1:1), then the queue head waits.
    assert_eq!(drain(&mut d, 0).len(), 1);
    let next = drain(&mut d, 1020);
    assert_eq!(next.len(), 3, "{next:?}"); // connect B, then 2 telemetry
                                           // The gateway's own telemetry is counted apart and is not held by the relayed windows
                                           // (except behind the queue head, which is in order).
    assert_eq!(drain(&mut d, 2040).len(), 1);
    d.send_telemetry(&json!({"own": 1})).unwrap();
    assert_eq!(drain(&mut d, 2040).len(), 1);
}

#[test]
fn a_bad_answer_is_dropped_and_nothing_is_paced() {
    let mut d = asking(Mode::Device, 1000);
    drain(&mut d, 0);
    d.handle_publish(1, "v1/devices/me/rpc/response/0", b"not json");
    assert!(matches!(d.poll_event(), Some(Event::Dropped { .. })));
    for i in 0..50 {
        d.send_telemetry(&json!({ "i": i })).unwrap();
    }
    assert_eq!(drain(&mut d, 1).len(), 50);
}
