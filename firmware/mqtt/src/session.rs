//! The client side of one MQTT connection as a sans-IO state machine.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::codec::{self, DecodeError, Packet};
use crate::Millis;

/// Settings of a [`Session`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Keep alive in seconds (CONNECT); 0 turns pings off.
    pub keep_alive_s: u16,
    /// Largest packet accepted from the server, fixed header included; a bigger one ends the
    /// connection (it bounds the receive buffer).
    pub max_packet_size: usize,
    /// How long to wait for CONNACK after CONNECT.
    pub connack_timeout_ms: Millis,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keep_alive_s: 60,
            max_packet_size: 4096,
            connack_timeout_ms: 10_000,
        }
    }
}

/// Why a connection must be closed. After this event the host closes the TCP connection and
/// calls [`Session::handle_closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The server sent bytes that are not MQTT 3.1.1 (or not what it may send).
    Protocol(DecodeError),
    /// A packet other than CONNACK came first, or a second CONNACK came.
    UnexpectedConnAck,
    /// No CONNACK within [`Config::connack_timeout_ms`].
    ConnAckTimeout,
    /// No PINGRESP within a keep-alive period after PINGREQ (3.1.2.10).
    PingTimeout,
}

/// Something the host must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK accepted the session.
    Connected {
        /// The server kept state from an earlier session.
        session_present: bool,
    },
    /// CONNACK refused the session with this return code (1-5); close the connection.
    Refused(u8),
    /// A PUBLISH arrived (a QoS 1 one is acknowledged already).
    Publish {
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// The server acknowledged the QoS 1 publish with this packet id.
    PubAck(u16),
    /// The server answered SUBSCRIBE `pkid` with one return code per filter.
    SubAck {
        /// The subscribe.
        pkid: u16,
        /// 0 or 1 granted QoS, 0x80 failure.
        codes: Vec<u8>,
    },
    /// The connection is unusable; close it.
    Lost(Lost),
}

/// Misuse of a [`Session`] (the caller's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageError {
    /// Publish or subscribe before CONNACK.
    NotConnected,
    /// A packet over the 268,435,455-byte protocol limit, or a field over 65,535 bytes.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    AwaitingConnAck { deadline: Millis },
    Connected,
}

/// One MQTT 3.1.1 client connection, without sockets or clock.
///
/// Call order: [`connect`](Session::connect) once the TCP connection is up; then feed bytes
/// read from it to [`handle_input`](Session::handle_input) and call
/// [`handle_timeout`](Session::handle_timeout) when [`poll_timeout`](Session::poll_timeout)
/// has passed; after each input or command write [`output`](Session::output) to the socket
/// (and [`consume`](Session::consume) what was written) and drain
/// [`poll_event`](Session::poll_event). When the TCP connection closes, call
/// [`handle_closed`](Session::handle_closed).
///
/// The session keeps no publish for resending: ThingsBoard keeps no session state (clean
/// session, spec 2.7), so the layer above (tb-core) holds every unacknowledged QoS 1 message
/// and publishes it again after the next CONNACK.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    state: State,
    next_pkid: u16,
    out: Vec<u8>,
    rx: Vec<u8>,
    events: VecDeque<Event>,
    /// When a packet was last written (keep alive counts from it, 3.1.2.10).
    last_sent: Millis,
    /// Set while a PINGREQ awaits its PINGRESP.
    ping_deadline: Option<Millis>,
}

impl Session {
    /// A closed session.
    pub fn new(cfg: Config) -> Session {
        Session {
            cfg,
            state: State::Closed,
            next_pkid: 0,
            out: Vec::new(),
            rx: Vec::new(),
            events: VecDeque::new(),
            last_sent: 0,
            ping_deadline: None,
        }
    }

    // ---- getters ---------------------------------------------------------------------------

    /// Whether CONNACK accepted the session and it is not closed since.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether CONNECT was written and no CONNACK came yet.
    pub fn is_connecting(&self) -> bool {
        matches!(self.state, State::AwaitingConnAck { .. })
    }

    /// Bytes to write to the socket, oldest first.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    // ---- commands --------------------------------------------------------------------------

    /// Starts a session on a fresh TCP connection: writes CONNECT (clean session).
    pub fn connect(
        &mut self,
        now: Millis,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), UsageError> {
        let long = |n: usize| n > usize::from(u16::MAX);
        if long(client_id.len())
            || username.is_some_and(|u| long(u.len()))
            || password.is_some_and(|p| long(p.len()))
        {
            return Err(UsageError::TooLarge);
        }
        self.reset();
        codec::connect(
            &mut self.out,
            client_id,
            username,
            password,
            self.cfg.keep_alive_s,
        );
        self.last_sent = now;
        self.state = State::AwaitingConnAck {
            deadline: now.saturating_add(self.cfg.connack_timeout_ms),
        };
        Ok(())
    }

    /// Writes a PUBLISH; returns its packet id for QoS 1 (`qos1`), None for QoS 0. A QoS 1
    /// publish is done when [`Event::PubAck`] names the id.
    pub fn publish(
        &mut self,
        now: Millis,
        topic: &str,
        payload: &[u8],
        qos1: bool,
    ) -> Result<Option<u16>, UsageError> {
        if self.state != State::Connected {
            return Err(UsageError::NotConnected);
        }
        if topic.len() > usize::from(u16::MAX)
            || codec::publish_size(topic, payload.len(), qos1) > codec::MAX_REMAINING_LENGTH
        {
            return Err(UsageError::TooLarge);
        }
        let pkid = qos1.then(|| self.take_pkid());
        codec::publish(&mut self.out, topic, payload, pkid, false);
        self.last_sent = now;
        Ok(pkid)
    }

    /// Writes a SUBSCRIBE for `filters` at `qos` (0 or 1); returns its packet id, named again
    /// by [`Event::SubAck`].
    pub fn subscribe(&mut self, now: Millis, filters: &[&str], qos: u8) -> Result<u16, UsageError> {
        if self.state != State::Connected {
            return Err(UsageError::NotConnected);
        }
        if filters.iter().any(|f| f.len() > usize::from(u16::MAX)) {
            return Err(UsageError::TooLarge);
        }
        let pkid = self.take_pkid();
        codec::subscribe(&mut self.out, pkid, filters, qos);
        self.last_sent = now;
        Ok(pkid)
    }

    /// Writes DISCONNECT and closes the session; close the socket once the output is written.
    pub fn disconnect(&mut self) {
        if self.state != State::Closed {
            codec::disconnect(&mut self.out);
            self.state = State::Closed;
            self.ping_deadline = None;
        }
    }

    /// `n` bytes of [`output`](Session::output) were written to the socket.
    pub fn consume(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    // ---- inputs ----------------------------------------------------------------------------

    /// Bytes read from the socket. Complete packets become events; a partial one waits for
    /// the rest. Bad bytes end the connection ([`Event::Lost`]) and the rest is ignored.
    pub fn handle_input(&mut self, now: Millis, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.rx.extend_from_slice(data);
        let mut used = 0;
        loop {
            match codec::decode(&self.rx[used..], self.cfg.max_packet_size) {
                Ok(Some((packet, n))) => {
                    let packet = owned(packet);
                    used += n;
                    if let Err(lost) = self.handle_packet(now, packet) {
                        return self.lose(lost);
                    }
                    if self.state == State::Closed {
                        // Refused: nothing after the CONNACK counts.
                        self.rx.clear();
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => return self.lose(Lost::Protocol(e)),
            }
        }
        self.rx.drain(..used);
    }

    fn handle_packet(&mut self, now: Millis, packet: Owned) -> Result<(), Lost> {
        let awaiting = matches!(self.state, State::AwaitingConnAck { .. });
        match packet {
            Owned::ConnAck {
                session_present,
                code,
            } if awaiting => {
                if code == 0 {
                    self.state = State::Connected;
                    self.events.push_back(Event::Connected { session_present });
                } else {
                    self.state = State::Closed;
                    self.events.push_back(Event::Refused(code));
                }
            }
            _ if awaiting => return Err(Lost::UnexpectedConnAck),
            Owned::ConnAck { .. } => return Err(Lost::UnexpectedConnAck),
            Owned::Publish {
                topic,
                pkid,
                payload,
            } => {
                if let Some(id) = pkid {
                    codec::puback(&mut self.out, id);
                    self.last_sent = now;
                }
                self.events.push_back(Event::Publish { topic, payload });
            }
            Owned::PubAck(id) => self.events.push_back(Event::PubAck(id)),
            Owned::SubAck { pkid, codes } => self.events.push_back(Event::SubAck { pkid, codes }),
            Owned::UnsubAck => {}
            Owned::PingResp => self.ping_deadline = None,
        }
        Ok(())
    }

    /// Time passed: writes PINGREQ when nothing was sent for a keep-alive period, and ends the
    /// connection when CONNACK or PINGRESP is overdue.
    pub fn handle_timeout(&mut self, now: Millis) {
        match self.state {
            State::Closed => {}
            State::AwaitingConnAck { deadline } => {
                if now >= deadline {
                    self.lose(Lost::ConnAckTimeout);
                }
            }
            State::Connected => {
                if self.ping_deadline.is_some_and(|d| now >= d) {
                    return self.lose(Lost::PingTimeout);
                }
                let period = self.keep_alive_ms();
                if period > 0 && self.ping_deadline.is_none() && now >= self.last_sent + period {
                    codec::pingreq(&mut self.out);
                    self.last_sent = now;
                    self.ping_deadline = Some(now + period);
                }
            }
        }
    }

    /// The TCP connection closed (either side). The session is closed; unread input and
    /// unwritten output are dropped.
    pub fn handle_closed(&mut self) {
        self.reset();
    }

    // ---- outputs ---------------------------------------------------------------------------

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Session::handle_timeout) is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match self.state {
            State::Closed => None,
            State::AwaitingConnAck { deadline } => Some(deadline),
            State::Connected => {
                let period = self.keep_alive_ms();
                match self.ping_deadline {
                    Some(d) => Some(d),
                    None if period > 0 => Some(self.last_sent + period),
                    None => None,
                }
            }
        }
    }

    // ---- internals -------------------------------------------------------------------------

    fn keep_alive_ms(&self) -> Millis {
        Millis::from(self.cfg.keep_alive_s) * 1000
    }

    fn take_pkid(&mut self) -> u16 {
        // 3.3.2.2: non-zero. Wrapping is safe: far fewer than 65,535 are ever in flight.
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    fn reset(&mut self) {
        self.state = State::Closed;
        self.out.clear();
        self.rx.clear();
        self.ping_deadline = None;
    }

    fn lose(&mut self, why: Lost) {
        self.reset();
        self.events.push_back(Event::Lost(why));
    }
}

/// A decoded packet copied out of the receive buffer (so the buffer can be drained).
enum Owned {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        topic: String,
        pkid: Option<u16>,
        payload: Vec<u8>,
    },
    PubAck(u16),
    SubAck {
        pkid: u16,
        codes: Vec<u8>,
    },
    UnsubAck,
    PingResp,
}

fn owned(p: Packet<'_>) -> Owned {
    match p {
        Packet::ConnAck {
            session_present,
            code,
        } => Owned::ConnAck {
            session_present,
            code,
        },
        Packet::Publish {
            topic,
            pkid,
            payload,
            ..
        } => Owned::Publish {
            topic: topic.to_string(),
            pkid,
            payload: payload.to_vec(),
        },
        Packet::PubAck { pkid } => Owned::PubAck(pkid),
        Packet::SubAck { pkid, codes } => Owned::SubAck {
            pkid,
            codes: codes.to_vec(),
        },
        Packet::UnsubAck { .. } => Owned::UnsubAck,
        Packet::PingResp => Owned::PingResp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(now: Millis) -> Session {
        let mut s = Session::new(Config::default());
        s.connect(now, "c", Some("token"), None).unwrap();
        let n = s.output().len();
        s.consume(n);
        s.handle_input(now, &[0x20, 2, 0, 0]);
        assert_eq!(
            s.poll_event(),
            Some(Event::Connected {
                session_present: false
            })
        );
        s
    }

    #[test]
    fn connack_refusal_closes() {
        let mut s = Session::new(Config::default());
        s.connect(0, "c", Some("bad"), None).unwrap();
        s.handle_input(1, &[0x20, 2, 0, 5]);
        assert_eq!(s.poll_event(), Some(Event::Refused(5)));
        assert!(!s.is_connected());
        assert_eq!(s.publish(2, "t", b"x", true), Err(UsageError::NotConnected));
    }

    #[test]
    fn publish_before_connack_is_refused() {
        let mut s = Session::new(Config::default());
        s.connect(0, "c", None, None).unwrap();
        assert_eq!(s.publish(0, "t", b"x", true), Err(UsageError::NotConnected));
        assert_eq!(s.subscribe(0, &["t"], 1), Err(UsageError::NotConnected));
    }

    #[test]
    fn packet_before_connack_loses_the_connection() {
        let mut s = Session::new(Config::default());
        s.connect(0, "c", None, None).unwrap();
        s.handle_input(1, &[0x40, 2, 0, 1]);
        assert_eq!(s.poll_event(), Some(Event::Lost(Lost::UnexpectedConnAck)));
        assert!(s.output().is_empty());
    }

    #[test]
    fn connack_timeout() {
        let mut s = Session::new(Config::default());
        s.connect(100, "c", None, None).unwrap();
        assert_eq!(s.poll_timeout(), Some(10_100));
        s.handle_timeout(10_099);
        assert_eq!(s.poll_event(), None);
        s.handle_timeout(10_100);
        assert_eq!(s.poll_event(), Some(Event::Lost(Lost::ConnAckTimeout)));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn qos1_publish_numbers_and_acks() {
        let mut s = connected(0);
        assert_eq!(s.subscribe(0, &["a", "b"], 1), Ok(1));
        assert_eq!(s.publish(0, "t", b"1", true), Ok(Some(2)));
        assert_eq!(s.publish(0, "t", b"0", false), Ok(None));
        assert_eq!(s.publish(0, "t", b"2", true), Ok(Some(3)));
        s.handle_input(1, &[0x90, 4, 0, 1, 1, 0x80, 0x40, 2, 0]);
        assert_eq!(
            s.poll_event(),
            Some(Event::SubAck {
                pkid: 1,
                codes: alloc::vec![1, 0x80]
            })
        );
        assert_eq!(s.poll_event(), None); // the PUBACK is split across reads
        s.handle_input(1, &[2, 0x40]);
        assert_eq!(s.poll_event(), Some(Event::PubAck(2)));
        s.handle_input(1, &[2, 0, 3]);
        assert_eq!(s.poll_event(), Some(Event::PubAck(3)));
    }

    #[test]
    fn incoming_qos1_publish_is_acked() {
        let mut s = connected(0);
        s.handle_input(5, &[0x32, 6, 0, 1, b't', 0x12, 0x34, b'p']);
        assert_eq!(
            s.poll_event(),
            Some(Event::Publish {
                topic: "t".into(),
                payload: b"p".to_vec()
            })
        );
        assert_eq!(s.output(), &[0x40, 2, 0x12, 0x34]);
    }

    #[test]
    fn keep_alive_pings_then_times_out() {
        let mut s = connected(0);
        assert_eq!(s.poll_timeout(), Some(60_000));
        s.publish(10_000, "t", b"x", false).unwrap();
        s.consume(usize::MAX);
        assert_eq!(s.poll_timeout(), Some(70_000));
        s.handle_timeout(70_000);
        assert_eq!(s.output(), &[0xc0, 0]);
        s.consume(2);
        assert_eq!(s.poll_timeout(), Some(130_000));
        s.handle_input(71_000, &[0xd0, 0]);
        assert_eq!(s.poll_timeout(), Some(130_000)); // next ping a period after the last one
        s.handle_timeout(130_000);
        s.handle_timeout(190_000);
        assert_eq!(s.poll_event(), Some(Event::Lost(Lost::PingTimeout)));
        assert!(!s.is_connected());
    }

    #[test]
    fn oversized_packet_loses_without_buffering_it() {
        let mut s = Session::new(Config {
            max_packet_size: 16,
            ..Config::default()
        });
        s.connect(0, "c", None, None).unwrap();
        s.handle_input(0, &[0x20, 2, 0, 0]);
        s.poll_event();
        s.handle_input(0, &[0x30, 100]);
        assert_eq!(
            s.poll_event(),
            Some(Event::Lost(Lost::Protocol(DecodeError::TooLarge {
                size: 102,
                max: 16
            })))
        );
    }

    #[test]
    fn closed_session_drops_io_and_reconnects_clean() {
        let mut s = connected(0);
        s.publish(0, "t", b"x", true).unwrap();
        s.handle_input(0, &[0x40]);
        s.handle_closed();
        assert!(s.output().is_empty());
        s.connect(1, "c", None, None).unwrap();
        s.consume(usize::MAX);
        s.handle_input(1, &[0x20, 2, 0, 0]); // not glued to the stale 0x40
        assert_eq!(
            s.poll_event(),
            Some(Event::Connected {
                session_present: false
            })
        );
    }
}
