//! The outgoing queue of a [`Device`]: accepted messages wait in `queued`, sent QoS 1 ones in
//! `inflight` until their PUBACK; and the echo filter, which recognises a device's own
//! publishes coming back from the broker.
//!
//! Design: these are `impl Device` blocks (as in `gateway.rs` and `pacing.rs`), not a type of
//! their own, because every command, the pacer and the gateway queue through them and the
//! queue's bound counts both lists. Moved out of `device.rs` unchanged.

use alloc::borrow::Cow;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use serde_json::Value;

use crate::device::{Device, MessageId, Millis, Publish, QoS};
use crate::error::{CapacityError, Error, UsageError};
use crate::split::{self, Shape};
use crate::topics;

/// Most echo records kept; older ones are forgotten first.
const MAX_ECHOES: usize = 64;

#[derive(Debug)]
struct Echo {
    topic: Cow<'static, str>,
    payload: Vec<u8>,
    expires: Millis,
}

/// What the device sent lately on topics the broker routes back to it.
///
/// Design: mosquitto routes a device's publishes on `attributes`, `rpc/request/N` and
/// `rpc/response/N` back to it, because the device subscribes to those filters. Remember what
/// went out so that the copy coming back is recognised and dropped.
#[derive(Debug, Default)]
pub(crate) struct Echoes(VecDeque<Echo>);

impl Echoes {
    /// Records `p` if its topic is one the broker would route back, until `expires`.
    pub(crate) fn remember(&mut self, p: &Publish, expires: Millis) {
        if !Self::is_candidate(&p.topic) {
            return;
        }
        if self.0.len() >= MAX_ECHOES {
            self.0.pop_front();
        }
        self.0.push_back(Echo {
            topic: p.topic.clone(),
            payload: p.payload.clone(),
            expires,
        });
    }

    /// Whether `topic`/`payload` is the copy of something sent; the record is used up.
    pub(crate) fn take(&mut self, now: Millis, topic: &str, payload: &[u8]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        while self.0.front().is_some_and(|e| e.expires <= now) {
            self.0.pop_front();
        }
        match self
            .0
            .iter()
            .position(|e| e.topic == topic && e.payload == payload)
        {
            Some(pos) => {
                self.0.remove(pos);
                true
            }
            None => false,
        }
    }

    fn is_candidate(topic: &str) -> bool {
        topic == topics::ATTRIBUTES
            || topic.starts_with(topics::RPC_REQUEST_PREFIX)
            || topic.starts_with(topics::RPC_RESPONSE_PREFIX)
            || topic == topics::GATEWAY_ATTRIBUTES
            || topic == topics::GATEWAY_RPC
    }
}

impl Device {
    // ---- queueing (for every command) ------------------------------------------------------

    /// Payload bytes a message on `topic` may carry. spec 2.5: the limit counts the remaining
    /// length: topic (2 + len), packet id, payload.
    pub(crate) fn payload_budget(&self, topic: &str, qos: QoS) -> usize {
        let overhead = 2 + topic.len() + if qos == QoS::AtLeastOnce { 2 } else { 0 };
        self.cfg.max_packet_size.saturating_sub(overhead)
    }

    pub(crate) fn enqueue(
        &mut self,
        topic: Cow<'static, str>,
        payload: Vec<u8>,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.enqueue_parts(topic, alloc::vec![(payload, 0)], qos)
    }

    /// Queues one message as one or more publishes (the parts of a split upload) under one id.
    pub(crate) fn enqueue_parts(
        &mut self,
        topic: Cow<'static, str>,
        parts: Vec<(Vec<u8>, u32)>,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        let budget = self.payload_budget(&topic, qos);
        if let Some((p, _)) = parts.iter().find(|(p, _)| p.len() > budget) {
            let size = p.len() + (self.cfg.max_packet_size - budget);
            return Err(UsageError::Payload(alloc::format!(
                "message on {topic} is {size} bytes; ThingsBoard accepts at most {} per packet",
                self.cfg.max_packet_size
            ))
            .into());
        }
        if self.unacknowledged() + parts.len() > self.cfg.max_queued {
            return Err(CapacityError::QueueFull {
                limit: self.cfg.max_queued,
            }
            .into());
        }
        self.next_msg += 1;
        let id = MessageId(self.next_msg);
        if qos == QoS::AtLeastOnce {
            self.qos1_unacked += parts.len();
        }
        for (payload, data_points) in parts {
            self.queued.push_back(Publish {
                id,
                topic: topic.clone(),
                payload,
                qos,
                data_points,
                carries: 1,
            });
        }
        Ok(id)
    }

    /// Queues a telemetry or attribute upload, split into parts that each fit the packet size
    /// and the smallest data-point window.
    pub(crate) fn enqueue_upload(
        &mut self,
        topic: &'static str,
        shape: Shape<'_>,
        data: &Value,
        qos: QoS,
        what: &str,
    ) -> Result<MessageId, Error> {
        let budget = self.payload_budget(topic, qos);
        let limit = self.cfg.max_packet_size;
        let parts = split::split(shape, data, budget, self.max_points(shape), (what, limit))?;
        self.enqueue_parts(topic.into(), parts, qos)
    }

    /// Removes the queued (not yet sent) publishes that `gone` picks and keeps the count of
    /// unacknowledged QoS 1 publishes in step (the queue's bound rests on it); returns how
    /// many were removed. Messages are deleted from `queued` only here (sending moves them
    /// to `inflight`; re-splitting in `pacing.rs` replaces them by their parts).
    pub(crate) fn remove_queued(&mut self, mut gone: impl FnMut(&Publish) -> bool) -> usize {
        let before = self.queued.len();
        let mut qos1 = 0;
        self.queued.retain(|p| {
            let g = gone(p);
            if g && p.qos == QoS::AtLeastOnce {
                qos1 += 1;
            }
            !g
        });
        self.qos1_unacked -= qos1;
        before - self.queued.len()
    }

    pub(crate) fn requeue_inflight(&mut self) {
        // A merged packet's messages go back one by one (they may merge again, or not).
        while let Some(mut p) = self.inflight.pop_back() {
            p.carries = 1;
            self.queued.push_front(p);
        }
    }

    // ---- durable queue (a host that persists accepted messages) ---------------------------

    /// The parts of message `id` still queued (not yet handed to the network), in order: what a
    /// host persists right after a command accepted the message.
    pub fn queued_parts(&self, id: MessageId) -> impl Iterator<Item = &Publish> {
        // Design: a message's parts are queued together, and one just accepted is at the
        // back: look there first, so storing each message does not walk a long queue.
        let tail = self.queued.iter().rev().take_while(|p| p.id == id).count();
        let start = if tail > 0 {
            self.queued.len() - tail
        } else {
            0
        };
        self.queued.range(start..).filter(move |p| p.id == id)
    }

    /// Removes message `id` if no part of it was handed to the network yet (the host could
    /// not persist it). Returns whether it was removed.
    pub fn withdraw(&mut self, id: MessageId) -> bool {
        if self.inflight.iter().any(|p| p.id == id) {
            return false;
        }
        self.remove_queued(|p| p.id == id) > 0
    }

    /// Queues a message the host restored from its durable queue (accepted by an earlier
    /// process), as it was: no validation, no bound (it was within the bound when accepted).
    pub fn restore(&mut self, topic: String, parts: Vec<Vec<u8>>, qos: QoS) -> MessageId {
        self.next_msg += 1;
        let id = MessageId(self.next_msg);
        let topic: Cow<'static, str> = topic.into();
        for payload in parts {
            if qos == QoS::AtLeastOnce {
                self.qos1_unacked += 1;
            }
            self.queued.push_back(Publish {
                id,
                topic: topic.clone(),
                payload,
                qos,
                data_points: 0,
                carries: 1,
            });
        }
        id
    }
}
