//! The host: one tb-core `Device` per client, driven by a rumqttc event loop task.
//!
//! Design: the device state lives behind one short `parking_lot` mutex shared by the Python
//! thread and the client's IO task. Whoever holds the lock and has changed the device drains
//! `poll_transmit` into rumqttc's request channel (`pump`), and records the order in which
//! publishes were handed over (`fifo`). rumqttc reports `Outgoing::Publish(pkid)` in that same
//! order, which maps each packet id back to the device's `MessageId`, so a PUBACK can be
//! reported to the device. Only the lock holder feeds the channel, and only while the link is
//! up; on a drop the channel is drained and rumqttc's own resend list is discarded, because
//! the device resends what is unacknowledged after the next CONNACK (rumqttc would drop it
//! anyway on a clean session). No Python object and no log call is touched under the lock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event as MqttEvent, EventLoop, MqttOptions,
    Outgoing, Packet, QoS as MqttQoS, SubscribeFilter, SubscribeReasonCode, Transport,
};
use tb_core::{Device, MessageId, QoS, Transmit};
use tokio::sync::{Notify, Semaphore};

use crate::firmware;
use crate::runtime;
use crate::waker::{self, Bell, Signal};

const LOG: &str = "thingsboard_sdk::engine";

/// At most this many connection attempts (TCP + CONNECT/CONNACK) at once, process-wide.
///
/// Design: mosquitto listens with a backlog of 100; 10,000 clients connecting at once overflow
/// it, and dropped SYNs are retried only after a second or more (10,000 connects took 9-12 s
/// here). Holding attempts to the backlog's size connects them all in well under a second.
static CONNECTING: Semaphore = Semaphore::const_new(100);

/// Where the MQTT link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Never connected, or `disconnect()` was called.
    Idle,
    /// `connect()` is waiting for the first CONNACK.
    Connecting,
    /// A live session.
    Up,
    /// The link dropped after a session; reconnecting (if enabled).
    Down,
    /// The first connection attempt failed; not retrying.
    Failed,
}

/// Connection settings fixed at construction.
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keepalive: Duration,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub reconnect: bool,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub max_inflight: u16,
    pub channel_capacity: usize,
    /// Where firmware images are written.
    pub firmware_dir: std::path::PathBuf,
}

pub struct State {
    pub core: Device,
    pub link: Link,
    gen: u64,
    mqtt: Option<AsyncClient>,
    stop: Option<Arc<Notify>>,
    fifo: VecDeque<MessageId>,
    pkids: Vec<Option<MessageId>>,
    pub last_error: Option<String>,
    pub session_present: bool,
    /// The SUBACK for this session's subscriptions arrived. Until then `connected` stays
    /// False: a push sent before the subscription is in place would be lost.
    pub subscribed: bool,
    closing: bool,
    /// The hub this client reports pending events to, with its key there, and whether it is
    /// listed there now (so it is listed once however many events arrive).
    pub hub: Option<(Arc<Hub>, u64)>,
    /// Firmware outcomes for Python (the download itself never passes through Python).
    pub firmware_notes: VecDeque<firmware::Note>,
    /// tb-core's firmware events, vetted, waiting for `firmware::process` to do the file work
    /// outside this lock.
    pub firmware_events: VecDeque<tb_core::FirmwareEvent>,
    pub in_hub: bool,
    /// What blocked Python threads wait for. Design: the IO task wakes them only when that
    /// can have happened, not on every packet: a `flush()` woken per PUBACK costs two context
    /// switches per message.
    pub wants: Wants,
    /// What coroutines await (asyncio, `waker.rs`).
    pub aio: waker::Watch,
}

/// What threads blocked on the condition variable are waiting for.
#[derive(Default)]
pub struct Wants {
    /// Threads waiting for incoming events.
    pub events: usize,
    /// Threads waiting for every QoS 1 message to be acknowledged.
    pub flush: usize,
    /// Messages whose delivery a thread waits for.
    pub messages: Vec<MessageId>,
}

/// One thing a blocked thread waits for (link changes always wake everyone).
#[derive(Clone, Copy)]
pub enum Want {
    Events,
    Flush,
    Message(MessageId),
    Link,
}

impl Wants {
    fn add(&mut self, w: Want) {
        match w {
            Want::Events => self.events += 1,
            Want::Flush => self.flush += 1,
            Want::Message(id) => self.messages.push(id),
            Want::Link => {}
        }
    }

    fn remove(&mut self, w: Want) {
        match w {
            Want::Events => self.events -= 1,
            Want::Flush => self.flush -= 1,
            Want::Message(id) => {
                if let Some(pos) = self.messages.iter().position(|m| *m == id) {
                    self.messages.swap_remove(pos);
                }
            }
            Want::Link => {}
        }
    }
}

pub struct Shared {
    pub state: Mutex<State>,
    pub cond: Signal,
    pub settings: Settings,
    pub firmware: Mutex<firmware::Writer>,
}

fn mqtt_qos(q: QoS) -> MqttQoS {
    match q {
        QoS::AtMostOnce => MqttQoS::AtMostOnce,
        QoS::AtLeastOnce => MqttQoS::AtLeastOnce,
    }
}

/// Hands everything the device wants to send to rumqttc, in order. Call with the lock held,
/// after changing the device.
pub fn pump(st: &mut State) {
    if st.link != Link::Up {
        return;
    }
    let State {
        core, mqtt, fifo, ..
    } = st;
    let Some(mqtt) = mqtt.as_ref() else {
        return;
    };
    let now = runtime::now_ms();
    while let Some(tx) = core.poll_transmit(now) {
        match tx {
            Transmit::Subscribe { filters, qos } => {
                let filters = filters
                    .iter()
                    .map(|f| SubscribeFilter::new((*f).to_string(), mqtt_qos(qos)));
                // A closed channel means the IO task is ending; the next CONNACK subscribes again.
                let _ = mqtt.try_subscribe_many(filters);
            }
            Transmit::Publish(p) => {
                if mqtt
                    .try_publish(p.topic.into_owned(), mqtt_qos(p.qos), false, p.payload)
                    .is_ok()
                {
                    fifo.push_back(p.id);
                }
                // On error the IO task is ending: the device still holds the message and sends
                // it again after the next CONNACK.
            }
        }
    }
}

/// Why a connection failed, in words a user can act on.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version (1)",
                ConnectReturnCode::BadClientId => "client identifier rejected (2)",
                ConnectReturnCode::ServiceUnavailable => "server unavailable (3)",
                ConnectReturnCode::BadUserNamePassword => "bad user name or password (4)",
                ConnectReturnCode::NotAuthorized => {
                    "not authorised (5): check the access token or credentials"
                }
                ConnectReturnCode::Success => "success (0)",
            };
            format!("connection refused by the server: {why}")
        }
        ConnectionError::NetworkTimeout => "timed out while connecting".into(),
        ConnectionError::FlushTimeout => "timed out while writing to the network".into(),
        ConnectionError::Io(io) => format!("network error: {io}"),
        ConnectionError::MqttState(s) => format!("MQTT protocol error: {s}"),
        ConnectionError::Tls(t) => format!("TLS error: {t}"),
        ConnectionError::NotConnAck(p) => format!("expected CONNACK, got {p:?}"),
        ConnectionError::RequestsDone => "client closed".into(),
    }
}

enum After {
    Nothing,
    Exit,
    Log(log::Level, String),
}

/// Where many clients report "I have events", so one thread can serve them all without
/// polling each (`DeviceGroup` in Python).
#[derive(Default)]
pub struct Hub {
    ready: Mutex<VecDeque<u64>>,
    cond: Condvar,
    /// Rung when the list becomes non-empty, for an event loop (`waker.rs`).
    bell: Option<Bell>,
}

impl Hub {
    pub fn with_bell(bell: Bell) -> Hub {
        Hub {
            bell: Some(bell),
            ..Hub::default()
        }
    }

    pub fn bell(&self) -> Option<&Bell> {
        self.bell.as_ref()
    }

    pub fn push(&self, key: u64) {
        let mut ready = self.ready.lock();
        if ready.is_empty() {
            if let Some(bell) = &self.bell {
                bell.ring();
            }
        }
        ready.push_back(key);
        drop(ready);
        self.cond.notify_one();
    }

    /// Clears the bell and takes the list, under one lock so no ring is lost.
    pub fn take_ringing(&self) -> Vec<u64> {
        let mut ready = self.ready.lock();
        if let Some(bell) = &self.bell {
            bell.clear();
        }
        ready.drain(..).collect()
    }

    /// Waits until a client has events, or the deadline; returns the keys of those clients.
    pub fn wait(&self, deadline: Option<Instant>, slice: Duration) -> Vec<u64> {
        let mut ready = self.ready.lock();
        if ready.is_empty() {
            let now = Instant::now();
            let until = match deadline {
                Some(d) if d <= now => return Vec::new(),
                Some(d) => d.min(now + slice),
                None => now + slice,
            };
            self.cond.wait_until(&mut ready, until);
        }
        ready.drain(..).collect()
    }
}

impl State {
    /// Lists this client in its hub if it has events and is not listed yet.
    pub fn report_to_hub(&mut self) {
        if self.in_hub
            || (!self.core.has_events() && self.firmware_notes.is_empty() && !self.aio.has_news())
        {
            return;
        }
        if let Some((hub, key)) = &self.hub {
            self.in_hub = true;
            hub.push(*key);
        }
    }

    /// A session is up and its subscriptions are acknowledged.
    pub fn ready(&self) -> bool {
        self.link == Link::Up && self.subscribed
    }
}

impl Shared {
    pub fn new(core: Device, settings: Settings) -> Arc<Shared> {
        let slots = settings.max_inflight as usize + 1;
        Arc::new(Shared {
            state: Mutex::new(State {
                core,
                link: Link::Idle,
                gen: 0,
                mqtt: None,
                stop: None,
                fifo: VecDeque::new(),
                pkids: vec![None; slots],
                last_error: None,
                session_present: false,
                subscribed: false,
                closing: false,
                wants: Wants::default(),
                aio: waker::Watch::default(),
                hub: None,
                firmware_notes: VecDeque::new(),
                firmware_events: VecDeque::new(),
                in_hub: false,
            }),
            cond: Signal::default(),
            settings,
            firmware: Mutex::new(firmware::Writer::default()),
        })
    }

    fn options(&self) -> MqttOptions {
        let s = &self.settings;
        let mut o = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        o.set_keep_alive(s.keepalive);
        o.set_clean_session(true);
        // spec 2.5: ThingsBoard takes packets up to 64 KiB (tb-core refuses bigger uplinks);
        // downlinks (attribute responses, firmware) may be larger.
        o.set_max_packet_size(16 * 1024 * 1024, 65_536 + 16);
        o.set_inflight(s.max_inflight.max(1));
        if let Some(user) = &s.username {
            o.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
        } else if let Some(pass) = &s.password {
            o.set_credentials(String::new(), pass.clone());
        }
        if let Some(cfg) = &s.tls {
            o.set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(cfg.clone()),
            ));
        }
        o
    }

    /// Starts a new connection attempt (a new IO task). Returns the generation to wait on.
    pub fn start(self: &Arc<Self>, timeout: Duration) -> Result<u64, String> {
        let mut st = self.state.lock();
        if let Some(stop) = st.stop.take() {
            stop.notify_one();
        }
        st.gen += 1;
        let gen = st.gen;
        st.link = Link::Connecting;
        st.closing = false;
        st.last_error = None;
        let (client, mut eventloop) =
            AsyncClient::new(self.options(), self.settings.channel_capacity);
        // rumqttc reserves room for 100 buffered events per client (over 10 KiB); a client rarely
        // holds more than a few, and the queue grows when it must.
        eventloop.state.events = VecDeque::new();
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(timeout.as_secs().max(1));
        eventloop.set_network_options(net);
        st.mqtt = Some(client);
        let stop = Arc::new(Notify::new());
        st.stop = Some(stop.clone());
        drop(st);
        if runtime::spawn(run(self.clone(), eventloop, gen, stop)) {
            Ok(gen)
        } else {
            let mut st = self.state.lock();
            st.link = Link::Failed;
            let msg = "could not start the IO thread".to_string();
            st.last_error = Some(msg.clone());
            Err(msg)
        }
    }

    /// Stops the IO task of the current generation, without DISCONNECT.
    pub fn abort(&self, st: &mut MutexGuard<'_, State>) {
        if let Some(stop) = st.stop.take() {
            stop.notify_one();
        }
        st.gen += 1;
        st.mqtt = None;
        st.link = Link::Idle;
        st.core.handle_disconnected();
        st.fifo.clear();
        self.cond.notify_all();
    }

    /// Sends DISCONNECT and lets the IO task end once it went out.
    pub fn begin_close(&self) -> bool {
        let mut st = self.state.lock();
        if st.link != Link::Up {
            self.abort(&mut st);
            return false;
        }
        st.closing = true;
        match st.mqtt.as_ref().map(|m| m.try_disconnect()) {
            Some(Ok(())) => true,
            _ => {
                self.abort(&mut st);
                false
            }
        }
    }

    pub fn notify_events(&self, st: &mut State) {
        if st.wants.events > 0 {
            self.cond.notify_all();
        }
        st.report_to_hub();
    }

    fn notify_delivered(&self, st: &mut State, id: MessageId) {
        let w = &st.wants;
        if (w.flush > 0 && st.core.unacknowledged_qos1() == 0) || w.messages.contains(&id) {
            self.cond.notify_all();
        }
        if st.aio.on_delivered(id, &st.core) {
            st.report_to_hub();
        }
    }

    fn on_event(&self, gen: u64, ev: MqttEvent, reconnected: bool) -> After {
        let mut st = self.state.lock();
        if st.gen != gen {
            return After::Exit;
        }
        match ev {
            MqttEvent::Incoming(Packet::ConnAck(ack)) => {
                st.core.handle_connected();
                st.link = Link::Up;
                st.session_present = ack.session_present;
                st.subscribed = false;
                st.fifo.clear();
                st.pkids.iter_mut().for_each(|s| *s = None);
                pump(&mut st);
                self.cond.notify_all();
                if reconnected {
                    return After::Log(log::Level::Info, "reconnected to the server".into());
                }
            }
            MqttEvent::Incoming(Packet::Publish(p)) => {
                st.core
                    .handle_publish(runtime::now_ms(), &p.topic, &p.payload);
                // A firmware offer with a title that is no file name is refused here, before
                // its first chunk request goes out with what else this queued.
                firmware::take_events(&mut st, &self.settings.firmware_dir);
                pump(&mut st);
                self.notify_events(&mut st);
            }
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                if let Some(id) = st.pkids.get_mut(ack.pkid as usize).and_then(Option::take) {
                    st.core.handle_puback(id);
                    self.notify_delivered(&mut st, id);
                }
            }
            MqttEvent::Incoming(Packet::SubAck(ack)) => {
                st.subscribed = true;
                self.cond.notify_all();
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return After::Log(
                        log::Level::Warn,
                        format!("the server refused a subscription: {:?}", ack.return_codes),
                    );
                }
            }
            MqttEvent::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(id) = st.fifo.pop_front() {
                    if pkid == 0 {
                        // QoS 0: written is all the acknowledgement there will be.
                        st.core.handle_puback(id);
                        self.notify_delivered(&mut st, id);
                    } else {
                        let slot = pkid as usize;
                        if slot >= st.pkids.len() {
                            st.pkids.resize(slot + 1, None);
                        }
                        st.pkids[slot] = Some(id);
                    }
                }
            }
            MqttEvent::Outgoing(Outgoing::Disconnect) if st.closing => {
                st.link = Link::Idle;
                st.mqtt = None;
                st.stop = None;
                st.core.handle_disconnected();
                self.cond.notify_all();
                return After::Exit;
            }
            _ => {}
        }
        After::Nothing
    }

    /// The link failed. Returns whether to try again.
    fn on_error(&self, gen: u64, reason: String, was_up: bool) -> bool {
        let mut st = self.state.lock();
        if st.gen != gen {
            return false;
        }
        st.core.handle_disconnected();
        st.fifo.clear();
        st.last_error = Some(reason);
        let retry = if st.closing {
            st.link = Link::Idle;
            false
        } else if !was_up && st.link == Link::Connecting {
            st.link = Link::Failed;
            false
        } else {
            st.link = Link::Down;
            self.settings.reconnect
        };
        if !retry {
            st.mqtt = None;
            st.stop = None;
        }
        self.cond.notify_all();
        retry
    }
}

async fn run(shared: Arc<Shared>, mut eventloop: EventLoop, gen: u64, stop: Arc<Notify>) {
    let mut was_up = false;
    let mut delay = shared.settings.min_delay;
    loop {
        let permit = if eventloop.network.is_none() {
            tokio::select! {
                biased;
                _ = stop.notified() => return,
                p = CONNECTING.acquire() => p.ok(),
            }
        } else {
            None
        };
        let res = tokio::select! {
            biased;
            _ = stop.notified() => return,
            r = eventloop.poll() => r,
        };
        drop(permit);
        match res {
            Ok(ev) => {
                let connack = matches!(ev, MqttEvent::Incoming(Packet::ConnAck(_)));
                let publish = matches!(ev, MqttEvent::Incoming(Packet::Publish(_)));
                if connack {
                    // The device resends what is unacknowledged; rumqttc must not do it too.
                    eventloop.pending.clear();
                }
                match shared.on_event(gen, ev, was_up) {
                    After::Exit => return,
                    After::Log(level, msg) => log::log!(target: LOG, level, "{msg}"),
                    After::Nothing => {}
                }
                if publish {
                    // Firmware chunks are written here, on the IO task, not through Python.
                    firmware::process(&shared);
                }
                if connack {
                    was_up = true;
                    delay = shared.settings.min_delay;
                }
            }
            Err(e) => {
                let reason = describe(&e);
                let retry = shared.on_error(gen, reason.clone(), was_up);
                // Drain requests that raced the drop; the device resends them.
                eventloop.clean();
                eventloop.pending.clear();
                if !retry {
                    return;
                }
                log::warn!(
                    target: LOG,
                    "connection to {}:{} lost ({reason}); reconnecting in {:.1} s",
                    shared.settings.host,
                    shared.settings.port,
                    delay.as_secs_f64()
                );
                tokio::select! {
                    biased;
                    _ = stop.notified() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(shared.settings.max_delay);
            }
        }
    }
}

/// Waits on the condition variable until `done` holds or `deadline` passes, in slices of at
/// most `slice`, so the caller can check for signals in between. Call without the GIL.
pub fn wait_slice<F>(
    shared: &Shared,
    want: Want,
    deadline: Option<Instant>,
    slice: Duration,
    mut done: F,
) -> bool
where
    F: FnMut(&mut State) -> bool,
{
    let mut st = shared.state.lock();
    if done(&mut st) {
        return true;
    }
    let now = Instant::now();
    let until = match deadline {
        Some(d) if d <= now => return false,
        Some(d) => d.min(now + slice),
        None => now + slice,
    };
    st.wants.add(want);
    shared.cond.wait_until(&mut st, until);
    st.wants.remove(want);
    done(&mut st)
}
