//! RPC: server-side (a user calls a method on the device, spec 7) and client-side (the device
//! calls the server, spec 8). Records, statuses and expiry live here; the transport only
//! publishes what this module says and reports PUBACKs and replies back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::DevServerError;
use crate::events::Event;
use crate::features::Rejection;
use crate::json::{parse_lenient, write_json_string, JVal};
use crate::log::excerpt;
use crate::shared::{SessionCmd, Shared, State};
use crate::store::{
    now_ms, ClientRpcRecord, RpcEntry, RpcOutcome, RpcRecord, RpcSlot, RpcStatus, MAX_CLIENT_RPCS,
};
use crate::topics::rpc_request_topic;
use crate::value::parse_payload;

/// The reply to an unanswered client-side RPC (spec 8).
const CLIENT_RPC_TIMEOUT_REPLY: &str = r#"{"error":"timeout"}"#;

/// A client-side RPC request, as given to a [`ClientRpcHandler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRpcRequest {
    /// Device name.
    pub device: String,
    /// Request id from the topic.
    pub id: i32,
    /// `method`.
    pub method: String,
    /// `params` as compact JSON (`null` when absent).
    pub params: String,
}

/// Scripted client-side RPC replies: return the reply payload (JSON text) or `None` for the
/// default (`{"error":"timeout"}` after [`Config::client_rpc_timeout`]). Called on a blocking
/// thread, never on the IO tasks.
///
/// [`Config::client_rpc_timeout`]: crate::Config::client_rpc_timeout
pub type ClientRpcHandler = Arc<dyn Fn(&ClientRpcRequest) -> Option<String> + Send + Sync>;

/// A pending server-side RPC. [`wait`](Self::wait) in slices to stay interruptible.
pub struct RpcCall {
    device: String,
    id: u32,
    expires_at: Instant,
    slot: Arc<RpcSlot>,
}

impl RpcCall {
    /// Device name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Per-device RPC id (the `{id}` of `v1/devices/me/rpc/request/{id}`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits up to `timeout` for the outcome; `None` if still pending then.
    pub fn wait(&self, timeout: Duration) -> Option<RpcOutcome> {
        let deadline = Instant::now() + timeout;
        let mut g = self.slot.outcome.lock();
        loop {
            if let Some(o) = g.as_ref() {
                return Some(o.clone());
            }
            let now = Instant::now();
            if now >= self.expires_at {
                return Some(RpcOutcome::Expired);
            }
            if now >= deadline {
                return None;
            }
            let until = deadline.min(self.expires_at);
            self.slot.cv.wait_until(&mut g, until);
        }
    }
}

/// The live event of an RPC's new status, for a stream watching the device.
fn event(shared: &Shared, device: &str, entry: &RpcEntry) {
    if shared.events.watching(device) {
        shared.events.send(Event::Rpc {
            device: device.into(),
            id: entry.record.id,
            method: entry.record.method.clone(),
            params: entry.record.params.clone(),
            status: entry.record.status,
            response: entry.record.reply.clone(),
        });
    }
}

/// `{"method":..,"params":..}` (spec 7.2; no id in the payload).
pub(crate) fn request_payload(method: &str, params_json: &str) -> String {
    let mut out = String::from("{\"method\":");
    write_json_string(&mut out, method);
    out.push_str(",\"params\":");
    out.push_str(params_json);
    out.push('}');
    out
}

/// Starts a server-side RPC: `params_json` is any JSON value (lenient). It is published on
/// `v1/devices/me/rpc/request/{id}` once the device subscribes to
/// `v1/devices/me/rpc/request/+` (immediately if it is), unless it expires first.
///
/// # Errors
/// `UnknownDevice`, `InvalidJson`.
pub(crate) fn start(
    shared: &Shared,
    device: &str,
    method: &str,
    params_json: &str,
    expiry: Duration,
    oneway: bool,
) -> Result<RpcCall, DevServerError> {
    let params = parse_lenient(params_json)
        .map_err(|e| DevServerError::InvalidJson(e.0))?
        .to_json();
    let payload = request_payload(method, &params);
    let expires_at = Instant::now() + expiry;
    let slot = RpcSlot::new();
    let id = shared.update(|st| {
        let State { store, links } = st;
        let dev = store
            .devices
            .get_mut(device)
            .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
        let id = dev.rpc_seq;
        dev.rpc_seq = dev.rpc_seq.wrapping_add(1);
        let mut status = RpcStatus::Queued;
        if let Some(link) = links.get(device).filter(|l| l.rpc_sub) {
            if link.publish(
                rpc_request_topic(id),
                Bytes::from(payload.clone()),
                Some(id),
            ) {
                status = RpcStatus::Sent;
            }
        }
        dev.rpcs.insert(
            id,
            RpcEntry {
                record: RpcRecord {
                    id,
                    method: method.into(),
                    params: params.clone(),
                    oneway,
                    status,
                    reply: None,
                },
                sent: status == RpcStatus::Sent,
                expires_at,
                slot: slot.clone(),
            },
        );
        if let Some(entry) = dev.rpcs.get(&id) {
            event(shared, device, entry);
        }
        store.record_rpc(device, id);
        Ok::<u32, DevServerError>(id)
    })?;
    shared.logs.emit(format!(
        "server RPC {id} to \"{device}\": {payload}{}",
        if oneway { " (one-way)" } else { "" }
    ));
    Ok(RpcCall {
        device: device.into(),
        id,
        expires_at,
        slot,
    })
}

/// Whether server-side RPC `id` was published to the device, and its status (after marking
/// expired ones); `None` if unknown.
pub(crate) fn state(shared: &Shared, device: &str, id: u32) -> Option<(bool, RpcStatus)> {
    let mut st = shared.state.lock();
    let dev = st.store.devices.get_mut(device)?;
    dev.expire_rpcs(Instant::now());
    dev.rpcs.get(&id).map(|e| (e.sent, e.record.status))
}

/// Server-side RPC records of a device, by id.
///
/// # Errors
/// `UnknownDevice`.
pub(crate) fn records(shared: &Shared, device: &str) -> Result<Vec<RpcRecord>, DevServerError> {
    shared.update(|st| {
        let dev = st
            .store
            .devices
            .get_mut(device)
            .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
        dev.expire_rpcs(Instant::now());
        Ok(dev.rpcs.values().map(|e| e.record.clone()).collect())
    })
}

/// Moves RPC `id` from `from` to `to` (PUBACK seen, delivery timeout).
pub(crate) fn set_status(shared: &Shared, device: &str, id: u32, from: RpcStatus, to: RpcStatus) {
    shared.update(|st| {
        if let Some(e) = st
            .store
            .devices
            .get_mut(device)
            .and_then(|d| d.rpcs.get_mut(&id))
        {
            if e.record.status == from {
                e.record.status = to;
                event(shared, device, e);
                st.store.record_rpc(device, id);
            }
        }
    });
}

/// spec 7.1: when a session subscribes to RPC requests, the queued ones go out in id order;
/// marks them sent and returns (id, payload) to publish.
pub(crate) fn take_queued(shared: &Shared, st: &mut State, device: &str) -> Vec<(u32, String)> {
    let mut pending = Vec::new();
    let Some(dev) = st.store.devices.get_mut(device) else {
        return pending;
    };
    dev.expire_rpcs(Instant::now());
    for entry in dev.rpcs.values_mut() {
        if entry.record.status == RpcStatus::Queued {
            entry.record.status = RpcStatus::Sent;
            entry.sent = true;
            event(shared, device, entry);
            pending.push((
                entry.record.id,
                request_payload(&entry.record.method, &entry.record.params),
            ));
        }
    }
    for (id, _) in &pending {
        st.store.record_rpc(device, *id);
    }
    pending
}

/// A device's reply to server-side RPC `id`; `false` if it is stale (unknown, expired,
/// one-way or answered already: spec 7.3 drops it).
pub(crate) fn handle_reply(shared: &Shared, device: &str, id: i32, text: &str) -> bool {
    let now = Instant::now();
    shared.update(|st| {
        let Some(dev) = st.store.devices.get_mut(device) else {
            return false;
        };
        dev.expire_rpcs(now);
        let Some(entry) = u32::try_from(id).ok().and_then(|id| dev.rpcs.get_mut(&id)) else {
            return false;
        };
        let open = matches!(
            entry.record.status,
            RpcStatus::Sent | RpcStatus::Delivered | RpcStatus::Timeout
        );
        if !open || entry.record.oneway {
            return false;
        }
        entry.record.status = RpcStatus::Successful;
        entry.record.reply = Some(text.to_string());
        entry.slot.set(RpcOutcome::Reply(text.to_string()));
        event(shared, device, entry);
        if let Ok(id) = u32::try_from(id) {
            st.store.record_rpc(device, id);
        }
        true
    })
}

/// Parses a client-side RPC request `{"method":..,"params":..}`: (method, params as compact
/// JSON, `null` when absent). Every failure is unchecked (spec 8).
pub(crate) fn parse_client_request(payload: &[u8]) -> Result<(String, String), Rejection> {
    let json = match parse_payload(payload) {
        Ok(j @ JVal::Obj(_)) => j,
        Ok(_) => {
            return Err(Rejection::Unchecked(
                "client RPC request (not an object)".into(),
            ))
        }
        Err(e) => {
            return Err(Rejection::Unchecked(format!(
                "client RPC JSON ({})",
                e.message()
            )))
        }
    };
    let Some(method) = json.get("method").and_then(JVal::as_gson_string) else {
        return Err(Rejection::Unchecked(
            "client RPC request (no method)".into(),
        ));
    };
    let params = json
        .get("params")
        .map_or_else(|| "null".to_string(), JVal::to_json);
    Ok((method, params))
}

/// Records a client-side RPC request; returns the scripted reply for its method, if any.
pub(crate) fn record_client(
    shared: &Shared,
    device: &str,
    id: i32,
    method: &str,
    params: &str,
) -> Option<String> {
    let record = ClientRpcRecord {
        ts: now_ms(),
        id,
        method: method.into(),
        params: params.into(),
        reply: None,
    };
    shared.update(|st| {
        let scripted = st.store.client_rpc_replies.get(method).cloned();
        if let Some(dev) = st.store.devices.get_mut(device) {
            if dev.client_rpcs.len() >= MAX_CLIENT_RPCS {
                dev.client_rpcs.pop_front();
            }
            let mut record = record;
            record.reply = scripted.clone();
            dev.client_rpcs.push_back(record);
            st.store.record_client_rpc(device, id);
        }
        scripted
    })
}

/// Answers a client-side RPC later: asks the handler (on a blocking thread: it may be a slow
/// Python callback) or, without one, replies `{"error":"timeout"}` after the configured
/// timeout; records the reply and sends it on `topic` through `tx`.
pub(crate) fn answer_client_later(
    shared: Arc<Shared>,
    request: ClientRpcRequest,
    topic: String,
    conn_id: u64,
    tx: UnboundedSender<SessionCmd>,
) {
    let handler = shared.rpc_handler.lock().clone();
    tokio::spawn(async move {
        let reply = match handler {
            Some(h) => {
                let req = request.clone();
                tokio::task::spawn_blocking(move || h(&req))
                    .await
                    .ok()
                    .flatten()
            }
            None => None,
        };
        let reply = match reply {
            Some(r) => r,
            None => {
                tokio::time::sleep(shared.config.client_rpc_timeout).await;
                CLIENT_RPC_TIMEOUT_REPLY.to_string()
            }
        };
        shared.update(|st| {
            if let Some(rec) = st.store.devices.get_mut(&request.device).and_then(|d| {
                d.client_rpcs
                    .iter_mut()
                    .rev()
                    .find(|r| r.id == request.id && r.reply.is_none())
            }) {
                rec.reply = Some(reply.clone());
                st.store.record_client_rpc(&request.device, request.id);
            }
        });
        shared.logs.emit(format!(
            "[conn {conn_id}] \"{}\" client RPC {} reply: {}",
            request.device,
            request.id,
            excerpt(reply.as_bytes())
        ));
        let _ = tx.send(SessionCmd::Publish {
            topic,
            payload: Bytes::from(reply),
            rpc: None,
        });
    });
}
