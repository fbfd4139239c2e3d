//! The MQTT 3.1.1 client session as a sans-IO state machine: packet ids, the in-flight
//! window, keepalive and liveness timers. No sockets, no clock: the IO task feeds bytes and
//! time in and writes out what [`Session::poll_transmit`] returns.
//!
//! Call order (quinn-proto's shape, like tb-core's `Device`):
//! 1. [`Session::connect`] when a transport is open (queues CONNECT, starts the CONNACK timer);
//!    commands [`publish`](Session::publish), [`subscribe`](Session::subscribe),
//!    [`disconnect`](Session::disconnect) while [`is_up`](Session::is_up);
//! 2. [`handle_data`](Session::handle_data) with every read,
//!    [`handle_timeout`](Session::handle_timeout) once [`poll_timeout`](Session::poll_timeout)
//!    has passed;
//! 3. drain [`poll_event`](Session::poll_event), then write [`poll_transmit`](Session::poll_transmit)
//!    in one write. After [`Event::Closed`] (or a transport error) drop the transport; the next
//!    [`connect`](Session::connect) starts afresh.
//!
//! Design: the session is clean (ThingsBoard keeps no session state, spec 2.7), so nothing
//! survives a connection here: in-flight entries are forgotten on close and tb-core puts the
//! unacknowledged messages back at the head of its queue; the next connection resends them
//! with fresh packet ids. Every packet id maps to the [`MessageId`] it was allocated for, so a
//! PUBACK names its message directly, whatever order acknowledgements come in.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, Subscribe,
    SubscribeFilter, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS as MqttQoS};
use tb_core::{MessageId, Millis, QoS};

/// Largest incoming packet (remaining length) accepted. Design: ThingsBoard caps uplinks at
/// 64 KiB, but downlinks (firmware chunks, attribute responses) may be larger.
pub const MAX_INCOMING: usize = 16 * 1024 * 1024;

/// With data awaiting acknowledgement, a link that stays silent this long is probed with a
/// PINGREQ. Design: a healthy broker acknowledges within milliseconds; waiting a whole
/// keepalive (120 s by default) to notice a dead path leaves traffic stalled that long.
pub const PROBE_AFTER: Millis = 1_000;

/// Least time a PINGREQ is given for an answer (any packet counts) before the link is
/// declared dead; a slow link gets four round trips (measured at CONNACK and PINGRESP).
pub const MIN_PING_TIMEOUT: Millis = 2_000;

/// Settings of a [`Session`].
#[derive(Debug, Clone)]
pub struct Options {
    /// MQTT client identifier.
    pub client_id: String,
    /// User name (ThingsBoard: the access token).
    pub username: Option<String>,
    /// Password (basic MQTT credentials).
    pub password: Option<String>,
    /// Keepalive in seconds; 0 turns PINGREQs off (the early probe still runs).
    pub keepalive_s: u16,
    /// QoS 1 publishes awaiting PUBACK at most.
    pub max_inflight: u16,
}

/// Why the server refused the session (CONNACK return code, MQTT 3.1.1 3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal(pub ConnectReturnCode);

impl Refusal {
    /// The CONNACK return code (1-5).
    pub fn code(&self) -> u8 {
        self.0 as u8
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version (1)",
            ConnectReturnCode::BadClientId => "client identifier rejected (2)",
            ConnectReturnCode::ServiceUnavailable => "server unavailable (3)",
            ConnectReturnCode::BadUserNamePassword => "bad user name or password (4)",
            ConnectReturnCode::NotAuthorized => {
                "not authorised (5): check the access token or credentials"
            }
            ConnectReturnCode::Success => "success (0)",
        })
    }
}

/// Why the session ended the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Close {
    /// CONNACK with a non-zero return code.
    #[error("connection refused by the server: {0}")]
    Refused(Refusal),
    /// No CONNACK in time.
    #[error("no CONNACK within {0} ms")]
    ConnackTimeout(Millis),
    /// Nothing came back in time after a PINGREQ.
    #[error("the server did not answer a PINGREQ within {0} ms: the link is dead")]
    PingTimeout(Millis),
    /// The peer broke the protocol; the byte stream cannot be trusted any more.
    #[error("MQTT protocol error: {0}")]
    Protocol(String),
}

/// Something the host must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// CONNACK 0: the session is up.
    Connected {
        /// The broker's session-present flag.
        session_present: bool,
    },
    /// An incoming PUBLISH (its PUBACK, for QoS 1, is already queued).
    Publish {
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Bytes,
    },
    /// The broker acknowledged this message (PUBACK).
    Acked(MessageId),
    /// An incoming PUBLISH the session would not deliver; the host logs it and goes on.
    Dropped {
        /// Topic name.
        topic: String,
        /// Why, for the log.
        reason: &'static str,
    },
    /// A SUBACK; `refused` counts filters the server refused (return code 0x80).
    Subscribed {
        /// Refused filters.
        refused: usize,
    },
    /// The connection is over; drop the transport.
    Closed(Close),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting { deadline: Millis },
    Up,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Publish(MessageId),
    Subscribe,
}

/// One MQTT client connection's protocol state.
#[derive(Debug)]
pub struct Session {
    opts: Options,
    phase: Phase,
    /// Encoded packets not yet taken by the IO task.
    tx: BytesMut,
    /// The start of an incoming packet whose rest has not arrived.
    rx: BytesMut,
    last_pkid: u16,
    /// Packet ids awaiting PUBACK/SUBACK, oldest first.
    inflight: VecDeque<(u16, Awaiting)>,
    publishes_inflight: u16,
    /// The window filled and has not yet drained to [`Session::refill_at`]; see `has_room`.
    window_full: bool,
    /// The window filled since [`take_backlog`](Session::take_backlog) last reported it.
    backlog: bool,
    events: VecDeque<Event>,
    last_tx: Millis,
    last_rx: Millis,
    connect_sent: Millis,
    /// Since when a PUBACK/SUBACK has been awaited without anything arriving.
    waiting_since: Option<Millis>,
    /// When the outstanding PINGREQ went out.
    ping_sent: Option<Millis>,
    /// Smoothed round trip (CONNACK, PINGRESP).
    rtt: Millis,
}

fn mqtt_qos(q: QoS) -> MqttQoS {
    match q {
        QoS::AtMostOnce => MqttQoS::AtMostOnce,
        QoS::AtLeastOnce => MqttQoS::AtLeastOnce,
    }
}

impl Session {
    /// A session with no connection yet.
    pub fn new(opts: Options) -> Session {
        Session {
            opts,
            phase: Phase::Idle,
            tx: BytesMut::new(),
            rx: BytesMut::new(),
            last_pkid: 0,
            inflight: VecDeque::new(),
            publishes_inflight: 0,
            window_full: false,
            backlog: false,
            events: VecDeque::new(),
            last_tx: 0,
            last_rx: 0,
            connect_sent: 0,
            waiting_since: None,
            ping_sent: None,
            rtt: 0,
        }
    }

    // ---- getters -------------------------------------------------------------------------

    /// Whether CONNACK 0 arrived and the connection is not over.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// Whether a QoS 1 publish fits in the in-flight window now.
    ///
    /// Design: once the window is full it opens again only after a quarter of it (at least
    /// one) is acknowledged, not at the first PUBACK. A steady stream then goes out in
    /// batches, many PUBLISHes per write, instead of one small write per PUBACK, which
    /// costs both sides a wake-up and a system call per message (TCP's silly-window rule,
    /// RFC 1122 4.2.3.3, for the same reason). A lone message never waits: it finds the
    /// window open.
    pub fn has_room(&self) -> bool {
        self.is_up() && !self.window_full && self.publishes_inflight < self.window()
    }

    /// Whether the window is open again after it was full (back-pressure): messages waited
    /// for it. Reported once per filling, when the window has room.
    pub fn take_backlog(&mut self) -> bool {
        if !self.has_room() {
            return false;
        }
        std::mem::take(&mut self.backlog)
    }

    fn window(&self) -> u16 {
        self.opts.max_inflight.max(1)
    }

    /// In-flight publishes the window must drain to before it opens again once full.
    fn refill_at(&self) -> u16 {
        let w = self.window();
        w - (w / 4).max(1)
    }

    /// QoS 1 publishes awaiting PUBACK.
    #[cfg(test)]
    pub fn publishes_inflight(&self) -> u16 {
        self.publishes_inflight
    }

    /// The ping timeout in force: four smoothed round trips, at least [`MIN_PING_TIMEOUT`].
    pub fn ping_timeout(&self) -> Millis {
        (self.rtt * 4).max(MIN_PING_TIMEOUT)
    }

    // ---- commands ------------------------------------------------------------------------

    /// A transport is open: queues CONNECT (clean session) and starts the CONNACK timer.
    /// Forgets whatever the previous connection left.
    pub fn connect(&mut self, now: Millis, connack_timeout: Millis) {
        self.reset();
        let mut c = Connect::new(self.opts.client_id.clone());
        c.keep_alive = self.opts.keepalive_s;
        c.clean_session = true;
        match (&self.opts.username, &self.opts.password) {
            (Some(u), p) => {
                c.set_login(u.clone(), p.clone().unwrap_or_default());
            }
            (None, Some(p)) => {
                c.set_login(String::new(), p.clone());
            }
            (None, None) => {}
        }
        self.write(now, &Packet::Connect(c));
        self.connect_sent = now;
        self.last_rx = now;
        self.phase = Phase::Connecting {
            deadline: now.saturating_add(connack_timeout),
        };
    }

    /// Queues a PUBLISH of message `id`. QoS 1 takes a packet id and a place in the window
    /// (check [`has_room`](Session::has_room) first); returns false (nothing queued) when the
    /// session is not up or the window is full.
    pub fn publish(
        &mut self,
        now: Millis,
        id: MessageId,
        topic: String,
        payload: Bytes,
        qos: QoS,
    ) -> bool {
        if !self.is_up() || (qos == QoS::AtLeastOnce && !self.has_room()) {
            return false;
        }
        let mut p = Publish::from_bytes(topic, mqtt_qos(qos), payload);
        if qos == QoS::AtLeastOnce {
            p.pkid = self.take_pkid(now, Awaiting::Publish(id));
            self.publishes_inflight += 1;
            self.window_full = self.publishes_inflight >= self.window();
            self.backlog |= self.window_full;
        }
        self.write(now, &Packet::Publish(p));
        true
    }

    /// Queues a SUBSCRIBE of `filters` (one packet); its SUBACK comes as
    /// [`Event::Subscribed`]. Returns false when the session is not up.
    pub fn subscribe(&mut self, now: Millis, filters: &[&str], qos: QoS) -> bool {
        if !self.is_up() || filters.is_empty() {
            return false;
        }
        let mut s = Subscribe::new_many(
            filters
                .iter()
                .map(|f| SubscribeFilter::new((*f).to_string(), mqtt_qos(qos))),
        );
        s.pkid = self.take_pkid(now, Awaiting::Subscribe);
        self.write(now, &Packet::Subscribe(s));
        true
    }

    /// Queues DISCONNECT; the session is over once it is written.
    pub fn disconnect(&mut self, now: Millis) {
        if self.is_up() {
            self.write(now, &Packet::Disconnect);
        }
        self.phase = Phase::Closed;
    }

    /// The transport is gone (read error, reset, or after [`Event::Closed`]): forgets the
    /// connection's state. In-flight messages are tb-core's to resend.
    pub fn reset(&mut self) {
        self.phase = Phase::Idle;
        self.tx = BytesMut::new();
        self.rx = BytesMut::new();
        self.inflight = VecDeque::new();
        self.publishes_inflight = 0;
        self.window_full = false;
        self.backlog = false;
        self.events.clear();
        self.waiting_since = None;
        self.ping_sent = None;
    }

    fn take_pkid(&mut self, now: Millis, what: Awaiting) -> u16 {
        // Ids run 1..=65535 in order; skip any still in flight (the window is far smaller
        // than the id space, so a few steps at most).
        let mut id = self.last_pkid;
        loop {
            id = id.wrapping_add(1).max(1);
            if !self.inflight.iter().any(|(p, _)| *p == id) {
                break;
            }
        }
        self.last_pkid = id;
        if self.inflight.is_empty() {
            self.waiting_since = Some(now);
        }
        self.inflight.push_back((id, what));
        id
    }

    fn write(&mut self, now: Millis, packet: &Packet) {
        // Encoding our own well-formed packets cannot fail (sizes are checked by tb-core).
        let _ = packet.write(&mut self.tx, usize::MAX);
        self.last_tx = now;
    }

    fn close(&mut self, why: Close) {
        if matches!(self.phase, Phase::Closed | Phase::Idle) {
            return;
        }
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed(why));
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Bytes read from the transport.
    pub fn handle_data(&mut self, now: Millis, data: &[u8]) {
        if matches!(self.phase, Phase::Closed | Phase::Idle) || data.is_empty() {
            return;
        }
        self.last_rx = now;
        // Anything from the broker shows the path works.
        if self.inflight.is_empty() {
            self.waiting_since = None;
        } else {
            self.waiting_since = Some(now);
        }
        if let Some(sent) = self.ping_sent.take() {
            self.rtt_sample(now.saturating_sub(sent));
        }
        self.rx.extend_from_slice(data);
        loop {
            match Packet::read(&mut self.rx, MAX_INCOMING) {
                Ok(p) => self.handle_packet(now, p),
                Err(CodecError::InsufficientBytes(_)) => break,
                Err(e) => {
                    self.close(Close::Protocol(e.to_string()));
                    break;
                }
            }
            if self.phase == Phase::Closed {
                break;
            }
        }
        if self.rx.is_empty() && self.rx.capacity() > 4096 {
            // Design: an idle connection keeps no big buffer (fleet memory).
            self.rx = BytesMut::new();
        }
    }

    fn rtt_sample(&mut self, sample: Millis) {
        self.rtt = if self.rtt == 0 {
            sample
        } else {
            (self.rtt * 7 + sample) / 8
        };
    }

    fn handle_packet(&mut self, now: Millis, p: Packet) {
        match (self.phase, p) {
            (
                Phase::Connecting { .. },
                Packet::ConnAck(ConnAck {
                    code,
                    session_present,
                }),
            ) => {
                self.rtt_sample(now.saturating_sub(self.connect_sent));
                if code == ConnectReturnCode::Success {
                    self.phase = Phase::Up;
                    self.events.push_back(Event::Connected { session_present });
                } else {
                    self.close(Close::Refused(Refusal(code)));
                }
            }
            (Phase::Connecting { .. }, other) => {
                self.close(Close::Protocol(format!("expected CONNACK, got {other:?}")));
            }
            (Phase::Up, Packet::Publish(p)) if p.qos == MqttQoS::ExactlyOnce => {
                // Design: we subscribe at QoS 1 and ThingsBoard grants at most 1 (spec 2.3), so
                // a QoS 2 PUBLISH breaks MQTT 3.1.1 [MQTT-3.8.4-6] (never above the granted
                // QoS). 4.8 would close the connection; hostile data never costs us the link,
                // so it is dropped and reported instead. It is still answered as 4.3.3 asks of
                // a receiver (PUBREC, then PUBCOMP to the PUBREL) so that the broker releases
                // it and its in-flight slot rather than stalling our deliveries.
                self.write(now, &Packet::PubRec(PubRec::new(p.pkid)));
                self.events.push_back(Event::Dropped {
                    topic: p.topic,
                    reason: "sent at QoS 2, above the QoS 1 we subscribed with",
                });
            }
            (Phase::Up, Packet::PubRel(rel)) => {
                self.write(now, &Packet::PubComp(PubComp::new(rel.pkid)));
            }
            (Phase::Up, Packet::Publish(p)) => {
                if p.qos == MqttQoS::AtLeastOnce {
                    self.write(now, &Packet::PubAck(PubAck::new(p.pkid)));
                }
                self.events.push_back(Event::Publish {
                    topic: p.topic,
                    payload: p.payload,
                });
            }
            (Phase::Up, Packet::PubAck(ack)) => {
                if let Some(Awaiting::Publish(id)) = self.acknowledge(ack.pkid) {
                    self.publishes_inflight -= 1;
                    if self.publishes_inflight <= self.refill_at() {
                        self.window_full = false;
                    }
                    self.events.push_back(Event::Acked(id));
                }
                // An unknown id (a stray or duplicate PUBACK) is ignored.
            }
            (Phase::Up, Packet::SubAck(ack)) => {
                if let Some(Awaiting::Subscribe) = self.acknowledge(ack.pkid) {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                        .count();
                    self.events.push_back(Event::Subscribed { refused });
                }
            }
            (Phase::Up, Packet::PingResp) => {}
            (Phase::Up, Packet::ConnAck(_)) => {
                self.close(Close::Protocol("a second CONNACK".into()));
            }
            // PUBREC/PUBCOMP/UNSUBACK never answer anything we send; packets only a
            // client sends are the peer's mistake. Neither is worth a dead link: ignored.
            _ => {}
        }
    }

    fn acknowledge(&mut self, pkid: u16) -> Option<Awaiting> {
        // Acknowledgements come in order almost always: the match is nearly always the front.
        let pos = self.inflight.iter().position(|(p, _)| *p == pkid)?;
        let (_, what) = self.inflight.remove(pos)?;
        if self.inflight.is_empty() {
            self.waiting_since = None;
        }
        Some(what)
    }

    /// Time passed: CONNACK timeout, PINGREQ due (keepalive, or an early probe while
    /// acknowledgements are awaited on a silent link), PINGREQ unanswered.
    pub fn handle_timeout(&mut self, now: Millis) {
        match self.phase {
            Phase::Connecting { deadline } if now >= deadline => {
                let waited = deadline.saturating_sub(self.connect_sent);
                self.close(Close::ConnackTimeout(waited));
            }
            Phase::Up => {
                if let Some(sent) = self.ping_sent {
                    let limit = self.ping_timeout();
                    if now >= sent.saturating_add(limit) {
                        self.close(Close::PingTimeout(limit));
                    }
                } else if self.ping_due().is_some_and(|t| now >= t) {
                    self.write(now, &Packet::PingReq);
                    self.ping_sent = Some(now);
                }
            }
            _ => {}
        }
    }

    fn ping_due(&self) -> Option<Millis> {
        let keepalive = (self.opts.keepalive_s > 0)
            .then(|| self.last_tx + Millis::from(self.opts.keepalive_s) * 1000);
        let probe = self.waiting_since.map(|t| t + PROBE_AFTER);
        match (keepalive, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- outputs -------------------------------------------------------------------------

    /// Everything queued since the last call, to be written in one write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.tx.is_empty() {
            return None;
        }
        Some(self.tx.split().freeze())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Session::handle_timeout) is due next, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.phase {
            Phase::Connecting { deadline } => Some(deadline),
            Phase::Up => match self.ping_sent {
                Some(sent) => Some(sent.saturating_add(self.ping_timeout())),
                None => self.ping_due(),
            },
            Phase::Idle | Phase::Closed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            client_id: "dev".into(),
            username: Some("tok".into()),
            password: None,
            keepalive_s: 120,
            max_inflight: 2,
        }
    }

    fn out(s: &mut Session) -> Vec<u8> {
        s.poll_transmit().map(|b| b.to_vec()).unwrap_or_default()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    /// A session that sent CONNECT at t=0 and got CONNACK 0 at t=10.
    fn up() -> Session {
        let mut s = Session::new(opts());
        s.connect(0, 5_000);
        out(&mut s);
        s.handle_data(10, &[0x20, 2, 0, 0]);
        assert_eq!(
            events(&mut s),
            vec![Event::Connected {
                session_present: false
            }]
        );
        s
    }

    #[test]
    fn connect_writes_clean_session_with_token_and_keepalive() {
        let mut s = Session::new(opts());
        s.connect(0, 5_000);
        #[rustfmt::skip]
        let want = [
            0x10, 20,                       // CONNECT, remaining length
            0, 4, b'M', b'Q', b'T', b'T', 4, // protocol name, level 4 (3.1.1)
            0b1000_0010,                    // flags: user name, clean session
            0, 120,                         // keepalive 120 s
            0, 3, b'd', b'e', b'v',         // client id
            0, 3, b't', b'o', b'k',         // user name: the token
        ];
        assert_eq!(out(&mut s), want);
        assert_eq!(s.poll_timeout(), Some(5_000));
    }

    #[test]
    fn connack_refusal_closes_with_the_code() {
        let mut s = Session::new(opts());
        s.connect(0, 5_000);
        s.handle_data(3, &[0x20, 2, 0, 5]);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(Close::Refused(Refusal(
                ConnectReturnCode::NotAuthorized
            )))]
        );
        assert!(!s.is_up());
    }

    #[test]
    fn no_connack_in_time_closes() {
        let mut s = Session::new(opts());
        s.connect(100, 3_000);
        s.handle_timeout(3_099);
        assert!(events(&mut s).is_empty());
        s.handle_timeout(3_100);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(Close::ConnackTimeout(3_000))]
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn puback_names_its_message_whatever_the_order() {
        let mut s = up();
        assert!(s.publish(
            20,
            MessageId(7),
            "t".into(),
            Bytes::from_static(b"a"),
            QoS::AtLeastOnce
        ));
        assert!(s.publish(
            20,
            MessageId(8),
            "t".into(),
            Bytes::from_static(b"b"),
            QoS::AtLeastOnce
        ));
        #[rustfmt::skip]
        let want = [
            0x32, 6, 0, 1, b't', 0, 1, b'a', // PUBLISH QoS 1, topic "t", packet id 1
            0x32, 6, 0, 1, b't', 0, 2, b'b', // packet id 2, in one write with the first
        ];
        assert_eq!(out(&mut s), want);
        assert!(!s.has_room(), "window of 2 is full");
        assert!(!s.publish(20, MessageId(9), "t".into(), Bytes::new(), QoS::AtLeastOnce));
        s.handle_data(30, &[0x40, 2, 0, 2, 0x40, 2, 0, 1]);
        assert_eq!(
            events(&mut s),
            vec![Event::Acked(MessageId(8)), Event::Acked(MessageId(7))]
        );
        assert!(s.has_room());
        // A stray or repeated PUBACK is ignored.
        s.handle_data(31, &[0x40, 2, 0, 1]);
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn full_window_reopens_after_a_quarter_is_acknowledged() {
        let mut s = Session::new(Options {
            max_inflight: 8,
            ..opts()
        });
        s.connect(0, 5_000);
        s.handle_data(10, &[0x20, 2, 0, 0]);
        events(&mut s);
        out(&mut s);
        let publish = |s: &mut Session, i: u64| {
            s.publish(20, MessageId(i), "t".into(), Bytes::new(), QoS::AtLeastOnce)
        };
        // A lone message finds the window open and goes out at once.
        assert!(publish(&mut s, 0));
        assert_eq!(out(&mut s), [0x32, 5, 0, 1, b't', 0, 1]);
        for i in 1..8 {
            assert!(publish(&mut s, i));
        }
        assert!(!s.has_room(), "8 of 8 in flight");
        // One PUBACK frees one slot, but the window waits for a quarter (2).
        s.handle_data(30, &[0x40, 2, 0, 1]);
        assert!(!s.has_room());
        assert!(!publish(&mut s, 8));
        s.handle_data(31, &[0x40, 2, 0, 2]);
        assert!(s.has_room());
        assert!(publish(&mut s, 8));
        assert!(publish(&mut s, 9));
        assert!(!s.has_room(), "full again");
        // Below the full mark the window stays open: acknowledging from 7 in flight works
        // one slot at a time.
        s.handle_data(40, &[0x40, 2, 0, 3, 0x40, 2, 0, 4]);
        assert!(s.has_room());
        assert!(publish(&mut s, 10));
        assert!(s.has_room(), "7 of 8 after a refill that did not fill it");
    }

    #[test]
    fn backlog_is_reported_once_the_full_window_reopens() {
        let mut s = Session::new(Options {
            max_inflight: 4,
            ..opts()
        });
        s.connect(0, 5_000);
        s.handle_data(10, &[0x20, 2, 0, 0]);
        let publish = |s: &mut Session, i: u64| {
            s.publish(20, MessageId(i), "t".into(), Bytes::new(), QoS::AtLeastOnce)
        };
        for i in 0..3 {
            assert!(publish(&mut s, i));
        }
        assert!(!s.take_backlog(), "3 of 4: never full");
        assert!(publish(&mut s, 3));
        assert!(!s.take_backlog(), "full: nothing can go yet");
        s.handle_data(30, &[0x40, 2, 0, 1]);
        assert!(s.take_backlog(), "reopened after being full");
        assert!(!s.take_backlog(), "reported once");
        s.reset();
        assert!(!s.take_backlog());
    }

    #[test]
    fn qos0_publish_takes_no_packet_id_or_window() {
        let mut s = up();
        for i in 0..5 {
            assert!(s.publish(
                20,
                MessageId(i),
                "t".into(),
                Bytes::from_static(b"x"),
                QoS::AtMostOnce
            ));
        }
        assert_eq!(&out(&mut s)[..6], &[0x30, 4, 0, 1, b't', b'x']);
        assert_eq!(s.publishes_inflight(), 0);
    }

    #[test]
    fn packet_ids_skip_ids_still_in_flight_after_wrapping() {
        let mut s = up();
        s.last_pkid = 65_534;
        assert!(s.publish(0, MessageId(1), "t".into(), Bytes::new(), QoS::AtLeastOnce));
        assert!(s.publish(0, MessageId(2), "t".into(), Bytes::new(), QoS::AtLeastOnce));
        let ids: Vec<u16> = s.inflight.iter().map(|(p, _)| *p).collect();
        assert_eq!(ids, vec![65_535, 1], "0 is never a packet id");
        s.handle_data(1, &[0x40, 2, 0xff, 0xff]);
        s.last_pkid = 0;
        assert!(s.publish(0, MessageId(3), "t".into(), Bytes::new(), QoS::AtLeastOnce));
        assert_eq!(
            s.inflight.back().map(|(p, _)| *p),
            Some(2),
            "1 is still in flight"
        );
    }

    #[test]
    fn incoming_qos1_publish_is_acknowledged_and_reported() {
        let mut s = up();
        #[rustfmt::skip]
        s.handle_data(40, &[
            0x32, 8, 0, 2, b'a', b'b', 0x12, 0x34, b'{', // PUBLISH QoS 1 "ab", id 0x1234, "{"
        ]);
        assert!(
            events(&mut s).is_empty(),
            "half a packet waits for the rest"
        );
        s.handle_data(41, b"}");
        assert_eq!(
            events(&mut s),
            vec![Event::Publish {
                topic: "ab".into(),
                payload: Bytes::from_static(b"{}")
            }]
        );
        assert_eq!(out(&mut s), [0x40, 2, 0x12, 0x34]);
    }

    #[test]
    fn subscribe_and_suback_report_refusals() {
        let mut s = up();
        assert!(s.subscribe(20, &["a", "b"], QoS::AtLeastOnce));
        #[rustfmt::skip]
        let want = [
            0x82, 10, 0, 1,          // SUBSCRIBE, packet id 1
            0, 1, b'a', 1,           // "a" at QoS 1
            0, 1, b'b', 1,           // "b" at QoS 1
        ];
        assert_eq!(out(&mut s), want);
        s.handle_data(30, &[0x90, 4, 0, 1, 1, 0x80]);
        assert_eq!(events(&mut s), vec![Event::Subscribed { refused: 1 }]);
    }

    #[test]
    fn idle_link_pings_at_keepalive_and_closes_without_answer() {
        let mut s = up();
        // CONNECT went out at 0: the first PINGREQ is due a keepalive later.
        assert_eq!(s.poll_timeout(), Some(120_000));
        s.handle_timeout(119_999);
        assert_eq!(out(&mut s), Vec::<u8>::new());
        s.handle_timeout(120_000);
        assert_eq!(out(&mut s), [0xc0, 0]);
        // The round trip measured at CONNACK is 10 ms: the floor applies.
        assert_eq!(s.poll_timeout(), Some(120_000 + MIN_PING_TIMEOUT));
        s.handle_timeout(120_000 + MIN_PING_TIMEOUT);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(Close::PingTimeout(MIN_PING_TIMEOUT))]
        );
    }

    #[test]
    fn pingresp_keeps_the_link() {
        let mut s = up();
        s.handle_timeout(120_000);
        out(&mut s);
        s.handle_data(120_050, &[0xd0, 0]);
        s.handle_timeout(125_000);
        assert!(events(&mut s).is_empty());
        assert_eq!(
            s.poll_timeout(),
            Some(240_000),
            "next PINGREQ a keepalive after the last"
        );
    }

    #[test]
    fn silent_link_with_unacknowledged_data_is_probed_early() {
        let mut s = up();
        assert!(s.publish(
            1_000,
            MessageId(1),
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce
        ));
        out(&mut s);
        assert_eq!(s.poll_timeout(), Some(1_000 + PROBE_AFTER));
        s.handle_timeout(1_000 + PROBE_AFTER);
        assert_eq!(out(&mut s), [0xc0, 0], "PINGREQ probe");
        let dead = 1_000 + PROBE_AFTER + MIN_PING_TIMEOUT;
        assert_eq!(s.poll_timeout(), Some(dead));
        s.handle_timeout(dead);
        assert_eq!(
            events(&mut s),
            vec![Event::Closed(Close::PingTimeout(MIN_PING_TIMEOUT))]
        );
    }

    #[test]
    fn acknowledgements_arriving_keep_the_probe_away() {
        let mut s = up();
        s.publish(
            1_000,
            MessageId(1),
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
        );
        s.publish(
            1_000,
            MessageId(2),
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
        );
        out(&mut s);
        s.handle_data(1_900, &[0x40, 2, 0, 1]);
        assert_eq!(s.poll_timeout(), Some(1_900 + PROBE_AFTER));
        s.handle_data(2_000, &[0x40, 2, 0, 2]);
        assert_eq!(
            s.poll_timeout(),
            Some(1_000 + 120_000),
            "nothing awaited: keepalive only"
        );
    }

    #[test]
    fn malformed_bytes_close_the_connection() {
        let mut s = up();
        s.handle_data(50, &[0x40, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            events(&mut s).as_slice(),
            [Event::Closed(Close::Protocol(_))]
        ));
        assert!(!s.is_up());
    }

    #[test]
    fn oversized_incoming_packet_closes() {
        let mut s = up();
        // Remaining length 0x7fffffff-ish: over MAX_INCOMING, refused before it arrives.
        s.handle_data(50, &[0x30, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(
            events(&mut s).as_slice(),
            [Event::Closed(Close::Protocol(_))]
        ));
    }

    #[test]
    fn disconnect_writes_disconnect_and_ends() {
        let mut s = up();
        s.disconnect(60);
        assert_eq!(out(&mut s), [0xe0, 0]);
        assert!(!s.is_up());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn reconnect_starts_afresh() {
        let mut s = up();
        s.publish(20, MessageId(1), "t".into(), Bytes::new(), QoS::AtLeastOnce);
        s.reset();
        s.connect(100, 5_000);
        assert_eq!(s.publishes_inflight(), 0);
        out(&mut s);
        s.handle_data(110, &[0x20, 2, 0, 0]);
        events(&mut s);
        s.publish(
            120,
            MessageId(2),
            "t".into(),
            Bytes::new(),
            QoS::AtLeastOnce,
        );
        assert_eq!(
            s.inflight.back().map(|(p, _)| *p),
            Some(2),
            "ids go on, none reused"
        );
    }

    #[test]
    fn incoming_qos2_publish_is_dropped_answered_and_the_session_goes_on() {
        let mut s = up();
        #[rustfmt::skip]
        s.handle_data(40, &[
            0x34, 7, 0, 2, b'a', b'b', 0x00, 0x07, b'x', // PUBLISH QoS 2 "ab", id 7, "x"
        ]);
        assert_eq!(
            events(&mut s),
            vec![Event::Dropped {
                topic: "ab".into(),
                reason: "sent at QoS 2, above the QoS 1 we subscribed with",
            }]
        );
        assert_eq!(out(&mut s), [0x50, 2, 0, 7], "PUBREC, not PUBACK");
        s.handle_data(41, &[0x62, 2, 0, 7]); // PUBREL id 7
        assert_eq!(out(&mut s), [0x70, 2, 0, 7], "PUBCOMP");
        assert!(s.is_up());
        // The next QoS 1 PUBLISH is delivered and acknowledged as ever.
        s.handle_data(42, &[0x32, 6, 0, 1, b'c', 0x00, 0x08, b'y']);
        assert_eq!(
            events(&mut s),
            vec![Event::Publish {
                topic: "c".into(),
                payload: Bytes::from_static(b"y")
            }]
        );
        assert_eq!(out(&mut s), [0x40, 2, 0, 8]);
    }
}
