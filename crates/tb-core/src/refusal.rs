//! Giving up on a message the server will never take (a "poison" message).
//!
//! A publish bigger than the server's `maxPayloadSize` (spec 2.5: 65536 by default, lower when
//! an admin sets `transport.mqtt.netty.max_payload_size`) gets no PUBACK: the server closes the
//! connection (MQTT 3.x: a bare TCP close). A client that does not know the limit (no
//! `getSessionLimits`, spec 8) resends the message first after every reconnect, is closed
//! again, and everything queued behind it waits forever.
//!
//! The rule: when the peer closes a live connection [`STRIKES`] times in a row while the same
//! message is the oldest one written and unacknowledged, and no message of ours was
//! acknowledged on any of those connections, the message is refused: it leaves the queue,
//! and the host fails its handle and logs why. Only a message bigger than every packet this
//! session got acknowledged counts.
//!
//! Design: what the rule must not catch, and why it does not:
//! - a broker restart or a reset path: the peer closes too, but then the reconnect fails (no
//!   connection, no strike) or the next connection acknowledges (the count starts over);
//! - a silent path: the host notices it by its own timeout, not a peer close, and does not
//!   report it as one;
//! - a rate limit (spec 2.9: exceeded, the server closes without PUBACK, over and over while
//!   the window is full): the message at the head is usually no bigger than what was
//!   acknowledged before, so it does not count (the size guard). A bigger one under a rate
//!   limit could still be refused after three closes; the host logs it as an ERROR.

use alloc::borrow::Cow;
use alloc::collections::VecDeque;

use crate::device::{Device, MessageId, Publish, QoS};

/// Closes in a row, each right after the same message was written, that refuse it.
pub const STRIKES: u8 = 3;

/// Refused messages remembered for their handles; older ones are forgotten first.
const MAX_REFUSED: usize = 256;

/// A message the server refused (see the module docs); its handle reports this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The message.
    pub id: MessageId,
    /// Its topic.
    pub topic: Cow<'static, str>,
    /// MQTT remaining length of its (largest) packet, as the server's limit counts it.
    pub size: usize,
    /// How many times the server closed the connection on it.
    pub closes: u8,
}

/// The refusal rule's state in a [`Device`].
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    /// A connection is live and has not ended by a peer close yet.
    on_link: bool,
    /// A message of ours was acknowledged on this connection.
    acked_on_link: bool,
    /// The largest packet acknowledged so far (remaining length).
    largest_acked: usize,
    /// The message the last closes came right after, and how many in a row.
    suspect: Option<(MessageId, u8)>,
    /// Messages refused, for their handles.
    refused: VecDeque<Refused>,
}

/// MQTT remaining length of `p` as a PUBLISH (spec 2.5: topic, packet id, payload).
fn packet_size(p: &Publish) -> usize {
    2 + p.topic.len() + if p.qos == QoS::AtLeastOnce { 2 } else { 0 } + p.payload.len()
}

impl Refusals {
    /// A CONNACK: a new connection.
    pub(crate) fn on_connected(&mut self) {
        self.acked_on_link = false;
        self.on_link = true;
    }

    /// The link is down. A live connection that ended otherwise than by a peer close (a
    /// silent path, our own close) breaks the row.
    pub(crate) fn on_disconnected(&mut self) {
        if self.on_link {
            self.suspect = None;
        }
        self.on_link = false;
    }

    /// A PUBACK for one of our messages (`p`, still in `inflight`).
    pub(crate) fn on_acked(&mut self, p: &Publish) {
        // QoS 0 is "acknowledged" once written: that says nothing about the server.
        if p.qos != QoS::AtLeastOnce {
            return;
        }
        if p.id.0 != 0 {
            self.acked_on_link = true;
            self.suspect = None;
        }
        self.largest_acked = self.largest_acked.max(packet_size(p));
    }
}

impl Device {
    /// The server closed a live connection (EOF, a reset, a DISCONNECT), as opposed to the
    /// host giving up on a silent link or closing it itself; then the link is down as after
    /// [`handle_disconnected`](Device::handle_disconnected), which this calls.
    ///
    /// Returns the message refused by this close, if the rule in [`crate::refusal`] says the
    /// server will never take it: it is no longer queued (every part of it), so the host
    /// fails its handle, removes it from durable storage and logs why.
    pub fn handle_closed_by_peer(&mut self) -> Option<Refused> {
        let refused = self.strike();
        self.handle_disconnected();
        refused
    }

    fn strike(&mut self) -> Option<Refused> {
        let r = &mut self.refusals;
        if !r.on_link {
            return None;
        }
        r.on_link = false;
        if r.acked_on_link {
            return None;
        }
        // The oldest message of ours written on this connection and not acknowledged.
        let Some(head) = self.inflight.iter().find(|p| p.id.0 != 0) else {
            r.suspect = None;
            return None;
        };
        let size = packet_size(head);
        if size <= r.largest_acked {
            r.suspect = None;
            return None;
        }
        let n = match r.suspect {
            Some((id, n)) if id == head.id => n.saturating_add(1),
            _ => 1,
        };
        if n < STRIKES {
            r.suspect = Some((head.id, n));
            return None;
        }
        r.suspect = None;
        let (id, topic) = (head.id, head.topic.clone());
        let size = self
            .inflight
            .iter()
            .chain(self.queued.iter())
            .filter(|p| p.id == id)
            .map(packet_size)
            .max()
            .unwrap_or(size);
        let mut qos1 = 0;
        let mut gone = |p: &Publish| {
            if p.id == id && p.qos == QoS::AtLeastOnce {
                qos1 += 1;
            }
            p.id != id
        };
        self.inflight.retain(|p| gone(p));
        self.queued.retain(|p| gone(p));
        self.qos1_unacked -= qos1;
        let refused = Refused {
            id,
            topic,
            size,
            closes: n,
        };
        let r = &mut self.refusals;
        if r.refused.len() >= MAX_REFUSED {
            r.refused.pop_front();
        }
        r.refused.push_back(refused.clone());
        Some(refused)
    }

    /// Whether the server refused message `id` (see [`handle_closed_by_peer`]), and how.
    ///
    /// [`handle_closed_by_peer`]: Device::handle_closed_by_peer
    pub fn refused(&self, id: MessageId) -> Option<&Refused> {
        self.refusals.refused.iter().find(|r| r.id == id)
    }
}
