//! The glue a firmware writes around tb-core: one TCP socket (smoltcp), one MQTT session
//! (fw-mqtt) and the `tb_core::Device`, moving bytes and events between them.
//!
//! Per main-loop turn: [`Link::receive`] (TCP bytes into the MQTT session, MQTT events into
//! the device: CONNACK, PUBLISH, PUBACK), then the application's commands and `poll_event`s,
//! then [`Link::transmit`] (the device's `poll_transmit` into MQTT packets, packets into the
//! socket). A lost connection (the server closed it, a protocol error, a missed PINGRESP) is
//! reported to the device with `handle_disconnected`, and the link reconnects after a pause;
//! the device then resends what was never acknowledged.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use fw_mqtt::{Event as MqttEvent, Lost, Session};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use tb_core::{Device, MessageId, Millis, QoS, Transmit};

/// Where qemu's `guestfwd` forwards to the dev server (`firmware/run --net`).
pub const SERVER: IpEndpoint = IpEndpoint::new(IpAddress::v4(10, 0, 2, 100), 1883);

/// Pause between a lost connection and the next attempt.
const RECONNECT_DELAY_MS: Millis = 500;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT_MS: Millis = 10_000;

/// What the link did, for the application's checks and log.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// CONNACK accepted the session (the device was told).
    Up,
    /// The connection was lost (the device was told); it reconnects by itself.
    Down(&'static str),
    /// SUBSCRIBE went out with this many filters.
    Subscribed(usize),
    /// SUBACK came with these return codes.
    SubAck(Vec<u8>),
    /// A publish of the device went out; `fw_state` is the state a firmware report carries.
    Published {
        /// The device's id for it.
        id: MessageId,
        /// `fw_state` in the payload, if any.
        fw_state: Option<String>,
        /// Whether it went to `v1/gateway/connect` (a sub-device connected or announced again).
        gateway_connect: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No connection; try again at `retry_at`.
    Down { retry_at: Millis },
    /// TCP SYN sent.
    Connecting { deadline: Millis },
    /// TCP established, MQTT CONNECT sent (CONNACK may be pending).
    Up,
}

/// One MQTT-over-TCP connection to the server, reconnecting when it drops.
pub struct Link {
    tcp: SocketHandle,
    mqtt: Session,
    state: State,
    client_id: &'static str,
    token: String,
    /// MQTT packet id -> the device's message id, for QoS 1 publishes awaiting PUBACK.
    inflight: Vec<(u16, MessageId)>,
    next_port: u16,
    events: VecDeque<LinkEvent>,
    /// While set, bytes from the server stay unread in the socket (see [`Link::hold_input`]).
    hold: bool,
    /// Bytes moved in the last turn (0: nothing to do, the loop may sleep).
    moved: usize,
}

impl Link {
    /// A link that connects once the interface has an address.
    pub fn new(tcp: SocketHandle, mqtt: Session, client_id: &'static str, token: String) -> Link {
        Link {
            tcp,
            mqtt,
            state: State::Down { retry_at: 0 },
            client_id,
            token,
            inflight: Vec::new(),
            next_port: 49_152,
            events: VecDeque::new(),
            hold: false,
            moved: 0,
        }
    }

    /// Stops (or resumes) reading from the socket. While held, PUBACKs stay in the socket's
    /// receive buffer; if the connection drops meanwhile they are lost with it, as acks in
    /// flight are when a link dies. The scenario uses it to leave QoS 1 messages
    /// unacknowledged across a reconnect.
    pub fn hold_input(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// Whether the last turn moved any bytes.
    pub fn was_busy(&self) -> bool {
        self.moved > 0
    }

    /// The next link event, if any.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Connection upkeep and input: opens the TCP connection when due, sends CONNECT on it,
    /// reads what arrived into the MQTT session and hands the session's events to `dev`.
    pub fn receive(
        &mut self,
        now: Millis,
        iface: &mut Interface,
        sockets: &mut SocketSet<'_>,
        dev: &mut Device,
        has_address: bool,
    ) {
        self.moved = 0;
        let sock = sockets.get_mut::<tcp::Socket>(self.tcp);
        match self.state {
            State::Down { retry_at } => {
                if has_address && now >= retry_at {
                    self.next_port = if self.next_port >= 65_000 {
                        49_152
                    } else {
                        self.next_port + 1
                    };
                    match sock.connect(iface.context(), SERVER, self.next_port) {
                        Ok(()) => {
                            self.state = State::Connecting {
                                deadline: now + CONNECT_TIMEOUT_MS,
                            }
                        }
                        Err(_) => {
                            sock.abort();
                            self.state = State::Down {
                                retry_at: now + RECONNECT_DELAY_MS,
                            };
                        }
                    }
                }
                return;
            }
            State::Connecting { deadline } => {
                if sock.state() == tcp::State::Established {
                    // Clean session, token as user name (spec: thingsboard-mqtt.md, 2.2).
                    let token = self.token.as_str();
                    if self
                        .mqtt
                        .connect(now, self.client_id, Some(token), None)
                        .is_err()
                    {
                        return self.lose(now, sock, dev, "client id or token too long");
                    }
                    self.state = State::Up;
                } else if !sock.is_open() || now >= deadline {
                    return self.lose(now, sock, dev, "TCP connect failed");
                } else {
                    return;
                }
            }
            State::Up => {}
        }
        if !self.hold {
            while sock.can_recv() {
                let mqtt = &mut self.mqtt;
                let n = sock
                    .recv(|buf| {
                        mqtt.handle_input(now, buf);
                        (buf.len(), buf.len())
                    })
                    .unwrap_or(0);
                self.moved += n;
                if n == 0 {
                    break;
                }
            }
        }
        if self.mqtt.poll_timeout().is_some_and(|t| now >= t) {
            self.mqtt.handle_timeout(now);
        }
        while let Some(ev) = self.mqtt.poll_event() {
            match ev {
                MqttEvent::Connected { .. } => {
                    self.inflight.clear();
                    dev.handle_connected();
                    self.events.push_back(LinkEvent::Up);
                }
                MqttEvent::Publish { topic, payload } => dev.handle_publish(now, &topic, &payload),
                MqttEvent::PubAck(pkid) => {
                    if let Some(pos) = self.inflight.iter().position(|(p, _)| *p == pkid) {
                        let (_, id) = self.inflight.remove(pos);
                        dev.handle_puback(id);
                    }
                }
                MqttEvent::SubAck { codes, .. } => self.events.push_back(LinkEvent::SubAck(codes)),
                MqttEvent::Refused(_) => return self.lose(now, sock, dev, "CONNACK refused"),
                MqttEvent::Lost(why) => {
                    let why = match why {
                        Lost::PingTimeout => "no PINGRESP within the keep alive",
                        Lost::ConnAckTimeout => "no CONNACK in time",
                        Lost::UnexpectedConnAck => "CONNACK missing or repeated",
                        Lost::Protocol(_) => "MQTT protocol error",
                    };
                    return self.lose(now, sock, dev, why);
                }
            }
        }
        if sock.state() != tcp::State::Established {
            // The server closed (FIN or RST). Bytes still unread are dropped with the socket.
            self.lose(now, sock, dev, "connection closed by the server");
        }
    }

    /// Output: the device's transmits become MQTT packets (only after CONNACK), and the
    /// session's bytes go into the socket as far as its buffer takes them.
    pub fn transmit(&mut self, now: Millis, sockets: &mut SocketSet<'_>, dev: &mut Device) {
        if self.state != State::Up {
            return;
        }
        if self.mqtt.is_connected() {
            while let Some(tx) = dev.poll_transmit(now) {
                self.send(now, dev, tx);
            }
        }
        let sock = sockets.get_mut::<tcp::Socket>(self.tcp);
        if !self.mqtt.output().is_empty() && sock.can_send() {
            let n = sock.send_slice(self.mqtt.output()).unwrap_or(0);
            self.mqtt.consume(n);
            self.moved += n;
        }
    }

    fn send(&mut self, now: Millis, dev: &mut Device, tx: Transmit) {
        match tx {
            Transmit::Subscribe { filters, qos } => {
                // A failure here means the session closed under us; the next receive notices.
                let _ = self.mqtt.subscribe(now, filters, qos as u8);
                self.events.push_back(LinkEvent::Subscribed(filters.len()));
            }
            Transmit::Publish(p) => {
                let qos1 = p.qos == QoS::AtLeastOnce;
                match self.mqtt.publish(now, &p.topic, &p.payload, qos1) {
                    Ok(Some(pkid)) => self.inflight.push((pkid, p.id)),
                    // QoS 0: written is done (tb-core's contract for QoS 0).
                    Ok(None) => {
                        dev.handle_puback(p.id);
                    }
                    // Not sent: it stays unacknowledged in the device and goes out again
                    // after the next CONNACK.
                    Err(_) => {}
                }
                self.events.push_back(LinkEvent::Published {
                    id: p.id,
                    fw_state: fw_state(&p.payload),
                    gateway_connect: p.topic == tb_core::topics::GATEWAY_CONNECT,
                });
            }
        }
    }

    fn lose(&mut self, now: Millis, sock: &mut tcp::Socket, dev: &mut Device, why: &'static str) {
        sock.abort();
        self.mqtt.handle_closed();
        self.inflight.clear();
        if self.state == State::Up {
            dev.handle_disconnected();
        }
        self.state = State::Down {
            retry_at: now + RECONNECT_DELAY_MS,
        };
        self.events.push_back(LinkEvent::Down(why));
    }
}

/// The `fw_state` value of a firmware report (`{"fw_state":"DOWNLOADING",...}`), found by
/// text search: the payloads are tb-core's own compact JSON.
fn fw_state(payload: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"fw_state\":\"";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = payload[at..].iter().position(|&b| b == b'"')?;
    core::str::from_utf8(&payload[at..at + len])
        .ok()
        .map(String::from)
}
