//! The state every layer above the store shares: configuration, the store behind its lock,
//! the live MQTT sessions by device, the log hub, the parsed rate limits.
//!
//! Design: live sessions are kept beside the store, under the same lock, not in it: they are
//! tokio channels, not data, and a persistent store must not see them. Feature modules reach
//! a device's session only through [`SessionLink`], so they never import the session layer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::config::Config;
use crate::events::EventHub;
use crate::features::rpc::ClientRpcHandler;
use crate::json::write_json_string;
use crate::log::LogHub;
use crate::ratelimit::Limits;
use crate::store::{Durability, Persistence, Store};
use crate::topics::{ATTRIBUTES_TOPIC, GW_ATTRIBUTES, GW_RPC, RPC_REQUEST_PREFIX};

/// Commands from other tasks and threads to a session task.
#[derive(Debug)]
pub(crate) enum SessionCmd {
    Publish {
        topic: String,
        payload: Bytes,
        /// Server-side RPC id to track for PUBACK.
        rpc: Option<u32>,
    },
    Close {
        reason: String,
        /// MQTT 5 DISCONNECT reason.
        code: u8,
    },
}

/// A device's live session: its command channel and what it subscribed to.
pub(crate) struct SessionLink {
    pub(crate) conn_id: u64,
    pub(crate) tx: UnboundedSender<SessionCmd>,
    pub(crate) attr_sub: bool,
    pub(crate) rpc_sub: bool,
    /// `Some(name)` when this is a sub-device session opened by a gateway: `tx` is the
    /// gateway's connection, and what the device API would publish goes out on the gateway
    /// topics instead (thingsboard-gateway.md A.7, A.9).
    pub(crate) via_gateway: Option<String>,
}

impl SessionLink {
    /// Queues a publish on the session; `false` if the session task is gone.
    pub(crate) fn publish(&self, topic: String, payload: Bytes, rpc: Option<u32>) -> bool {
        let (topic, payload, rpc) = match &self.via_gateway {
            None => (topic, payload, rpc),
            Some(device) => match gateway_form(device, &topic, &payload) {
                // The gateway's PUBACK is not tracked for sub-device RPCs (A.9).
                Some((topic, payload)) => (topic, payload, None),
                // Nothing else reaches a sub-device through its gateway.
                None => return true,
            },
        };
        self.tx
            .send(SessionCmd::Publish {
                topic,
                payload,
                rpc,
            })
            .is_ok()
    }

    /// Asks the session to close (MQTT 5: DISCONNECT `code`). A sub-device session is only
    /// forgotten: closing it must not close its gateway's connection (A.10).
    pub(crate) fn close(&self, reason: &str, code: u8) -> bool {
        if self.via_gateway.is_some() {
            return true;
        }
        self.tx
            .send(SessionCmd::Close {
                reason: reason.into(),
                code,
            })
            .is_ok()
    }
}

/// A device-API push rewritten for a gateway: attribute changes as
/// `{"device","data"}` on `v1/gateway/attributes`, a server RPC as
/// `{"device","data":{"id",...}}` on `v1/gateway/rpc`.
fn gateway_form(device: &str, topic: &str, payload: &[u8]) -> Option<(String, Bytes)> {
    let mut out = String::from("{\"device\":");
    write_json_string(&mut out, device);
    out.push_str(",\"data\":");
    let body = std::str::from_utf8(payload).ok()?;
    let topic = if topic == ATTRIBUTES_TOPIC {
        out.push_str(body);
        GW_ATTRIBUTES
    } else {
        let id = topic.strip_prefix(RPC_REQUEST_PREFIX)?;
        // The server's own `{"method":..,"params":..}`, with the id in front.
        let rest = body.strip_prefix('{')?;
        out.push_str("{\"id\":");
        out.push_str(id);
        if rest != "}" {
            out.push(',');
        }
        out.push_str(rest);
        GW_RPC
    };
    out.push('}');
    Some((topic.to_string(), Bytes::from(out)))
}

/// What the lock guards: the store and the live sessions by device name.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) links: HashMap<String, SessionLink>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Condvar,
    pub(crate) logs: LogHub,
    pub(crate) rpc_handler: Mutex<Option<ClientRpcHandler>>,
    pub(crate) conn_seq: AtomicU64,
    pub(crate) live: AtomicUsize,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) limits: Limits,
    pub(crate) events: Arc<EventHub>,
    /// The persistent store, with `Config::data`.
    pub(crate) persistence: Option<Persistence>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        limits: Limits,
        shutdown: watch::Sender<bool>,
        store: Store,
        persistence: Option<Persistence>,
    ) -> Shared {
        Shared {
            logs: LogHub::new(config.log_scope),
            config,
            state: Mutex::new(State {
                store,
                links: HashMap::new(),
            }),
            changed: Condvar::new(),
            rpc_handler: Mutex::new(None),
            conn_seq: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            shutdown,
            limits,
            events: Arc::default(),
            persistence,
        }
    }

    /// The journal's progress, when the store is persistent.
    pub(crate) fn durability(&self) -> Option<&Durability> {
        self.persistence.as_ref().map(|p| &*p.durability)
    }

    /// Runs `f` on the state, then wakes [`DevServerHandle::wait_for_change`] waiters.
    ///
    /// [`DevServerHandle::wait_for_change`]: crate::DevServerHandle::wait_for_change
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = {
            let mut st = self.state.lock();
            let r = f(&mut st);
            st.store.bump();
            r
        };
        self.changed.notify_all();
        r
    }
}
