//! Merging a backlog of gateway uploads (thingsboard-gateway.md A.6/A.7; `merge.rs`): exact
//! bytes of merged packets, where merging stops (a repeated device, the payload budget, the
//! data-point window, the pacer, another topic, a split upload), one PUBACK finishing every
//! message of a packet, and a disconnect putting them back one by one.

#![cfg(all(feature = "gateway", feature = "limits"))]

use serde_json::json;
use tb_core::{Config, Device, MessageId, Millis, Mode, QoS, SessionLimits, Transmit};

const Q1: QoS = QoS::AtLeastOnce;

fn gateway_with(cfg: Config) -> Device {
    let mut d = Device::new(Config {
        mode: Mode::Gateway,
        ..cfg
    });
    d.handle_connected();
    assert!(matches!(
        d.poll_transmit(0),
        Some(Transmit::Subscribe { .. })
    ));
    d
}

fn gateway() -> Device {
    gateway_with(Config::default())
}

/// (payload, id) of the next PUBLISH from the merging poll.
fn merged(d: &mut Device, now: Millis) -> Option<(String, MessageId)> {
    match d.poll_transmit_merged(now)? {
        Transmit::Publish(p) => Some((String::from_utf8(p.payload).unwrap(), p.id)),
        other => panic!("unexpected {other:?}"),
    }
}

fn acked(d: &mut Device, id: MessageId) -> Vec<MessageId> {
    let mut done = Vec::new();
    assert!(d.handle_puback_with(id, |m| done.push(m)));
    done
}

/// Queues telemetry `{key: n}` for each (device, key, n).
fn telemetry(d: &mut Device, items: &[(&str, &str, i64)]) -> Vec<MessageId> {
    items
        .iter()
        .map(|(dev, k, n)| d.gw_send_telemetry(dev, &json!({ *k: n }), Q1).unwrap())
        .collect()
}

#[test]
fn a_backlog_of_distinct_devices_leaves_as_one_packet() {
    let mut d = gateway();
    let ids = telemetry(&mut d, &[("A", "x", 1), ("B", "y", 2), ("C 3", "z", 3)]);
    let (payload, id) = merged(&mut d, 0).unwrap();
    assert_eq!(payload, r#"{"A":[{"x":1}],"B":[{"y":2}],"C 3":[{"z":3}]}"#);
    assert_eq!(id, ids[0], "the packet goes under its first message's id");
    assert_eq!(merged(&mut d, 0), None);
    for m in &ids {
        assert!(d.is_pending(*m));
    }
    assert_eq!(d.unacknowledged_qos1(), 3, "the bound still counts calls");
    assert_eq!(acked(&mut d, id), ids, "one PUBACK finishes every message");
    for m in &ids {
        assert!(!d.is_pending(*m));
    }
    assert_eq!((d.unacknowledged(), d.unacknowledged_qos1()), (0, 0));
    assert!(!d.handle_puback(id), "a repeated PUBACK finds nothing");
}

#[test]
fn attribute_uploads_merge_into_one_object() {
    let mut d = gateway();
    let a = d.gw_send_attributes("A", &json!({"m": "x"}), Q1).unwrap();
    let b = d.gw_send_attributes("B", &json!({"n": 2}), Q1).unwrap();
    match d.poll_transmit_merged(0) {
        Some(Transmit::Publish(p)) => {
            assert_eq!(p.topic, "v1/gateway/attributes");
            assert_eq!(p.payload, br#"{"A":{"m":"x"},"B":{"n":2}}"#);
            assert_eq!(p.data_points, 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(acked(&mut d, a), [a, b]);
}

#[test]
fn the_plain_poll_sends_one_packet_per_message_with_the_usual_bytes() {
    let mut d = gateway();
    let ids = telemetry(&mut d, &[("A", "x", 1), ("B", "y", 2)]);
    let mut sent = Vec::new();
    while let Some(Transmit::Publish(p)) = d.poll_transmit(0) {
        sent.push((String::from_utf8(p.payload).unwrap(), p.id));
    }
    assert_eq!(
        sent,
        [
            (r#"{"A":[{"x":1}]}"#.to_string(), ids[0]),
            (r#"{"B":[{"y":2}]}"#.to_string(), ids[1]),
        ]
    );
    assert_eq!(acked(&mut d, ids[1]), [ids[1]]);
}

#[test]
fn merging_stops_at_the_first_repeated_device() {
    let mut d = gateway();
    let ids = telemetry(
        &mut d,
        &[("A", "x", 1), ("B", "x", 2), ("A", "x", 3), ("C", "x", 4)],
    );
    assert_eq!(
        merged(&mut d, 0),
        Some((r#"{"A":[{"x":1}],"B":[{"x":2}]}"#.into(), ids[0]))
    );
    assert_eq!(
        merged(&mut d, 0),
        Some((r#"{"A":[{"x":3}],"C":[{"x":4}]}"#.into(), ids[2]))
    );
    // Acknowledged out of order: each PUBACK finishes its own packet's messages.
    assert_eq!(acked(&mut d, ids[2]), [ids[2], ids[3]]);
    assert_eq!(acked(&mut d, ids[0]), [ids[0], ids[1]]);
}

#[test]
fn merging_stops_at_the_payload_budget() {
    // spec 2.5: remaining length = 2 + topic (20) + packet id (2) + payload; 15-byte uploads.
    let mut d = gateway_with(Config {
        max_packet_size: 24 + 43,
        ..Config::default()
    });
    let ids = telemetry(
        &mut d,
        &[("A", "x", 1), ("B", "x", 2), ("C", "x", 3), ("D", "x", 4)],
    );
    // Two make 29 bytes, three 43: the budget, exactly; a fourth would not fit.
    assert_eq!(
        merged(&mut d, 0),
        Some((
            r#"{"A":[{"x":1}],"B":[{"x":2}],"C":[{"x":3}]}"#.into(),
            ids[0]
        ))
    );
    assert_eq!(
        merged(&mut d, 0),
        Some((r#"{"D":[{"x":4}]}"#.into(), ids[3]))
    );
}

#[test]
fn other_topics_qos_0_and_split_uploads_are_not_merged() {
    let mut d = gateway();
    let a = d.gw_send_telemetry("A", &json!({"x": 1}), Q1).unwrap();
    let b = d.gw_send_attributes("B", &json!({"y": 2}), Q1).unwrap();
    let c = d
        .gw_send_telemetry("C", &json!({"x": 3}), QoS::AtMostOnce)
        .unwrap();
    let e = d.gw_send_telemetry("E", &json!({"x": 5}), Q1).unwrap();
    let mut m = serde_json::Map::new();
    for i in 0..30 {
        m.insert(format!("k{i:02}"), json!("v".repeat(3000)));
    }
    let big = d
        .gw_send_telemetry("F", &serde_json::Value::Object(m), Q1)
        .unwrap();
    let g = d.gw_send_telemetry("G", &json!({"x": 7}), Q1).unwrap();
    let mut sent = Vec::new();
    while let Some((payload, id)) = merged(&mut d, 0) {
        sent.push((payload.len().min(40), id));
    }
    let ids: Vec<MessageId> = sent.iter().map(|s| s.1).collect();
    // A alone (attributes follow), B alone (QoS 0 follows), C alone (QoS 0), E alone (the
    // split upload follows), F's two parts, G.
    assert_eq!(ids, [a, b, c, e, big, big, g]);
}

fn gateway_limits(points: &str) -> SessionLimits {
    SessionLimits::from_json(&json!({
        "maxPayloadSize": 65536,
        "gatewayRateLimits": {"telemetryMessages": "1:1", "telemetryDataPoints": points}
    }))
    .unwrap()
}

/// Ten data points: `{"k0":0,...,"k9":9}`.
fn ten(d: &mut Device, dev: &str) -> MessageId {
    let data: serde_json::Map<String, serde_json::Value> =
        (0..10).map(|j| (format!("k{j}"), json!(j))).collect();
    d.gw_send_telemetry(dev, &serde_json::Value::Object(data), Q1)
        .unwrap()
}

fn devices_in(payload: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(payload).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn pacing_counts_a_merged_packet_as_one_upload_and_merges_what_it_releases_now() {
    // One upload per second; data points 25 per second and 40 per minute.
    let mut d = gateway_with(Config {
        limits: Some(gateway_limits("25:1,40:60")),
        ..Config::default()
    });
    let ids: Vec<MessageId> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|n| ten(&mut d, n))
        .collect();
    // The smallest window (25) holds two uploads of ten.
    let (p, id) = merged(&mut d, 0).unwrap();
    assert_eq!(devices_in(&p), ["A", "B"]);
    assert_eq!(acked(&mut d, id), ids[..2]);
    // The next upload waits for the one-per-second window, merged or not.
    assert_eq!(merged(&mut d, 10), None);
    let t = d.poll_timeout().unwrap();
    assert_eq!(t, 1020);
    d.handle_timeout(t);
    // The minute window has 20 of 40 left: C and D now, E not.
    let (p, id) = merged(&mut d, t).unwrap();
    assert_eq!(devices_in(&p), ["C", "D"]);
    assert_eq!(acked(&mut d, id), ids[2..4]);
    assert_eq!(
        merged(&mut d, t + 2000),
        None,
        "the minute window is used up"
    );
}

#[test]
fn a_disconnect_puts_merged_messages_back_and_they_go_again() {
    let mut d = gateway();
    let ids = telemetry(&mut d, &[("A", "x", 1), ("B", "x", 2), ("C", "x", 3)]);
    let (_, first) = merged(&mut d, 0).unwrap();
    assert_eq!(first, ids[0]);
    d.handle_disconnected();
    assert_eq!(d.unacknowledged_qos1(), 3);
    d.handle_connected();
    assert!(matches!(
        d.poll_transmit(0),
        Some(Transmit::Subscribe { .. })
    ));
    // Without back-pressure they go one by one, with their own bytes...
    match d.poll_transmit(0) {
        Some(Transmit::Publish(p)) => {
            assert_eq!(
                (p.id, p.payload.as_slice()),
                (ids[0], &br#"{"A":[{"x":1}]}"#[..])
            );
        }
        other => panic!("{other:?}"),
    }
    // ...or merged again under back-pressure; either way nothing is lost.
    assert_eq!(
        merged(&mut d, 0),
        Some((r#"{"B":[{"x":2}],"C":[{"x":3}]}"#.into(), ids[1]))
    );
    assert_eq!(acked(&mut d, ids[1]), ids[1..]);
    assert_eq!(acked(&mut d, ids[0]), ids[..1]);
    assert_eq!((d.unacknowledged(), d.unacknowledged_qos1()), (0, 0));
}

#[test]
fn a_late_puback_of_a_packet_from_before_a_reconnect_finds_nothing() {
    let mut d = gateway();
    let ids = telemetry(&mut d, &[("A", "x", 1), ("B", "x", 2)]);
    merged(&mut d, 0).unwrap();
    d.handle_disconnected();
    d.handle_connected();
    d.poll_transmit(0);
    // Resent one by one; the PUBACK of the first finishes only the first.
    let _ = d.poll_transmit(0);
    assert_eq!(acked(&mut d, ids[0]), [ids[0]]);
    assert!(d.is_pending(ids[1]));
}
