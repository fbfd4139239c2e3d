//! Helpers shared by the integration tests: bring a `Device` up and check its first SUBSCRIBE,
//! and collect what it publishes. Each test binary uses a subset.

#![allow(dead_code)]

use tb_core::{Device, MessageId, QoS, Transmit};

/// The filters every device session subscribes to first (spec 2.7: nothing is kept across
/// connections, so each one subscribes again).
pub const DEVICE_FILTERS: [&str; 4] = [
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/request/+",
    "v1/devices/me/rpc/response/+",
];

/// Marks `d` connected and checks that the first packet it sends subscribes to exactly
/// `filters`; returns the QoS of that SUBSCRIBE.
pub fn connect_expecting(d: &mut Device, filters: &[&str]) -> QoS {
    d.handle_connected();
    match d.poll_transmit(0) {
        Some(Transmit::Subscribe { filters: got, qos }) => {
            assert_eq!(got, filters);
            qos
        }
        other => panic!("expected SUBSCRIBE first, got {other:?}"),
    }
}

/// Checks that the next packet `d` sends is a SUBSCRIBE (to whatever filters).
pub fn expect_subscribe(d: &mut Device) {
    let next = d.poll_transmit(0);
    assert!(
        matches!(next, Some(Transmit::Subscribe { .. })),
        "expected SUBSCRIBE, got {next:?}"
    );
}

/// Drops the link and brings it back; checks the SUBSCRIBE goes out first again.
pub fn reconnect(d: &mut Device) {
    d.handle_disconnected();
    d.handle_connected();
    expect_subscribe(d);
}

/// Everything `d` publishes at `now`, as (topic, UTF-8 payload, id); panics on any other
/// packet.
pub fn publishes(d: &mut Device, now: u64) -> Vec<(String, String, MessageId)> {
    let mut out = Vec::new();
    while let Some(tx) = d.poll_transmit(now) {
        match tx {
            Transmit::Publish(p) => out.push((
                p.topic.to_string(),
                String::from_utf8(p.payload).unwrap(),
                p.id,
            )),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

/// (topic, payload) of each publish, for comparing with literals.
pub fn topics_and_payloads(sent: &[(String, String, MessageId)]) -> Vec<(&str, &str)> {
    sent.iter()
        .map(|(t, p, _)| (t.as_str(), p.as_str()))
        .collect()
}
