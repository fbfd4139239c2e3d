//! Wake-ups for asyncio: the engine tells an event loop which clients have news for it.
//!
//! Design: one `Waker` per event loop owns a hub (`client::Hub`) whose ready list rings a
//! `Bell`, a Unix socket pair whose read end the loop watches with `loop.add_reader`. The IO
//! threads list a client's key there and write one byte only when the list goes from empty to
//! non-empty, so a burst of ready clients costs one write, one loop wake-up and one read; the
//! loop's reader clears the bell and takes the whole list under the same lock, so no wake-up is
//! lost. The IO threads never take the GIL and nothing polls: an idle loop sleeps in its
//! selector. Every client is a task on the shared runtime as before; no thread is added.
//!
//! What wakes the loop for a client (the hand-off points in `client.rs`):
//! - events queued for Python (`Shared::notify_events` lists the client in its hub);
//! - a PUBACK completing a message, a flush or freeing queue room that a coroutine awaits
//!   (`Watch::on_delivered`, called where a PUBACK completes a message);
//! - any link change: `Signal` is the condition variable blocked Python threads wait on, and
//!   every link change notifies it; an attached loop is told too.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard, WaitTimeoutResult};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use tb_core::{Device, MessageId};

use crate::client::Hub;
use crate::firmware;
use crate::py::{drain_events, item_to_py, Client, Handle, Item};
use crate::runtime;

/// A self-pipe: the write end is rung from any thread, the read end is watched by a loop.
pub struct Bell {
    tx: UnixStream,
    rx: UnixStream,
}

impl Bell {
    pub fn new() -> std::io::Result<Bell> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Bell { tx, rx })
    }

    /// Makes the read end readable. A full buffer means it is readable already.
    pub fn ring(&self) {
        let _ = (&self.tx).write(&[1]);
    }

    /// Reads whatever is buffered, so the read end stops being readable.
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.rx).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }

    fn fileno(&self) -> i32 {
        self.rx.as_raw_fd()
    }
}

/// What coroutines of one client await beyond events; kept in the client's state.
#[derive(Default)]
pub struct Watch {
    messages: HashSet<MessageId>,
    delivered: Vec<MessageId>,
    flush: bool,
    flushed: bool,
    room_below: Option<usize>,
    room: bool,
}

impl Watch {
    /// A message was acknowledged (QoS 1) or written (QoS 0). Returns whether the client has
    /// news for its loop now. Called under the client's lock, once per acknowledgement: cheap
    /// when nothing is watched.
    pub fn on_delivered(&mut self, id: MessageId, core: &Device) -> bool {
        let mut news = false;
        if !self.messages.is_empty() && self.messages.remove(&id) {
            self.delivered.push(id);
            news = true;
        }
        if self.flush && core.unacknowledged_qos1() == 0 {
            self.flush = false;
            self.flushed = true;
            news = true;
        }
        if self.room_below.is_some_and(|b| core.unacknowledged() < b) {
            self.room_below = None;
            self.room = true;
            news = true;
        }
        news
    }

    /// Whether something here is waiting to be taken by the loop.
    pub fn has_news(&self) -> bool {
        !self.delivered.is_empty() || self.flushed || self.room
    }
}

/// The condition variable of a client, which also tells an attached loop when it is notified.
///
/// Design: blocked Python threads are woken on every link change (CONNACK, SUBACK, a drop,
/// DISCONNECT written, an abort). Hooking the notification itself, rather than each of those
/// places, keeps the async side in step with the sync one whatever moves in `client.rs`.
#[derive(Default)]
pub struct Signal {
    cond: Condvar,
    hub: Mutex<Option<(Arc<Hub>, u64)>>,
}

impl Signal {
    pub fn notify_all(&self) {
        self.cond.notify_all();
        if let Some((hub, key)) = &*self.hub.lock() {
            hub.push(*key);
        }
    }

    pub fn wait_until<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        until: Instant,
    ) -> WaitTimeoutResult {
        self.cond.wait_until(guard, until)
    }
}

/// The result of `Waker.service`: `(events, delivered, flushed, room, next_deadline)`.
type Serviced = (Py<PyList>, Vec<u64>, bool, bool, Option<f64>);

/// One event loop's wake-up: which attached clients have news (`take`), and the per-client
/// calls the asyncio layer makes when it services them.
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct Waker {
    hub: Arc<Hub>,
}

#[pymethods]
impl Waker {
    #[new]
    fn new() -> PyResult<Waker> {
        let bell = Bell::new()
            .map_err(|e| PyOSError::new_err(format!("cannot create the wake-up socket: {e}")))?;
        Ok(Waker {
            hub: Arc::new(Hub::with_bell(bell)),
        })
    }

    /// The descriptor to watch for reading (`loop.add_reader`).
    fn fileno(&self) -> i32 {
        self.hub.bell().map_or(-1, Bell::fileno)
    }

    /// Clears the wake-up and returns the keys of the clients that have news (maybe repeated).
    fn take(&self) -> Vec<u64> {
        self.hub.take_ringing()
    }

    /// Reports `client`'s news to this waker under `key` from now on.
    fn attach(&self, client: &Client, key: u64) {
        let shared = &client.shared;
        *shared.cond.hub.lock() = Some((self.hub.clone(), key));
        let mut st = shared.state.lock();
        st.hub = Some((self.hub.clone(), key));
        st.in_hub = false;
        st.report_to_hub();
        // Whatever happened before attaching is looked at once.
        self.hub.push(key);
    }

    /// Stops reporting `client`'s news anywhere.
    fn detach(&self, client: &Client) {
        let shared = &client.shared;
        *shared.cond.hub.lock() = None;
        let mut st = shared.state.lock();
        st.hub = None;
        st.aio = Watch::default();
    }

    /// Watches a message's delivery. Returns its id, or None if it is delivered already.
    fn watch_message(&self, handle: &Handle) -> Option<u64> {
        let mut st = handle.shared.state.lock();
        if !st.core.is_pending(handle.id) {
            return None;
        }
        st.aio.messages.insert(handle.id);
        Some(handle.id.0)
    }

    /// Watches for every QoS 1 message to be acknowledged. False if that is so already.
    fn watch_flush(&self, client: &Client) -> bool {
        let mut st = client.shared.state.lock();
        if st.core.unacknowledged_qos1() == 0 {
            return false;
        }
        st.aio.flush = true;
        true
    }

    /// Watches for fewer than `below` unacknowledged messages. False if that is so already.
    fn watch_room(&self, client: &Client, below: usize) -> bool {
        let mut st = client.shared.state.lock();
        if st.core.unacknowledged() < below {
            return false;
        }
        st.aio.room_below = Some(below);
        true
    }

    /// Takes a client's news: up to `max` events (as `Client.poll_events` gives them), the ids
    /// of watched messages now delivered, whether a watched flush and queue room came, and the
    /// seconds until the client's next deadline (a request or firmware chunk timeout), at which
    /// the loop must service it again.
    #[pyo3(signature = (client, max=1000))]
    fn service(&self, py: Python<'_>, client: &Client, max: usize) -> PyResult<Serviced> {
        let shared = &client.shared;
        {
            let mut st = shared.state.lock();
            st.core.handle_timeout(runtime::now_ms());
            shared.send(&mut st);
        }
        // A chunk timeout may have ended a firmware download.
        firmware::process(shared);
        let mut taken: Vec<Item> = Vec::new();
        let (delivered, flushed, room, next) = {
            let mut st = shared.state.lock();
            let w = &mut st.aio;
            let delivered: Vec<u64> = w.delivered.drain(..).map(|m| m.0).collect();
            let flushed = std::mem::take(&mut w.flushed);
            let room = std::mem::take(&mut w.room);
            drain_events(shared, &mut st, &mut taken, max);
            let now = runtime::now_ms();
            let next = st
                .core
                .poll_timeout()
                .map(|t| t.saturating_sub(now) as f64 / 1000.0);
            (delivered, flushed, room, next)
        };
        let list = PyList::empty(py);
        for item in taken {
            list.append(item_to_py(py, item)?)?;
        }
        Ok((list.unbind(), delivered, flushed, room, next))
    }

    /// Sends DISCONNECT (the link's end is reported like any link change). Returns False if
    /// the link was not up; the client is then stopped at once.
    fn begin_close(&self, client: &Client) -> bool {
        client.shared.begin_close()
    }

    /// Stops the client's connection at once, without DISCONNECT.
    fn abort(&self, client: &Client) {
        let mut st = client.shared.state.lock();
        client.shared.abort(&mut st);
    }
}
