//! The device's side of session limits: asking `getSessionLimits` after a CONNACK, applying
//! the answer (packet size, rate windows), holding the queue until it arrives, and re-splitting
//! what is queued when the limits shrink. The windows themselves live in [`crate::limits`].

use alloc::borrow::Cow;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use serde_json::Value;

use crate::device::{Device, MessageId, Millis, Publish, QoS, LIMITS_TIMEOUT_MS};
use crate::gateway::{connect_payload, upload_device};
use crate::limits::{Cost, SessionLimits};
use crate::payload;
use crate::split::{self, Shape};
use crate::topics;

/// The request id of `getSessionLimits`. Design: 0, outside the client-RPC counter (which
/// starts at 1), so the application's RPC ids are the same whether the server is asked or not.
const LIMITS_RPC_ID: &str = "0";

/// Id of messages the device queues on its own (no handle waits for them).
const INTERNAL: MessageId = MessageId(0);

impl Device {
    /// After a CONNACK: queue the `getSessionLimits` request and a gateway's announcements at
    /// the head of the queue (id 0 keeps the queue sorted), and start holding data.
    pub(crate) fn queue_session_start(&mut self, now: Millis) {
        // What is left from an earlier connection is replaced.
        self.remove_queued(|p| p.id == INTERNAL);

        // Each goes to the front, so what is pushed last leaves first: the announcements in
        // connect order (pushed from the last one), and the limits request before them.
        let qos = self.cfg.qos;
        if crate::GATEWAY && self.is_gateway() {
            for i in (0..self.gw.devices.len()).rev() {
                let (name, ty) = &self.gw.devices[i];
                let body = connect_payload(name, ty);
                self.push_internal(topics::GATEWAY_CONNECT.into(), body, qos);
            }
        }
        let ask = crate::LIMITS && self.cfg.ask_session_limits && self.cfg.limits.is_none();
        if ask {
            let topic = alloc::format!("{}{}", topics::RPC_REQUEST_PREFIX, LIMITS_RPC_ID);
            let body = payload::Object::new()
                .str("method", "getSessionLimits")
                .raw("params", br#"{"timeout":5000}"#)
                .finish();
            self.push_internal(topic.into(), body, qos);
            self.limits_deadline = Some(now.saturating_add(LIMITS_TIMEOUT_MS));
            let hold = if self.limits_answered {
                LIMITS_TIMEOUT_MS
            } else {
                self.cfg.limits_hold_ms
            };
            self.limits_hold = (hold > 0).then(|| now.saturating_add(hold));
        }
    }

    /// Puts a message of the device's own at the head of the queue.
    fn push_internal(&mut self, topic: Cow<'static, str>, payload: Vec<u8>, qos: QoS) {
        if qos == QoS::AtLeastOnce {
            self.qos1_unacked += 1;
        }
        self.queued.push_front(Publish {
            id: INTERNAL,
            topic,
            payload,
            qos,
            data_points: 0,
            carries: 1,
        });
    }

    /// Whether the head of the queue (with this id and cost) may leave now; if pacing holds
    /// it, records when it may.
    pub(crate) fn may_send(&mut self, now: Millis, id: MessageId, cost: &Cost) -> bool {
        if id != INTERNAL && self.limits_hold.is_some_and(|t| now < t) {
            return false;
        }
        if !self.cfg.pace {
            return true;
        }
        let ready = self.pacer.ready_at(now, cost);
        if ready > now {
            self.paced_until = Some(ready);
            return false;
        }
        self.paced_until = None;
        true
    }

    /// The answer to `getSessionLimits` arrived.
    pub(crate) fn handle_limits_response(&mut self, topic: &str, payload: &[u8]) {
        self.limits_deadline = None;
        self.limits_hold = None;
        let parsed = payload::parse(payload).and_then(|v| SessionLimits::from_json(&v));
        match parsed {
            Ok(limits) => {
                self.limits_answered = true;
                self.apply_limits(limits);
            }
            Err(reason) => self.drop_msg(topic, reason),
        }
    }

    /// Deadlines of the limits exchange.
    pub(crate) fn limits_timeout(&mut self, now: Millis) {
        if self.limits_hold.is_some_and(|t| t <= now) {
            self.limits_hold = None;
        }
        if self.limits_deadline.is_some_and(|t| t <= now) {
            self.limits_deadline = None;
        }
    }

    /// Puts limits in force: the packet size, the pacer's windows, and a re-split of what is
    /// queued so that every message fits them.
    pub(crate) fn apply_limits(&mut self, limits: SessionLimits) {
        if let Some(size) = limits.max_payload_size {
            self.cfg.max_packet_size = size;
        }
        if self.cfg.pace {
            self.pacer.set_limits(&limits);
        }
        self.limits = Some(limits);
        self.resplit_queued();
    }

    /// Most data points one upload of this shape may carry: the smallest capacity of its
    /// data-point windows (a bigger message could never be sent).
    pub(crate) fn max_points(&self, shape: Shape<'_>) -> u32 {
        let Some(l) = self.limits.as_ref().filter(|_| self.cfg.pace) else {
            return u32::MAX;
        };
        let set = match shape {
            Shape::Telemetry | Shape::Attributes => &l.device,
            Shape::GatewayTelemetry(_) | Shape::GatewayAttributes(_) => &l.gateway,
        };
        set.telemetry_data_points
            .as_ref()
            .map_or(u32::MAX, |r| r.smallest_capacity())
    }

    fn resplit_queued(&mut self) {
        let mut out = VecDeque::with_capacity(self.queued.len());
        while let Some(p) = self.queued.pop_front() {
            match self.resplit(&p) {
                Some(parts) if parts.len() > 1 => {
                    if p.qos == QoS::AtLeastOnce {
                        self.qos1_unacked += parts.len() - 1;
                    }
                    for (payload, data_points) in parts {
                        out.push_back(Publish {
                            payload,
                            data_points,
                            ..p.clone()
                        });
                    }
                }
                _ => out.push_back(p),
            }
        }
        self.queued = out;
    }

    /// The parts of a queued upload that no longer fits, or `None`.
    fn resplit(&self, p: &Publish) -> Option<Vec<(Vec<u8>, u32)>> {
        let budget = self.payload_budget(&p.topic, p.qos);
        let v: Value;
        let device;
        let (shape, data) = match &*p.topic {
            topics::TELEMETRY
            | topics::ATTRIBUTES
            | topics::GATEWAY_TELEMETRY
            | topics::GATEWAY_ATTRIBUTES => {
                v = serde_json::from_slice(&p.payload).ok()?;
                match &*p.topic {
                    topics::TELEMETRY => (Shape::Telemetry, &v),
                    topics::ATTRIBUTES => (Shape::Attributes, &v),
                    topic => {
                        device = upload_device(&v)?;
                        let data = v.get(&device)?;
                        if topic == topics::GATEWAY_TELEMETRY {
                            (Shape::GatewayTelemetry(&device), data)
                        } else {
                            (Shape::GatewayAttributes(&device), data)
                        }
                    }
                }
            }
            _ => return None,
        };
        let max_points = self.max_points(shape);
        if p.payload.len() <= budget && p.data_points <= max_points {
            return None;
        }
        split::split(
            shape,
            data,
            budget,
            max_points,
            ("upload", self.cfg.max_packet_size),
        )
        .ok()
    }
}
