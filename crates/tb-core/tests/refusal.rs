//! A message the server closes the connection on, again and again, is given up (refused);
//! nothing else is (see `tb_core::refusal`). Fake clock, whole exchanges.

mod common;

use common::{connect_expecting, expect_subscribe, publishes, DEVICE_FILTERS};
use serde_json::json;
use tb_core::refusal::STRIKES;
use tb_core::{Config, Device, MessageId};

const TELEMETRY: &str = "v1/devices/me/telemetry";

fn connected() -> Device {
    let mut d = Device::new(Config::default());
    connect_expecting(&mut d, &DEVICE_FILTERS);
    d
}

fn big() -> serde_json::Value {
    json!({ "blob": "x".repeat(3000) })
}

/// Connects again and returns the ids published, in order.
fn reconnect_and_send(d: &mut Device) -> Vec<MessageId> {
    d.handle_connected();
    expect_subscribe(d);
    publishes(d, 0).into_iter().map(|p| p.2).collect()
}

#[test]
fn a_message_the_server_closes_on_three_times_is_refused_and_the_rest_goes_on() {
    let mut d = connected();
    let small = d.send_telemetry(&json!({"a": 1})).unwrap();
    assert_eq!(publishes(&mut d, 0)[0].2, small);
    assert!(d.handle_puback(small));
    let poison = d.send_telemetry(&big()).unwrap();
    let after = d.send_telemetry(&json!({"b": 2})).unwrap();
    assert_eq!(
        publishes(&mut d, 0).iter().map(|p| p.2).collect::<Vec<_>>(),
        [poison, after]
    );
    // The server closes right after the big one. This connection acknowledged `small`, so
    // the close does not count; the next ones get no PUBACK at all.
    assert_eq!(d.handle_closed_by_peer(), None);
    for _ in 0..STRIKES - 1 {
        assert_eq!(reconnect_and_send(&mut d), [poison, after]);
        assert_eq!(d.handle_closed_by_peer(), None);
    }
    assert_eq!(reconnect_and_send(&mut d), [poison, after]);
    let refused = d
        .handle_closed_by_peer()
        .expect("refused on the third close");
    assert_eq!(refused.id, poison);
    assert_eq!(refused.topic, TELEMETRY);
    // remaining length: 2 + topic + packet id + payload
    assert_eq!(
        refused.size,
        2 + TELEMETRY.len() + 2 + 3000 + r#"{"blob":""}"#.len()
    );
    assert_eq!(refused.closes, STRIKES);
    assert!(!d.is_pending(poison));
    assert_eq!(d.refused(poison), Some(&refused));
    assert_eq!(d.refused(after), None);
    // The rest is sent, first, on the next connection; nothing else was lost.
    assert_eq!(reconnect_and_send(&mut d), [after]);
    assert_eq!(d.unacknowledged_qos1(), 1);
    assert!(d.handle_puback(after));
    assert_eq!(d.unacknowledged_qos1(), 0);
}

#[test]
fn a_connection_that_acknowledges_starts_the_count_over() {
    let mut d = connected();
    let m = d.send_telemetry(&big()).unwrap();
    publishes(&mut d, 0);
    for _ in 0..STRIKES - 1 {
        assert_eq!(d.handle_closed_by_peer(), None);
        assert_eq!(reconnect_and_send(&mut d), [m]);
    }
    // A broker restart: its close looks the same, but the reconnect fails, then works and
    // the message is acknowledged.
    assert!(d.handle_puback(m));
    let n = d.send_telemetry(&big()).unwrap();
    assert_eq!(publishes(&mut d, 0)[0].2, n);
    assert_eq!(d.handle_closed_by_peer(), None);
    assert_eq!(reconnect_and_send(&mut d), [n]);
    assert_eq!(d.handle_closed_by_peer(), None);
    assert!(d.is_pending(n));
}

#[test]
fn failed_attempts_between_closes_neither_count_nor_break_the_row() {
    let mut d = connected();
    let m = d.send_telemetry(&big()).unwrap();
    publishes(&mut d, 0);
    let mut refused = None;
    for i in 0..STRIKES {
        if i > 0 {
            assert_eq!(reconnect_and_send(&mut d), [m]);
        }
        refused = d.handle_closed_by_peer();
        // Reconnect attempts that got no CONNACK (the server is down).
        d.handle_disconnected();
        d.handle_disconnected();
    }
    assert_eq!(refused.map(|r| r.id), Some(m));
}

#[test]
fn a_silent_path_or_own_close_in_between_breaks_the_row() {
    let mut d = connected();
    let m = d.send_telemetry(&big()).unwrap();
    publishes(&mut d, 0);
    for _ in 0..STRIKES - 1 {
        assert_eq!(d.handle_closed_by_peer(), None);
        assert_eq!(reconnect_and_send(&mut d), [m]);
    }
    // The host gave up on a silent link: not the server's doing.
    d.handle_disconnected();
    for _ in 0..STRIKES - 1 {
        assert_eq!(reconnect_and_send(&mut d), [m]);
        assert_eq!(d.handle_closed_by_peer(), None);
    }
    assert!(d.is_pending(m));
}

#[test]
fn a_message_no_bigger_than_one_acknowledged_is_never_refused() {
    // A rate limit (spec 2.9) closes the connection on whatever comes first, for as long as
    // its window is full: that is no reason to give a message up.
    let mut d = connected();
    let first = d.send_telemetry(&json!({"seq": 100})).unwrap();
    publishes(&mut d, 0);
    assert!(d.handle_puback(first));
    let m = d.send_telemetry(&json!({"seq": 101})).unwrap();
    publishes(&mut d, 0);
    for _ in 0..3 * STRIKES {
        assert_eq!(d.handle_closed_by_peer(), None);
        assert_eq!(reconnect_and_send(&mut d), [m]);
    }
    assert!(d.is_pending(m));
}

#[test]
fn every_part_of_a_refused_split_message_leaves_the_queue() {
    let mut d = Device::new(Config {
        max_packet_size: 200,
        ..Config::default()
    });
    connect_expecting(&mut d, &DEVICE_FILTERS);
    let keys: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| (format!("k{i:02}"), json!("y".repeat(20))))
        .collect();
    let m = d.send_telemetry(&serde_json::Value::Object(keys)).unwrap();
    let after = d.send_telemetry(&json!({"b": 2})).unwrap();
    let sent = publishes(&mut d, 0);
    assert!(sent.iter().filter(|p| p.2 == m).count() > 1, "split");
    for i in 0..STRIKES {
        if i > 0 {
            reconnect_and_send(&mut d);
        }
        d.handle_closed_by_peer();
    }
    assert!(d.refused(m).is_some());
    assert_eq!(reconnect_and_send(&mut d), [after]);
    assert_eq!(d.unacknowledged(), 1);
    assert_eq!(d.unacknowledged_qos1(), 1);
}
