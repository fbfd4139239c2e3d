//! Merging a backlog of gateway uploads into fewer PUBLISHes (thingsboard-gateway.md A.6, A.7).
//!
//! The gateway API carries several sub-devices in one message (`{"A":[..],"B":[..]}` on
//! `v1/gateway/telemetry`, `{"A":{..},"B":{..}}` on `v1/gateway/attributes`); ThingsBoard
//! stores each device on its own and answers the message with one PUBACK. When the host's
//! in-flight window was full and reopens, it asks for
//! [`poll_transmit_merged`](Device::poll_transmit_merged), and the upload at the head of the
//! queue leaves together with the uploads queued behind it, under these rules:
//!
//! * only whole messages (not the parts of a split upload), QoS 1, on the same topic;
//! * only distinct devices in one packet, stopping at the first repeat: two entries of one
//!   device without `ts` would get the same server time and overwrite each other;
//! * the packet fits the payload budget (the server's `maxPayloadSize`, else 64 KiB) and the
//!   smallest data-point window; pacing counts it as one upload with the sum of the data points,
//!   and only what the pacer would release now is merged;
//! * every message keeps its id: the packet's one PUBACK finishes them all
//!   ([`handle_puback_with`](Device::handle_puback_with)); after a disconnect they go back to
//!   the queue one by one and are sent again.
//!
//! Design: no timer and no added latency. A host without back-pressure never calls the merging
//! poll, so light traffic keeps exactly one PUBLISH per call with the bytes it always had; only
//! a backlog that already waits for the window is packed, which is where one packet per message
//! costs the broker, the server and both ends a wake-up and a write per message.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::device::{Device, MessageId, Millis, Publish, QoS};
use crate::limits::{self, Cost};
use crate::split::Shape;
use crate::topics;

/// The device name of a gateway upload as its JSON-escaped key bytes (quotes included):
/// `"A"` for `{"A":[...]}`. `None` for a payload of another shape (never merged).
///
/// Design: the bytes, not the parsed name. Every upload was encoded by tb-core, which escapes
/// a name one way only, so equal names have equal bytes, and nothing is parsed per message.
fn device_key(payload: &[u8]) -> Option<&[u8]> {
    let n = payload.len();
    if n < 6 || !payload.starts_with(b"{\"") || !payload.ends_with(b"}") {
        return None;
    }
    let mut i = 2;
    while i < n {
        match payload[i] {
            b'\\' => i += 2,
            b'"' => return (payload.get(i + 1) == Some(&b':')).then(|| &payload[1..=i]),
            _ => i += 1,
        }
    }
    None
}

/// Whether `p` is a message that may share a packet: a whole QoS 1 gateway upload.
fn mergeable(p: &Publish, next: Option<&Publish>) -> bool {
    p.qos == QoS::AtLeastOnce
        && p.id != MessageId(0)
        && (p.topic == topics::GATEWAY_TELEMETRY || p.topic == topics::GATEWAY_ATTRIBUTES)
        // The parts of a split upload share an id and are queued together: leave them whole.
        && next.is_none_or(|n| n.id != p.id)
}

impl Device {
    /// Merges the uploads queued behind `head` (just taken from the queue, `cost` its cost)
    /// into it, under the rules of the module doc. Returns how many were merged; when some
    /// were, `head` is the merged packet, `cost` its cost, and `head`'s message and the merged
    /// ones are in `inflight` already.
    pub(crate) fn merge_backlog(
        &mut self,
        now: Millis,
        head: &mut Publish,
        cost: &mut Cost,
    ) -> usize {
        if !mergeable(head, self.queued.front())
            || self.inflight.back().is_some_and(|p| p.id == head.id)
        {
            return 0;
        }
        let budget = self.payload_budget(&head.topic, head.qos);
        let max_points = self.max_points(Shape::GatewayTelemetry(""));
        let pace = crate::LIMITS && self.cfg.pace;
        let (count, size, points) = {
            let Some(key) = device_key(&head.payload) else {
                return 0;
            };
            let mut devices = BTreeSet::new();
            devices.insert(key);
            // Merged: `{"A":[..]` + `,"B":[..]` + `}`: each merged upload adds its length less 1.
            let (mut count, mut size, mut points) = (0, head.payload.len(), head.data_points);
            while let Some(q) = self.queued.get(count) {
                if q.topic != head.topic || !mergeable(q, self.queued.get(count + 1)) {
                    break;
                }
                let Some(key) = device_key(&q.payload) else {
                    break;
                };
                let (s, pts) = (
                    size + q.payload.len() - 1,
                    points.saturating_add(q.data_points),
                );
                if s > budget || pts > max_points {
                    break;
                }
                let c = limits::cost_of(&head.topic, pts);
                if pace && self.pacer.ready_at(now, &c) > now {
                    break;
                }
                if !devices.insert(key) {
                    break;
                }
                (count, size, points) = (count + 1, s, pts);
            }
            (count, size, points)
        };
        if count == 0 {
            return 0;
        }
        let mut payload = Vec::with_capacity(size);
        payload.extend_from_slice(&head.payload[..head.payload.len() - 1]);
        let carries = u32::try_from(count + 1).unwrap_or(u32::MAX);
        let mut first = head.clone();
        first.carries = carries;
        self.inflight.push_back(first);
        for q in self.queued.drain(..count) {
            payload.push(b',');
            payload.extend_from_slice(&q.payload[1..q.payload.len() - 1]);
            self.inflight.push_back(q);
        }
        payload.push(b'}');
        head.payload = payload;
        head.data_points = points;
        head.carries = carries;
        *cost = limits::cost_of(&head.topic, points);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_key_reads_the_escaped_name_or_refuses() {
        assert_eq!(device_key(br#"{"A":[{"x":1}]}"#), Some(&br#""A""#[..]));
        assert_eq!(device_key(br#"{"a\"b":{"x":1}}"#), Some(&br#""a\"b""#[..]));
        assert_eq!(device_key(br#"[{"x":1}]"#), None);
        assert_eq!(device_key(br#"{"A"}"#), None);
        assert_eq!(device_key(br#"{"A\"#), None);
    }
}
