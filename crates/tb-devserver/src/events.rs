//! Live events for the REST API's event stream (the web page): device changes, and for
//! watched devices their telemetry, attributes, RPCs and MQTT traffic.
//!
//! Design: nothing is built unless someone listens. [`EventHub::listening`] is one atomic
//! load; device-level events are built only for devices a stream watches
//! ([`EventHub::watching`]), so 10,000 devices sending cost nothing extra while no page is
//! open, and a page showing the device list costs one set insertion per active device per
//! second (activity is coalesced by a ticker, [`EventHub::take_active`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::store::{AttributeScope, RpcStatus};
use crate::value::TbValue;

/// Longest payload text in a `log` event.
pub(crate) const LOG_PAYLOAD_MAX: usize = 2048;

/// The text of a `log` event's payload: at most [`LOG_PAYLOAD_MAX`] bytes, cut before the
/// copy (a firmware chunk can be 64 KiB), non-UTF-8 bytes replaced.
pub(crate) fn log_payload(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(LOG_PAYLOAD_MAX)];
    String::from_utf8_lossy(cut).into_owned()
}

/// One live event. Device names, not ids: the stream resolves them when it writes.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// Created, connected, disconnected, changed, or active (coalesced).
    Device {
        name: String,
    },
    DeviceDeleted {
        id: uuid::Uuid,
    },
    Telemetry {
        device: String,
        ts: i64,
        values: Vec<(String, TbValue)>,
    },
    Attributes {
        device: String,
        scope: AttributeScope,
        values: Vec<(String, TbValue)>,
        deleted: Vec<String>,
    },
    Log {
        device: String,
        ts: i64,
        up: bool,
        topic: String,
        payload: String,
    },
    Rpc {
        device: String,
        id: u32,
        method: String,
        params: String,
        status: RpcStatus,
        response: Option<String>,
    },
}

impl Event {
    /// The device a device-level event is about (`None` for list events).
    pub(crate) fn device(&self) -> Option<&str> {
        match self {
            Event::Device { .. } | Event::DeviceDeleted { .. } => None,
            Event::Telemetry { device, .. }
            | Event::Attributes { device, .. }
            | Event::Log { device, .. }
            | Event::Rpc { device, .. } => Some(device),
        }
    }
}

/// Events buffered per stream before a slow one starts losing them.
const CAPACITY: usize = 4096;

pub(crate) struct EventHub {
    /// Made by the first stream. Design: a channel of [`CAPACITY`] slots is ~200 KB, which a
    /// server nobody watches (the Python fixtures, the fuzz targets' fresh server per input)
    /// need not allocate; `send` skips it until a stream opens.
    tx: OnceLock<broadcast::Sender<Arc<Event>>>,
    /// Streams open (list or device).
    streams: AtomicUsize,
    /// Device name -> number of streams watching it.
    watched: Mutex<HashMap<String, usize>>,
    watched_any: AtomicUsize,
    /// Devices with activity since the last tick.
    active: Mutex<HashSet<String>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: OnceLock::new(),
            streams: AtomicUsize::new(0),
            watched: Mutex::default(),
            watched_any: AtomicUsize::new(0),
            active: Mutex::default(),
        }
    }
}

/// A stream's registration; unregisters on drop.
pub(crate) struct Subscription {
    hub: Arc<EventHub>,
    device: Option<String>,
    pub(crate) rx: broadcast::Receiver<Arc<Event>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.streams.fetch_sub(1, Ordering::SeqCst);
        if let Some(name) = self.device.take() {
            let mut w = self.hub.watched.lock();
            if let Some(n) = w.get_mut(&name) {
                *n -= 1;
                if *n == 0 {
                    w.remove(&name);
                }
            }
            self.hub.watched_any.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl EventHub {
    /// Registers a stream, watching `device` if given.
    pub(crate) fn subscribe(self: &Arc<Self>, device: Option<String>) -> Subscription {
        self.streams.fetch_add(1, Ordering::SeqCst);
        if let Some(name) = &device {
            *self.watched.lock().entry(name.clone()).or_insert(0) += 1;
            self.watched_any.fetch_add(1, Ordering::SeqCst);
        }
        Subscription {
            hub: self.clone(),
            device,
            rx: self
                .tx
                .get_or_init(|| broadcast::channel(CAPACITY).0)
                .subscribe(),
        }
    }

    /// Whether any stream is open.
    pub(crate) fn listening(&self) -> bool {
        self.streams.load(Ordering::Relaxed) > 0
    }

    /// Whether a stream watches `device`.
    pub(crate) fn watching(&self, device: &str) -> bool {
        self.watched_any.load(Ordering::Relaxed) > 0 && self.watched.lock().contains_key(device)
    }

    /// Sends `event` to every stream (dropped when none listens).
    pub(crate) fn send(&self, event: Event) {
        if self.listening() {
            if let Some(tx) = self.tx.get() {
                let _ = tx.send(Arc::new(event));
            }
        }
    }

    /// Notes activity of `device` for the next tick's `device` event.
    pub(crate) fn activity(&self, device: &str) {
        if self.listening() {
            let mut a = self.active.lock();
            if !a.contains(device) {
                a.insert(device.to_string());
            }
        }
    }

    /// The devices active since the last call (the ticker sends one event each).
    pub(crate) fn take_active(&self) -> Vec<String> {
        std::mem::take(&mut *self.active.lock())
            .into_iter()
            .collect()
    }
}
