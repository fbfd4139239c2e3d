//! The host side of one client: tb-core's `Device` and our MQTT `Session` behind one lock,
//! shared by the Python thread and the client's IO task (`conn`).
//!
//! Design: two sans-IO machines, one per protocol layer. tb-core speaks ThingsBoard (what to
//! publish, what an incoming publish means, which messages are still unacknowledged); the
//! `Session` speaks MQTT (packet ids, the in-flight window, keepalive and liveness timers).
//! [`Shared::pump`] moves the device's transmits into the session while its window has room;
//! each packet id is allocated for one `MessageId`, so a PUBACK completes exactly that
//! message ([`Shared::complete`]). The IO task only moves bytes: it feeds reads and time in
//! and writes everything the session queued in one write per wake-up. No Python object and
//! no log call is touched under the lock.
//!
//! Hand-off points for hooks: [`Shared::notify_events`] is the one place that tells waiters
//! (threads, the hub) that events for Python are queued; [`Shared::complete`] is the one place
//! where a message is finished (PUBACK, or written for QoS 0).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, MutexGuard};
use tb_core::{Device, MessageId, QoS, Transmit};
use tokio::sync::Notify;

use crate::firmware;
use crate::runtime;
use crate::session::{Options, Session};
use crate::waker::{self, Bell, Signal};

pub(crate) const LOG: &str = "thingsboard_sdk::engine";

/// Where the MQTT link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Never connected, or `disconnect()` was called.
    Idle,
    /// `connect()` is waiting for the first CONNACK.
    Connecting,
    /// A live session.
    Up,
    /// The link dropped or the first attempt failed; reconnecting (if enabled).
    Down,
    /// The server refused the first attempt, or reconnect is off; not retrying.
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
    /// Where firmware images are written.
    pub firmware_dir: std::path::PathBuf,
    /// The durable queue (`queue_dir`), if any.
    pub durable: Option<Arc<crate::durable::Queue>>,
}

/// What the Python thread and the IO task share.
pub struct State {
    pub core: Device,
    pub session: Session,
    pub link: Link,
    pub(crate) gen: u64,
    /// The current IO task's signals (stop, wake), if one runs.
    pub(crate) signals: Option<Arc<Signals>>,
    /// The IO task was woken and has not yet taken what is queued.
    pub(crate) wake_pending: bool,
    pub last_error: Option<String>,
    pub session_present: bool,
    /// MQTT sessions opened so far (CONNACKs accepted): tells a reconnect from a still-up link
    /// however short the outage was.
    pub sessions: u64,
    /// CONNACKs that refused the session so far, and the last one's return code (what
    /// tb-mqtt-client's connect callback gets as `rc`).
    pub refusals: u64,
    pub last_refusal: Option<u8>,
    /// The SUBACK for this session's subscriptions arrived. Until then `connected` stays
    /// False: a push sent before the subscription is in place would be lost.
    pub subscribed: bool,
    pub(crate) closing: bool,
    /// The hub this client reports pending events to, with its key there, and whether it is
    /// listed there now (so it is listed once however many events arrive).
    pub hub: Option<(Arc<Hub>, u64)>,
    /// Firmware outcomes for Python (the download itself never passes through Python).
    pub firmware_notes: VecDeque<firmware::Note>,
    /// tb-core's firmware events, vetted, waiting for `firmware::process` to do the file work
    /// outside this lock (never on an IO thread).
    pub firmware_events: VecDeque<tb_core::FirmwareEvent>,
    /// A thread is doing the firmware file work; others leave the queue to it (keeps order).
    pub firmware_busy: bool,
    pub in_hub: bool,
    /// What blocked Python threads wait for. Design: the IO task wakes them only when that
    /// can have happened, not on every packet: a `flush()` woken per PUBACK costs two context
    /// switches per message.
    pub wants: Wants,
    /// What coroutines await (asyncio, `waker.rs`).
    pub aio: waker::Watch,
    /// Messages acknowledged this wake-up, to delete from the durable queue in one batch.
    pub durable_acks: Vec<MessageId>,
    /// Messages accepted and being written to the durable queue outside this lock: nothing
    /// is pumped while this is above 0 (see `Client::command`).
    pub durable_hold: usize,
    /// Scratch list of the messages one PUBACK finished (kept to reuse its allocation).
    pub acked: Vec<MessageId>,
}

/// The signals of one IO task (one generation).
#[derive(Default)]
pub struct Signals {
    /// End the task now (no DISCONNECT).
    pub stop: Notify,
    /// Something was queued for the network.
    pub wake: Notify,
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

    /// Wakes the IO task if the session has bytes to write and it is not woken already.
    pub fn wake_io(&mut self) {
        if self.wake_pending {
            return;
        }
        if let Some(sig) = &self.signals {
            self.wake_pending = true;
            sig.wake.notify_one();
        }
    }
}

/// Every live client, for the warning at interpreter exit.
static CLIENTS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn register(shared: &Arc<Shared>) {
    let mut all = CLIENTS.lock();
    if all.len() == all.capacity() {
        all.retain(|w| w.strong_count() > 0);
    }
    all.push(Arc::downgrade(shared));
}

/// Logs a WARNING per client that still holds unacknowledged messages (interpreter exit).
pub fn warn_unacknowledged_at_exit() {
    let all: Vec<Arc<Shared>> = CLIENTS.lock().iter().filter_map(Weak::upgrade).collect();
    for shared in all {
        let n = shared.state.lock().core.unacknowledged();
        if n == 0 {
            continue;
        }
        if let Some(q) = &shared.settings.durable {
            // The QoS 1 ones are on disk: not lost, but still not delivered (issue #13).
            let kept = shared.state.lock().core.unacknowledged_qos1().min(n);
            log::warn!(
                target: LOG,
                "exiting with {n} message(s) of client {:?} not acknowledged by {}:{}; {kept} \
                 (QoS 1) stay in queue_dir {} for a client with the same queue_dir and client \
                 id to send, {} (QoS 0) are lost",
                shared.settings.client_id,
                shared.settings.host,
                shared.settings.port,
                q.dir().display(),
                n - kept
            );
        } else {
            log::warn!(
                target: LOG,
                "exiting with {n} message(s) of client {:?} not acknowledged by {}:{}; they are \
                 lost (call flush() or disconnect() before exit)",
                shared.settings.client_id,
                shared.settings.host,
                shared.settings.port
            );
        }
    }
}

impl Shared {
    pub fn new(core: Device, settings: Settings) -> Arc<Shared> {
        let session = Session::new(Options {
            client_id: settings.client_id.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            keepalive_s: settings.keepalive.as_secs().min(65_535) as u16,
            max_inflight: settings.max_inflight,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                core,
                session,
                link: Link::Idle,
                gen: 0,
                signals: None,
                wake_pending: false,
                last_error: None,
                session_present: false,
                sessions: 0,
                refusals: 0,
                last_refusal: None,
                subscribed: false,
                closing: false,
                wants: Wants::default(),
                aio: waker::Watch::default(),
                durable_acks: Vec::new(),
                durable_hold: 0,
                acked: Vec::new(),
                hub: None,
                firmware_notes: VecDeque::new(),
                firmware_events: VecDeque::new(),
                firmware_busy: false,
                in_hub: false,
            }),
            cond: Signal::default(),
            settings,
            firmware: Mutex::new(firmware::Writer::default()),
        });
        register(&shared);
        shared
    }

    /// Moves what the device wants to send into the session, in order, while the session is
    /// up and its window has room. Call with the lock held, after changing the device; from
    /// outside the IO task use [`send`](Shared::send), which also wakes it.
    pub fn pump(&self, st: &mut State) {
        if !st.session.is_up() || st.durable_hold > 0 {
            return;
        }
        let now = runtime::now_ms();
        // Under back-pressure (the window was full and reopened) tb-core may merge queued
        // gateway uploads into fewer packets; otherwise one PUBLISH per message, as queued.
        let merge = st.session.take_backlog();
        // Design: nothing is pulled from the device while the window is full, not even QoS 0
        // or a SUBSCRIBE, so the order the device queued in is the order on the wire.
        while st.session.has_room() {
            let tx = if merge {
                st.core.poll_transmit_merged(now)
            } else {
                st.core.poll_transmit(now)
            };
            match tx {
                None => break,
                Some(Transmit::Subscribe { filters, qos }) => {
                    st.session.subscribe(now, filters, qos);
                }
                Some(Transmit::Publish(p)) => {
                    let (id, qos) = (p.id, p.qos);
                    st.session
                        .publish(now, id, p.topic.into_owned(), Bytes::from(p.payload), qos);
                    if qos == QoS::AtMostOnce {
                        // QoS 0: queued for this wake-up's write is all the acknowledgement
                        // there will be.
                        self.complete(st, id);
                    }
                }
            }
        }
    }

    /// [`pump`](Shared::pump), then wakes the IO task if anything is to be written.
    pub fn send(&self, st: &mut State) {
        self.pump(st);
        st.wake_io();
        self.flush_acks(st);
    }

    /// Hands this wake-up's acknowledged ids to the durable queue's writer (one batch).
    pub fn flush_acks(&self, st: &mut State) {
        if let Some(q) = &self.settings.durable {
            if !st.durable_acks.is_empty() {
                q.acknowledge(std::mem::take(&mut st.durable_acks));
            }
        }
    }

    /// The one place a message is finished: its PUBACK arrived (QoS 1) or it was queued for
    /// writing (QoS 0). Wakes whoever waits for it.
    pub fn complete(&self, st: &mut State, id: MessageId) {
        // A merged gateway packet carries several messages: its PUBACK finishes each.
        let mut done = std::mem::take(&mut st.acked);
        if st.core.handle_puback_with(id, |m| done.push(m)) {
            for &id in &done {
                if self.settings.durable.is_some() && !st.core.is_pending(id) {
                    st.durable_acks.push(id);
                }
                let w = &st.wants;
                if (w.flush > 0 && st.core.unacknowledged_qos1() == 0) || w.messages.contains(&id) {
                    self.cond.notify_all();
                }
                if st.aio.on_delivered(id, &st.core) {
                    st.report_to_hub();
                }
            }
        }
        done.clear();
        st.acked = done;
    }

    /// The other way a message is finished: the server refused it (tb-core took it out of
    /// its queue, see `tb_core::refusal`). Its handle fails, the durable queue forgets it, and
    /// whoever waits for it wakes. Returns the ERROR line to log once the lock is released.
    pub fn refuse(&self, st: &mut State, r: &tb_core::Refused) -> String {
        if self.settings.durable.is_some() {
            st.durable_acks.push(r.id);
            self.flush_acks(st);
        }
        if st.aio.on_delivered(r.id, &st.core) {
            st.report_to_hub();
        }
        self.cond.notify_all();
        refusal_text(r)
    }

    /// The one place that announces events queued for Python (tb-core events, firmware
    /// notes): wakes threads waiting for events and lists the client in its hub.
    pub fn notify_events(&self, st: &mut State) {
        if st.wants.events > 0 {
            self.cond.notify_all();
        }
        st.report_to_hub();
    }

    /// Starts a new connection attempt (a new IO task); the first attempt waits up to
    /// `timeout` for its CONNACK. Returns the generation.
    pub fn start(self: &Arc<Self>, timeout: Duration) -> Result<u64, String> {
        let mut st = self.state.lock();
        if let Some(sig) = st.signals.take() {
            sig.stop.notify_one();
        }
        st.gen += 1;
        let gen = st.gen;
        st.link = Link::Connecting;
        st.closing = false;
        st.last_error = None;
        st.wake_pending = false;
        st.session.reset();
        let sig = Arc::new(Signals::default());
        st.signals = Some(sig.clone());
        drop(st);
        if runtime::spawn(crate::conn::run(self.clone(), gen, sig, timeout)) {
            Ok(gen)
        } else {
            let mut st = self.state.lock();
            st.link = Link::Failed;
            let msg = "could not start the IO thread".to_string();
            st.last_error = Some(msg.clone());
            Err(msg)
        }
    }

    /// Stops the IO task of the current generation, without DISCONNECT. What was not
    /// acknowledged stays in the device.
    pub fn abort(&self, st: &mut MutexGuard<'_, State>) {
        if let Some(sig) = st.signals.take() {
            sig.stop.notify_one();
        }
        st.gen += 1;
        st.link = Link::Idle;
        st.core.handle_disconnected();
        st.session.reset();
        self.cond.notify_all();
    }

    /// Queues DISCONNECT and lets the IO task end once it went out. False if the link was
    /// not up (then the task is stopped at once).
    pub fn begin_close(&self) -> bool {
        let mut st = self.state.lock();
        if st.link != Link::Up || !st.session.is_up() {
            self.abort(&mut st);
            return false;
        }
        st.closing = true;
        st.session.disconnect(runtime::now_ms());
        st.wake_io();
        true
    }
}

/// Why message `r` failed, for the log and its handle's exception.
pub fn refusal_text(r: &tb_core::Refused) -> String {
    format!(
        "the server refused the message on {} ({} bytes): it closed the connection {} times \
         right after receiving it, before acknowledging anything (probably a maxPayloadSize \
         smaller than the message: use session_limits=True or max_payload_size=...); the \
         message was given up, the rest of the queue goes on",
        r.topic, r.size, r.closes
    )
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
