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
use crate::log::LogHub;
use crate::ratelimit::Limits;
use crate::store::sqlite::Persistence;
use crate::store::{Durability, Store};

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
}

impl SessionLink {
    /// Queues a publish on the session; `false` if the session task is gone.
    pub(crate) fn publish(&self, topic: String, payload: Bytes, rpc: Option<u32>) -> bool {
        self.tx
            .send(SessionCmd::Publish {
                topic,
                payload,
                rpc,
            })
            .is_ok()
    }

    /// Asks the session to close (MQTT 5: DISCONNECT `code`).
    pub(crate) fn close(&self, reason: &str, code: u8) -> bool {
        self.tx
            .send(SessionCmd::Close {
                reason: reason.into(),
                code,
            })
            .is_ok()
    }
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
