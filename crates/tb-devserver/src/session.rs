//! One tokio task per TCP connection: decode, act on the store, encode.
//!
//! Design: the task owns the socket and all per-connection state (subscriptions, packet ids,
//! in-flight RPCs). Other threads reach it only through its `SessionCmd` channel, so a
//! misbehaving connection can stall nothing but itself. Replies are appended to `out` and
//! written once per wake-up, which keeps PUBACK-before-response ordering by construction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::watch;

use crate::codec::{self, ConnCode, ConnectInfo, DecodeError, Inbound, MqttVersion, Outbound};
use crate::json::{parse_lenient, write_json_string, JVal};
use crate::provision;
use crate::ratelimit::Buckets;
use crate::server::{ClientRpcRequest, Inner, RateLimits};
use crate::store::*;
use crate::value::{parse_payload, type_object, PayloadError, TbValue};

/// Shared attribute pushes (S→D) and client attribute uploads (D→S).
pub(crate) const ATTRIBUTES_TOPIC: &str = "v1/devices/me/attributes";
const TELEMETRY_TOPIC: &str = "v1/devices/me/telemetry";
const ATTR_REQUEST_PREFIX: &str = "v1/devices/me/attributes/request/";
const ATTR_RESPONSE_PREFIX: &str = "v1/devices/me/attributes/response/";
const RPC_REQUEST_PREFIX: &str = "v1/devices/me/rpc/request/";
const RPC_RESPONSE_PREFIX: &str = "v1/devices/me/rpc/response/";
const RPC_SUBSCRIBE_FILTER: &str = "v1/devices/me/rpc/request/+";
const CLAIM_TOPIC: &str = "v1/devices/me/claim";
const GATEWAY_PREFIX: &str = "v1/gateway";
const FW_REQUEST_PREFIX: &str = "v2/fw/request/";
const SW_REQUEST_PREFIX: &str = "v2/sw/request/";
const FW_ERROR_TOPIC: &str = "v2/fw/error";
const PROVISION_REQUEST_TOPIC: &str = "/provision/request";
const PROVISION_RESPONSE_TOPIC: &str = "/provision/response";
const PROVISION: &str = "provision";
const CLIENT_RPC_TIMEOUT_REPLY: &str = r#"{"error":"timeout"}"#;

/// spec 2.11: the only filters a device session accepts.
const ACCEPTED_FILTERS: &[&str] = &[
    "v1/devices/me/attributes",
    "v2/a",
    "v2/a/j",
    "v2/a/p",
    "v1/devices/me/rpc/request/+",
    "v2/r/req/+",
    "v2/r/req/j/+",
    "v2/r/req/p/+",
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/response/+",
    "v2/a/res/+",
    "v2/a/res/j/+",
    "v2/a/res/p/+",
    "v2/r/res/+",
    "v2/r/res/j/+",
    "v2/r/res/p/+",
    "v2/fw/response/+/chunk/+",
    "v2/fw/error",
    "v2/sw/response/+/chunk/+",
    "v2/sw/error",
    "v1/gateway/attributes",
    "v1/gateway/rpc",
    "v1/gateway/attributes/response",
];

/// Longest payload excerpt in a log line.
const LOG_EXCERPT: usize = 200;

fn excerpt(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    if text.chars().count() > LOG_EXCERPT {
        let cut: String = text.chars().take(LOG_EXCERPT).collect();
        format!("{cut}...")
    } else {
        text.into_owned()
    }
}

/// MQTT topic filter match (`+` one level, `#` the rest).
fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Java `String.split(",")`: trailing empty strings removed, `""` stays `[""]`.
fn java_split(s: &str) -> Vec<String> {
    let mut parts: Vec<String> = s.split(',').map(str::to_string).collect();
    if parts.len() > 1 {
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
    }
    parts
}

fn limits_json(out: &mut String, limits: &RateLimits) {
    let field = |out: &mut String, name: &str, v: &Option<String>| {
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        match v {
            Some(s) => write_json_string(out, s),
            None => out.push_str("null"),
        }
    };
    out.push('{');
    field(out, "messages", &limits.messages);
    out.push(',');
    field(out, "telemetryMessages", &limits.telemetry_messages);
    out.push(',');
    field(out, "telemetryDataPoints", &limits.telemetry_data_points);
    out.push('}');
}

/// Decrements the live-connection count when a connection task ends, however it ends.
struct LiveGuard(Arc<Inner>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn_id = inner.conn_seq.fetch_add(1, Ordering::Relaxed) + 1;
                    inner.live.fetch_add(1, Ordering::SeqCst);
                    let guard = LiveGuard(inner.clone());
                    tokio::spawn(run_connection(inner.clone(), stream, peer, conn_id, shutdown.clone(), guard));
                }
                Err(e) => {
                    log::warn!(target: crate::server::LOG_TARGET, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn run_connection(
    inner: Arc<Inner>,
    mut stream: TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    mut shutdown: watch::Receiver<bool>,
    _guard: LiveGuard,
) {
    let (tx, mut rx) = unbounded_channel();
    let mut s = Session::new(inner.clone(), conn_id, peer, tx);
    let mut buf = BytesMut::new();
    let write_timeout = inner.config.inactivity_timeout;
    let sleep = tokio::time::sleep_until(s.deadline().into());
    tokio::pin!(sleep);
    if *shutdown.borrow() {
        return;
    }
    loop {
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(2048);
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => s.gone(if buf.is_empty() {
                    "connection closed by the client"
                } else {
                    "client vanished mid-packet"
                }),
                Ok(_) => {
                    s.last_activity = Instant::now();
                    s.process(&mut buf);
                }
                Err(e) => s.gone(&format!("read error: {e}")),
            },
            Some(cmd) = rx.recv() => s.handle_cmd(cmd),
            _ = &mut sleep => s.on_timer(),
            _ = shutdown.changed() => s.close("server shutting down", 0x8b),
        }
        s.flush_logs();
        if !s.out.is_empty() {
            let write = tokio::time::timeout(write_timeout, stream.write_all(&s.out)).await;
            if !matches!(write, Ok(Ok(()))) && s.closed.is_none() {
                s.gone("write failed");
            }
            s.out.clear();
            if s.out.capacity() > 64 * 1024 {
                s.out = BytesMut::new();
            }
        }
        if s.closed.is_some() {
            break;
        }
        if buf.is_empty() && buf.capacity() > 64 * 1024 {
            buf = BytesMut::new();
        }
        sleep.as_mut().reset(s.deadline().into());
    }
    let _ = stream.shutdown().await;
    s.finish();
    s.flush_logs();
}

enum Role {
    PreConnect,
    Device(String),
    Provision,
}

struct Session {
    inner: Arc<Inner>,
    conn_id: u64,
    peer: SocketAddr,
    tx: UnboundedSender<SessionCmd>,
    version: Option<MqttVersion>,
    role: Role,
    client_id: String,
    gateway: bool,
    /// Granted filters in registration order (spec 2.3: first match gives the QoS).
    subs: Vec<(String, u8)>,
    next_pkid: u16,
    out: BytesMut,
    /// (packet id, server RPC id) awaiting PUBACK.
    inflight_rpcs: Vec<(u16, u32)>,
    /// Firmware chunk size remembered per request id (spec 11.2).
    fw_sizes: HashMap<String, i32>,
    /// Firmware image looked up per request id, kept for the connection (spec 11.2).
    fw_images: HashMap<String, Bytes>,
    last_activity: Instant,
    provision_close_at: Option<Instant>,
    /// Set once the connection is to be closed: the reason.
    closed: Option<String>,
    /// Log lines of this wake-up, emitted together before its replies are written.
    logs: Vec<String>,
    /// messages, telemetry messages, telemetry data points.
    buckets: [Option<Buckets>; 3],
}

impl Session {
    fn new(
        inner: Arc<Inner>,
        conn_id: u64,
        peer: SocketAddr,
        tx: UnboundedSender<SessionCmd>,
    ) -> Self {
        Session {
            inner,
            conn_id,
            peer,
            tx,
            version: None,
            role: Role::PreConnect,
            client_id: String::new(),
            gateway: false,
            subs: Vec::new(),
            next_pkid: 1,
            out: BytesMut::new(),
            inflight_rpcs: Vec::new(),
            fw_sizes: HashMap::new(),
            fw_images: HashMap::new(),
            last_activity: Instant::now(),
            provision_close_at: None,
            closed: None,
            logs: Vec::new(),
            buckets: [None, None, None],
        }
    }

    fn log(&mut self, msg: String) {
        let who = match &self.role {
            Role::Device(name) => format!(" \"{name}\""),
            Role::Provision => " provisioning".to_string(),
            Role::PreConnect => String::new(),
        };
        self.logs
            .push(format!("[conn {}]{who} {msg}", self.conn_id));
    }

    /// Emits the lines [`log`](Self::log) collected. Design: called once per wake-up, before
    /// the replies are written, so a client that saw its PUBACK finds the line logged, and the
    /// log scope (the GIL, in Python) is entered once for all packets of one read.
    fn flush_logs(&mut self) {
        self.inner.logs.emit_all(&self.logs);
        self.logs.clear();
    }

    fn version(&self) -> MqttVersion {
        self.version.unwrap_or(MqttVersion::V311)
    }

    fn is_v5(&self) -> bool {
        self.version == Some(MqttVersion::V5)
    }

    fn send(&mut self, packet: Outbound) {
        let v = self.version();
        codec::encode(&mut self.out, v, packet);
    }

    fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.inner.config.inactivity_timeout;
        match self.provision_close_at {
            Some(p) if p < idle => p,
            _ => idle,
        }
    }

    /// Closes the connection, sending DISCONNECT `code` first on MQTT 5.
    fn close(&mut self, reason: &str, code: u8) {
        if self.closed.is_some() {
            return;
        }
        if self.is_v5() && !matches!(self.role, Role::PreConnect) {
            self.send(Outbound::Disconnect(code));
        }
        self.closed = Some(reason.to_string());
    }

    /// Closes without a DISCONNECT (peer gone, or ThingsBoard just drops the channel).
    fn gone(&mut self, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(reason.to_string());
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.provision_close_at.is_some_and(|p| now >= p) {
            self.close("provisioning session closed after the response delay", 0x00);
        } else if now >= self.last_activity + self.inner.config.inactivity_timeout {
            self.close("inactivity timeout", 0xa0);
        }
    }

    fn handle_cmd(&mut self, cmd: SessionCmd) {
        if self.closed.is_some() {
            return;
        }
        match cmd {
            SessionCmd::Publish {
                topic,
                payload,
                rpc,
            } => self.publish(topic, payload, rpc),
            SessionCmd::Close { reason, code } => {
                self.log(format!("closed by the server: {reason}"));
                self.close(&reason, code);
            }
        }
    }

    fn process(&mut self, buf: &mut BytesMut) {
        let max = self.inner.config.max_payload_size;
        while self.closed.is_none() && !buf.is_empty() {
            let decoded = match self.version {
                None => codec::decode_connect(buf, max),
                Some(v) => codec::decode(buf, v, max),
            };
            match decoded {
                Ok(packet) => self.handle(packet),
                Err(DecodeError::Incomplete) => break,
                Err(DecodeError::TooLarge(n)) => {
                    self.log(format!(
                        "packet with remaining length {n} exceeds {max} bytes: closing"
                    ));
                    self.close("packet too large", 0x81);
                }
                Err(DecodeError::Malformed(m)) => {
                    self.log(format!("malformed packet ({m}): closing"));
                    if matches!(self.role, Role::PreConnect) {
                        self.reject(&format!("malformed CONNECT: {m}"));
                    } else {
                        self.close(&format!("malformed packet: {m}"), 0x81);
                    }
                }
                Err(DecodeError::BadProtocol(m)) => self.reject(&m),
            }
        }
    }

    /// Closes before CONNACK (spec 2.2), recording why.
    fn reject(&mut self, reason: &str) {
        let event = ConnectionEvent {
            ts: now_ms(),
            conn_id: self.conn_id,
            peer: self.peer,
            kind: ConnectionEventKind::Rejected,
            device: None,
            client_id: self.client_id.clone(),
            version: self.version,
            return_code: None,
            reason: reason.to_string(),
        };
        self.inner.update(|st| st.push_event(event));
        self.log(format!("{} rejected without CONNACK: {reason}", self.peer));
        self.gone(reason);
    }

    fn handle(&mut self, packet: Inbound) {
        match (&self.role, packet) {
            (Role::PreConnect, Inbound::Connect(info)) => self.handle_connect(info),
            (Role::PreConnect, _) => self.reject("first packet is not CONNECT"),
            (_, Inbound::Connect(_)) => self.close("second CONNECT", 0x82),
            (_, Inbound::PingReq) => self.send(Outbound::PingResp),
            (_, Inbound::Disconnect) => self.gone("client DISCONNECT"),
            (_, Inbound::Ignored) => {}
            (
                Role::Provision,
                Inbound::Publish {
                    topic,
                    qos,
                    pkid,
                    payload,
                },
            ) => self.provision_publish(&topic, qos, pkid, &payload),
            (Role::Provision, Inbound::Subscribe { pkid, filters }) => {
                let codes = filters
                    .iter()
                    .map(|(f, q)| (f == PROVISION_RESPONSE_TOPIC).then_some((*q).min(1)))
                    .collect::<Vec<_>>();
                for ((f, _), c) in filters.into_iter().zip(&codes) {
                    if let Some(q) = c {
                        self.register_sub(f, *q);
                    }
                }
                self.send(Outbound::SubAck { pkid, codes });
            }
            (Role::Provision, _) => {}
            (
                Role::Device(_),
                Inbound::Publish {
                    topic,
                    qos,
                    pkid,
                    payload,
                },
            ) => self.device_publish(&topic, qos, pkid, payload),
            (Role::Device(_), Inbound::PubAck(pkid)) => self.on_puback(pkid),
            (Role::Device(_), Inbound::Subscribe { pkid, filters }) => {
                self.subscribe(pkid, filters)
            }
            (Role::Device(_), Inbound::Unsubscribe { pkid, filters }) => {
                self.unsubscribe(pkid, filters)
            }
        }
    }

    fn handle_connect(&mut self, info: ConnectInfo) {
        self.version = Some(info.version);
        self.client_id = info.client_id.clone();
        let session_present = !info.clean_session;
        let base =
            |kind, device: Option<String>, code: Option<u8>, reason: String| ConnectionEvent {
                ts: now_ms(),
                conn_id: self.conn_id,
                peer: self.peer,
                kind,
                device,
                client_id: info.client_id.clone(),
                version: Some(info.version),
                return_code: code,
                reason,
            };
        if info.username == PROVISION || info.client_id == PROVISION {
            let event = base(
                ConnectionEventKind::ProvisionSession,
                None,
                Some(0),
                "provisioning session".into(),
            );
            self.role = Role::Provision;
            self.send(Outbound::ConnAck {
                code: ConnCode::Accepted,
                session_present,
            });
            self.inner.update(|st| st.push_event(event));
            self.log(format!(
                "{} connected for provisioning (MQTT {})",
                self.peer,
                info.version.as_str()
            ));
            return;
        }
        let auth = self.inner.state.lock().authenticate(
            &info.client_id,
            &info.username,
            info.password.as_deref(),
        );
        let name = match auth {
            Auth::Refused(code, reason) => {
                let wire = code.wire(info.version);
                let event = base(
                    ConnectionEventKind::Refused,
                    None,
                    Some(wire),
                    reason.clone(),
                );
                self.send(Outbound::ConnAck {
                    code,
                    session_present,
                });
                if self.is_v5() {
                    self.send(Outbound::Disconnect(wire));
                }
                self.inner.update(|st| st.push_event(event));
                self.log(format!(
                    "{} refused: {reason} (CONNACK {wire}, client id {:?})",
                    self.peer, info.client_id
                ));
                self.gone(&reason);
                return;
            }
            Auth::Device { name } => name,
        };
        let link = SessionLink {
            conn_id: self.conn_id,
            tx: self.tx.clone(),
            attr_sub: false,
            rpc_sub: false,
        };
        let event = base(
            ConnectionEventKind::Connected,
            Some(name.clone()),
            Some(0),
            "accepted".into(),
        );
        let gateway = self.inner.update(|st| {
            let gateway = match st.devices.get_mut(&name) {
                Some(dev) => {
                    if let Some(old) = dev.session.replace(link) {
                        // spec 2.8: one session per device, the newest wins.
                        let _ = old.tx.send(SessionCmd::Close {
                            reason: "session taken over by a new connection".into(),
                            code: 0x8e,
                        });
                    }
                    dev.gateway
                }
                None => false,
            };
            st.push_event(event);
            gateway
        });
        self.gateway = gateway;
        let now = Instant::now();
        let specs = &self.inner.limits.device;
        self.buckets = [
            specs[0].as_ref().map(|s| Buckets::new(s, now)),
            specs[1].as_ref().map(|s| Buckets::new(s, now)),
            specs[2].as_ref().map(|s| Buckets::new(s, now)),
        ];
        self.send(Outbound::ConnAck {
            code: ConnCode::Accepted,
            session_present,
        });
        self.role = Role::Device(name);
        self.log(format!(
            "{} connected (MQTT {}, client id {:?})",
            self.peer,
            info.version.as_str(),
            info.client_id
        ));
    }

    fn finish(&mut self) {
        let reason = self
            .closed
            .take()
            .unwrap_or_else(|| "connection ended".into());
        let device = match &self.role {
            Role::Device(name) => Some(name.clone()),
            Role::Provision => None,
            Role::PreConnect => return,
        };
        let event = ConnectionEvent {
            ts: now_ms(),
            conn_id: self.conn_id,
            peer: self.peer,
            kind: ConnectionEventKind::Disconnected,
            device: device.clone(),
            client_id: self.client_id.clone(),
            version: self.version,
            return_code: None,
            reason: reason.clone(),
        };
        let conn_id = self.conn_id;
        self.inner.update(|st| {
            if let Some(dev) = device.as_ref().and_then(|n| st.devices.get_mut(n)) {
                if dev.session.as_ref().is_some_and(|l| l.conn_id == conn_id) {
                    dev.session = None;
                }
            }
            st.push_event(event);
        });
        self.log(format!("disconnected: {reason}"));
    }

    fn device_name(&self) -> String {
        match &self.role {
            Role::Device(n) => n.clone(),
            _ => String::new(),
        }
    }

    // ---- outgoing publishes -------------------------------------------------------------

    fn qos_for(&self, topic: &str) -> u8 {
        self.subs
            .iter()
            .find(|(f, _)| filter_matches(f, topic))
            .map_or(1, |(_, q)| *q)
    }

    fn publish(&mut self, topic: String, payload: Bytes, rpc: Option<u32>) {
        let qos = self.qos_for(&topic);
        // spec 2.4: one id per server publish, QoS 0 included; 0 is not a valid id.
        let pkid = self.next_pkid;
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.send(Outbound::Publish {
            topic,
            qos,
            pkid,
            payload,
        });
        if let Some(id) = rpc {
            let name = self.device_name();
            if qos == 0 {
                set_rpc_status(
                    &self.inner,
                    &name,
                    id,
                    RpcStatus::Sent,
                    RpcStatus::Delivered,
                );
            } else {
                self.inflight_rpcs.push((pkid, id));
                let inner = self.inner.clone();
                let wait = self.inner.config.rpc_delivery_timeout;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    set_rpc_status(&inner, &name, id, RpcStatus::Sent, RpcStatus::Timeout);
                });
            }
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        if let Some(i) = self.inflight_rpcs.iter().position(|(p, _)| *p == pkid) {
            let (_, id) = self.inflight_rpcs.swap_remove(i);
            let name = self.device_name();
            set_rpc_status(
                &self.inner,
                &name,
                id,
                RpcStatus::Sent,
                RpcStatus::Delivered,
            );
        }
    }

    fn puback(&mut self, pkid: u16, qos: u8, reason: u8) {
        if qos > 0 {
            self.send(Outbound::PubAck { pkid, reason });
        }
    }

    // ---- subscriptions ------------------------------------------------------------------

    fn register_sub(&mut self, filter: String, qos: u8) {
        match self.subs.iter_mut().find(|(f, _)| *f == filter) {
            Some(slot) => slot.1 = qos,
            None => self.subs.push((filter, qos)),
        }
    }

    fn subscribe(&mut self, pkid: u16, filters: Vec<(String, u8)>) {
        let mut codes = Vec::with_capacity(filters.len());
        let (mut attr, mut rpc) = (false, false);
        for (filter, qos) in filters {
            if ACCEPTED_FILTERS.contains(&filter.as_str()) {
                let granted = qos.min(1);
                attr |= filter == ATTRIBUTES_TOPIC;
                rpc |= filter == RPC_SUBSCRIBE_FILTER;
                self.log(format!("subscribed to {filter} (QoS {granted})"));
                self.register_sub(filter, granted);
                codes.push(Some(granted));
            } else {
                self.log(format!(
                    "subscription to {filter} refused (unsupported filter)"
                ));
                codes.push(None);
            }
        }
        self.send(Outbound::SubAck { pkid, codes });
        if !(attr || rpc) {
            return;
        }
        let name = self.device_name();
        let conn_id = self.conn_id;
        let now = Instant::now();
        // spec 7.1: subscribing to RPC requests flushes the pending ones, in id order.
        let pending = self.inner.update(|st| {
            let mut pending = Vec::new();
            let Some(dev) = st.devices.get_mut(&name) else {
                return pending;
            };
            let Some(link) = dev.session.as_mut().filter(|l| l.conn_id == conn_id) else {
                return pending;
            };
            link.attr_sub |= attr;
            link.rpc_sub |= rpc;
            if rpc {
                dev.expire_rpcs(now);
                for entry in dev.rpcs.values_mut() {
                    if entry.record.status == RpcStatus::Queued {
                        entry.record.status = RpcStatus::Sent;
                        pending.push((
                            entry.record.id,
                            rpc_payload(&entry.record.method, &entry.record.params),
                        ));
                    }
                }
            }
            pending
        });
        for (id, payload) in pending {
            self.log(format!("delivering pending server RPC {id}"));
            self.publish(
                format!("{RPC_REQUEST_PREFIX}{id}"),
                Bytes::from(payload),
                Some(id),
            );
        }
    }

    fn unsubscribe(&mut self, pkid: u16, filters: Vec<String>) {
        let mut existed = Vec::with_capacity(filters.len());
        let (mut attr, mut rpc) = (false, false);
        for filter in filters {
            let before = self.subs.len();
            self.subs.retain(|(f, _)| *f != filter);
            existed.push(self.subs.len() != before);
            attr |= filter == ATTRIBUTES_TOPIC;
            rpc |= filter == RPC_SUBSCRIBE_FILTER;
        }
        self.send(Outbound::UnsubAck { pkid, existed });
        if attr || rpc {
            let name = self.device_name();
            let conn_id = self.conn_id;
            self.inner.update(|st| {
                if let Some(link) = st
                    .devices
                    .get_mut(&name)
                    .and_then(|d| d.session.as_mut())
                    .filter(|l| l.conn_id == conn_id)
                {
                    link.attr_sub &= !attr;
                    link.rpc_sub &= !rpc;
                }
            });
        }
    }

    // ---- uplinks ------------------------------------------------------------------------

    /// spec 2.9: a validation failure closes MQTT 3.x sessions without PUBACK (unless the
    /// profile option says to PUBACK), and PUBACKs 0x99 on MQTT 5 (QoS 0: DISCONNECT 0x99).
    fn invalid(&mut self, pkid: u16, qos: u8, what: &str) {
        self.log(format!("invalid {what}"));
        if self.is_v5() {
            if qos == 0 {
                self.close(&format!("invalid {what}"), 0x99);
            } else {
                self.puback(pkid, qos, 0x99);
            }
        } else if self.inner.config.send_puback_on_validation_failure && qos > 0 {
            self.puback(pkid, qos, 0);
        } else {
            self.close(&format!("invalid {what}"), 0x99);
        }
    }

    /// spec 2.9: unchecked failures close the session (MQTT 5: DISCONNECT 0x8B first).
    fn unchecked(&mut self, what: &str) {
        self.log(format!("bad {what}: closing"));
        self.close(&format!("bad {what}"), 0x8b);
    }

    fn payload_error(&mut self, pkid: u16, qos: u8, what: &str, e: &PayloadError) {
        let msg = format!("{what} ({})", e.message());
        match e {
            PayloadError::Validation(_) => self.invalid(pkid, qos, &msg),
            PayloadError::Unchecked(_) => self.unchecked(&msg),
        }
    }

    /// Takes rate-limit tokens; on refusal closes the session (spec 17.45) and returns false.
    fn rate_ok(&mut self, telemetry_points: Option<usize>) -> bool {
        let now = Instant::now();
        let mut ok = self.buckets[0]
            .as_mut()
            .map_or(true, |b| b.try_take(1.0, now));
        if let Some(points) = telemetry_points {
            ok = ok
                && self.buckets[1]
                    .as_mut()
                    .map_or(true, |b| b.try_take(1.0, now));
            ok = ok
                && self.buckets[2]
                    .as_mut()
                    .map_or(true, |b| b.try_take(points as f64, now));
        }
        if !ok {
            self.log("rate limit exceeded: closing".into());
            self.close("rate limit exceeded", 0x83);
        }
        ok
    }

    fn device_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: Bytes) {
        if topic.starts_with(GATEWAY_PREFIX) {
            if self.gateway {
                self.log(format!(
                    "gateway publish on {topic} (not served): acknowledged"
                ));
                self.puback(pkid, qos, 0);
            } else {
                // spec 2.9: ignored, no PUBACK, no close.
                self.log(format!(
                    "ignored {topic} from a device that is not a gateway"
                ));
            }
            return;
        }
        if topic == ATTRIBUTES_TOPIC {
            self.post_attributes(qos, pkid, &payload);
        } else if topic == TELEMETRY_TOPIC {
            self.post_telemetry(qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix(ATTR_REQUEST_PREFIX) {
            self.attribute_request(id, qos, pkid, &payload, ATTR_RESPONSE_PREFIX);
        } else if let Some(id) = topic.strip_prefix(RPC_RESPONSE_PREFIX) {
            self.rpc_reply(id, qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix(RPC_REQUEST_PREFIX) {
            self.client_rpc(id, qos, pkid, &payload, RPC_RESPONSE_PREFIX, true);
        } else if topic == CLAIM_TOPIC {
            self.claim(qos, pkid, &payload);
        } else if let Some(rest) = topic.strip_prefix(FW_REQUEST_PREFIX) {
            self.firmware_request("fw", rest, qos, pkid, &payload);
        } else if let Some(rest) = topic.strip_prefix(SW_REQUEST_PREFIX) {
            self.firmware_request("sw", rest, qos, pkid, &payload);
        } else if !topic.contains("/p/") && !topic.ends_with("/p") && topic.starts_with("v2/") {
            self.v2_publish(topic, qos, pkid, payload);
        } else {
            // spec 2.9: unknown topic → PUBACK (0x90 on MQTT 5), nothing else.
            self.log(format!(
                "publish to unsupported topic {topic:?} acknowledged and dropped"
            ));
            self.puback(pkid, qos, 0x90);
        }
    }

    /// spec 12: JSON v2 short topics (`/p` protobuf forms are not served). Responses go to
    /// the matching v2 topic; pushes still use the v1 topics.
    fn v2_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: Bytes) {
        if topic == "v2/t" || topic == "v2/t/j" {
            self.post_telemetry(qos, pkid, &payload);
        } else if topic == "v2/a" || topic == "v2/a/j" {
            self.post_attributes(qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix("v2/a/req/j/") {
            self.attribute_request(id, qos, pkid, &payload, "v2/a/res/j/");
        } else if let Some(id) = topic.strip_prefix("v2/a/req/") {
            self.attribute_request(id, qos, pkid, &payload, "v2/a/res/");
        } else if let Some(id) = topic
            .strip_prefix("v2/r/res/j/")
            .or_else(|| topic.strip_prefix("v2/r/res/"))
        {
            self.rpc_reply(id, qos, pkid, &payload);
        } else if let Some(id) = topic.strip_prefix("v2/r/req/j/") {
            self.client_rpc(id, qos, pkid, &payload, "v2/r/res/j/", false);
        } else if let Some(id) = topic.strip_prefix("v2/r/req/") {
            self.client_rpc(id, qos, pkid, &payload, "v2/r/res/", false);
        } else {
            self.log(format!(
                "publish to unsupported topic {topic:?} acknowledged and dropped"
            ));
            self.puback(pkid, qos, 0x90);
        }
    }

    fn post_telemetry(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let json = match parse_payload(payload) {
            Ok(j) => j,
            Err(e) => return self.payload_error(pkid, qos, "telemetry JSON", &e),
        };
        let now = now_ms();
        let typing = self.inner.config.typing();
        let objects: Vec<&JVal> = match &json {
            JVal::Obj(_) => vec![&json],
            JVal::Arr(items) => items.iter().collect(),
            _ => return self.invalid(pkid, qos, "telemetry (not an object or array)"),
        };
        let mut entries: Vec<(i64, Vec<(String, TbValue)>)> = Vec::new();
        for obj in objects {
            let JVal::Obj(members) = obj else {
                return self.invalid(pkid, qos, "telemetry array element (not an object)");
            };
            let result = match (obj.get("ts"), obj.get("values")) {
                (Some(ts), Some(values)) => {
                    let Some(ts) = ts.as_gson_long() else {
                        return self.unchecked("telemetry ts (not a number)");
                    };
                    let JVal::Obj(vm) = values else {
                        return self.invalid(pkid, qos, "telemetry values (not an object)");
                    };
                    type_object(vm, typing).map(|kv| (ts, kv))
                }
                _ => type_object(members, typing).map(|kv| (now, kv)),
            };
            match result {
                Ok(e) => entries.push(e),
                Err(e) => return self.payload_error(pkid, qos, "telemetry value", &e),
            }
        }
        if entries.is_empty() {
            // spec 4: `[]` is never acknowledged.
            self.log("telemetry [] (no entries): not acknowledged".into());
            return;
        }
        let points: usize = entries.iter().map(|(_, kv)| kv.len()).sum();
        if !self.rate_ok(Some(points)) {
            return;
        }
        let name = self.device_name();
        let cap = self.inner.config.max_telemetry_per_device.max(1);
        self.inner.update(|st| {
            if let Some(dev) = st.devices.get_mut(&name) {
                for (ts, kvs) in entries {
                    for (key, value) in kvs {
                        let point = TelemetryPoint { ts, key, value };
                        if dev.latest.get(&point.key).map_or(true, |p| p.ts <= ts) {
                            dev.latest.insert(point.key.clone(), point.clone());
                        }
                        if dev.telemetry.len() >= cap {
                            dev.telemetry.pop_front();
                        }
                        dev.telemetry.push_back(point);
                    }
                }
            }
        });
        self.puback(pkid, qos, 0);
        self.log(format!("telemetry ({points} values): {}", excerpt(payload)));
    }

    fn post_attributes(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let json = match parse_payload(payload) {
            Ok(j) => j,
            Err(e) => return self.payload_error(pkid, qos, "attributes JSON", &e),
        };
        let JVal::Obj(members) = &json else {
            return self.invalid(pkid, qos, "attributes (not an object)");
        };
        let values = match type_object(members, self.inner.config.typing()) {
            Ok(v) => v,
            Err(e) => return self.payload_error(pkid, qos, "attribute value", &e),
        };
        if !self.rate_ok(None) {
            return;
        }
        let name = self.device_name();
        self.inner.update(|st| {
            if let Some(dev) = st.devices.get_mut(&name) {
                dev.client_attrs.extend(values);
            }
        });
        self.puback(pkid, qos, 0);
        self.log(format!("client attributes: {}", excerpt(payload)));
    }

    fn attribute_request(
        &mut self,
        id: &str,
        qos: u8,
        pkid: u16,
        payload: &[u8],
        response_prefix: &str,
    ) {
        let Ok(id) = id.parse::<i32>() else {
            return self.invalid(pkid, qos, &format!("attribute request id {id:?}"));
        };
        let json = match parse_payload(payload) {
            Ok(j @ JVal::Obj(_)) => j,
            Ok(_) => return self.invalid(pkid, qos, "attribute request (not an object)"),
            Err(e) => return self.payload_error(pkid, qos, "attribute request JSON", &e),
        };
        let mut keys = [None, None];
        for (i, field) in ["clientKeys", "sharedKeys"].iter().enumerate() {
            if let Some(v) = json.get(field) {
                match v.as_gson_string() {
                    Some(s) => keys[i] = Some(java_split(&s)).filter(|k| !k.is_empty()),
                    None => return self.invalid(pkid, qos, &format!("attribute request {field}")),
                }
            }
        }
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        if id < 0 {
            // spec 6: negative ids get no response.
            self.log(format!("attribute request {id}: negative id, no response"));
            return;
        }
        let [client_keys, shared_keys] = keys;
        let name = self.device_name();
        let response = {
            let st = self.inner.state.lock();
            let Some(dev) = st.devices.get(&name) else {
                return;
            };
            let all = client_keys.is_none() && shared_keys.is_none();
            let mut out = String::from("{");
            for (section, attrs, wanted) in [
                ("client", &dev.client_attrs, &client_keys),
                ("shared", &dev.shared_attrs, &shared_keys),
            ] {
                let mut body = String::new();
                let mut n = 0;
                let mut add = |k: &str, v: &TbValue| {
                    body.push(if n == 0 { '{' } else { ',' });
                    write_json_string(&mut body, k);
                    body.push(':');
                    v.write_json(&mut body);
                    n += 1;
                };
                match wanted {
                    None if all => attrs.iter().for_each(|(k, v)| add(k, v)),
                    None => {}
                    Some(list) => {
                        let mut seen: Vec<&str> = Vec::new();
                        for k in list {
                            if !seen.contains(&k.as_str()) {
                                seen.push(k);
                                if let Some(v) = attrs.get(k) {
                                    add(k, v);
                                }
                            }
                        }
                    }
                }
                if n > 0 {
                    body.push('}');
                    if out.len() > 1 {
                        out.push(',');
                    }
                    write_json_string(&mut out, section);
                    out.push(':');
                    out.push_str(&body);
                }
            }
            out.push('}');
            out
        };
        self.log(format!(
            "attribute request {id}: {} -> {response}",
            excerpt(payload)
        ));
        self.publish(
            format!("{response_prefix}{id}"),
            Bytes::from(response),
            None,
        );
    }

    fn rpc_reply(&mut self, id: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let Ok(id) = id.parse::<i32>() else {
            return self.invalid(pkid, qos, &format!("RPC reply id {id:?}"));
        };
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let text = String::from_utf8_lossy(payload).into_owned();
        let name = self.device_name();
        let now = Instant::now();
        let accepted = self.inner.update(|st| {
            let Some(dev) = st.devices.get_mut(&name) else {
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
            entry.record.reply = Some(text.clone());
            entry.slot.set(RpcOutcome::Reply(text.clone()));
            true
        });
        if accepted {
            self.log(format!("server RPC {id} reply: {}", excerpt(payload)));
        } else {
            self.log(format!(
                "server RPC {id} reply is stale (unknown, expired or answered): dropped"
            ));
        }
    }

    fn client_rpc(
        &mut self,
        id_text: &str,
        qos: u8,
        pkid: u16,
        payload: &[u8],
        response_prefix: &str,
        v1: bool,
    ) {
        let Ok(id) = id_text.parse::<i32>() else {
            return self.unchecked(&format!("client RPC id {id_text:?}"));
        };
        let json = match parse_payload(payload) {
            Ok(j @ JVal::Obj(_)) => j,
            Ok(_) => return self.unchecked("client RPC request (not an object)"),
            Err(e) => return self.unchecked(&format!("client RPC JSON ({})", e.message())),
        };
        let Some(method) = json.get("method").and_then(JVal::as_gson_string) else {
            return self.unchecked("client RPC request (no method)");
        };
        let params = json
            .get("params")
            .map_or_else(|| "null".to_string(), JVal::to_json);
        if !self.rate_ok(None) {
            return;
        }
        self.puback(pkid, qos, 0);
        let topic = format!("{response_prefix}{id}");
        if v1 && method == "getSessionLimits" {
            // spec 8: answered by the transport itself.
            let cfg = &self.inner.config;
            let mut out = format!(
                "{{\"maxPayloadSize\":{},\"maxInflightMessages\":{},\"rateLimits\":",
                cfg.max_payload_size, cfg.max_inflight_messages
            );
            limits_json(&mut out, &cfg.rate_limits);
            if self.gateway {
                out.push_str(",\"gatewayRateLimits\":");
                limits_json(&mut out, &cfg.gateway_rate_limits);
            }
            out.push('}');
            self.log(format!("client RPC {id} getSessionLimits -> {out}"));
            self.publish(topic, Bytes::from(out), None);
            return;
        }
        let name = self.device_name();
        let record = ClientRpcRecord {
            ts: now_ms(),
            id,
            method: method.clone(),
            params: params.clone(),
            reply: None,
        };
        let scripted = self.inner.update(|st| {
            let scripted = st.client_rpc_replies.get(&method).cloned();
            if let Some(dev) = st.devices.get_mut(&name) {
                if dev.client_rpcs.len() >= MAX_CLIENT_RPCS {
                    dev.client_rpcs.pop_front();
                }
                let mut record = record;
                record.reply = scripted.clone();
                dev.client_rpcs.push_back(record);
            }
            scripted
        });
        self.log(format!("client RPC {id} {method}({params})"));
        if let Some(reply) = scripted {
            self.log(format!(
                "client RPC {id} reply: {}",
                excerpt(reply.as_bytes())
            ));
            self.publish(topic, Bytes::from(reply), None);
            return;
        }
        let handler = self.inner.rpc_handler.lock().clone();
        let inner = self.inner.clone();
        let tx = self.tx.clone();
        let request = ClientRpcRequest {
            device: name,
            id,
            method,
            params,
        };
        let conn_id = self.conn_id;
        // The handler may be slow (a Python callback): run it off the IO workers.
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
                    tokio::time::sleep(inner.config.client_rpc_timeout).await;
                    CLIENT_RPC_TIMEOUT_REPLY.to_string()
                }
            };
            inner.update(|st| {
                if let Some(rec) = st.devices.get_mut(&request.device).and_then(|d| {
                    d.client_rpcs
                        .iter_mut()
                        .rev()
                        .find(|r| r.id == request.id && r.reply.is_none())
                }) {
                    rec.reply = Some(reply.clone());
                }
            });
            inner.logs.emit(format!(
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

    fn claim(&mut self, qos: u8, pkid: u16, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let (mut secret, mut duration) = (String::new(), 0i64);
        if !text.is_empty() {
            let json = match parse_lenient(&text) {
                Ok(j @ JVal::Obj(_)) => j,
                _ => return self.invalid(pkid, qos, "claim request (not a JSON object)"),
            };
            if let Some(v) = json.get("secretKey") {
                match v.as_gson_string() {
                    Some(s) => secret = s,
                    None => return self.invalid(pkid, qos, "claim secretKey"),
                }
            }
            if let Some(v) = json.get("durationMs") {
                match v.as_gson_long() {
                    Some(d) => duration = d,
                    None => return self.invalid(pkid, qos, "claim durationMs"),
                }
            }
        }
        if duration <= 0 {
            duration = self.inner.config.claim_duration_ms;
        }
        if !self.rate_ok(None) {
            return;
        }
        let name = self.device_name();
        let claim = Claim {
            ts: now_ms(),
            secret_key: secret,
            duration_ms: duration,
        };
        self.log(format!(
            "claim request (secret key {:?}, {} ms)",
            claim.secret_key, claim.duration_ms
        ));
        self.inner.update(|st| {
            if let Some(dev) = st.devices.get_mut(&name) {
                dev.claims.push(claim);
            }
        });
        self.puback(pkid, qos, 0);
    }

    /// spec 11.2, 17.42-44: `v2/{fw,sw}/request/{reqId}/chunk/{index}`.
    ///
    /// Design: ThingsBoard *finds* its pattern `v2/fw/request/(\d+)/chunk/(\d+)` in the
    /// topic, so anything after the index digits is ignored, and parses the payload and the
    /// index with `Integer.parseInt`: no trimming, an optional sign, a value past `i32`
    /// throws and closes the session (2.9, "unchecked"). A size above 0 is remembered for
    /// the request id; 0, negative or empty reuse the remembered one (else 0 = whole image).
    fn firmware_request(&mut self, kind: &str, rest: &str, qos: u8, pkid: u16, payload: &[u8]) {
        let parsed = rest.split_once("/chunk/").and_then(|(r, tail)| {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let ok = !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit()) && digits > 0;
            ok.then(|| (r, &tail[..digits]))
        });
        let Some((req_id, index)) = parsed else {
            self.log(format!(
                "unsupported firmware topic v2/{kind}/request/{rest}"
            ));
            return self.puback(pkid, qos, 0x90);
        };
        let text = String::from_utf8_lossy(payload);
        let requested = if text.is_empty() {
            0
        } else {
            match text.parse::<i32>() {
                Ok(s) => s,
                Err(_) => return self.unchecked(&format!("firmware chunk size {text:?}")),
            }
        };
        let Ok(index) = index.parse::<i32>() else {
            return self.unchecked(&format!("firmware chunk index {index:?}"));
        };
        let size = if requested > 0 {
            self.fw_sizes.insert(req_id.to_string(), requested);
            requested
        } else {
            self.fw_sizes.get(req_id).copied().unwrap_or(0)
        };
        let error = |s: &mut Self, code: &str| {
            s.log(format!("{kind} chunk request {req_id}/{index}: {code}"));
            s.publish(FW_ERROR_TOPIC.into(), Bytes::from(code.to_string()), None);
            s.close(code, 0x83);
        };
        if i64::from(size) > i64::try_from(self.inner.config.max_payload_size).unwrap_or(i64::MAX) {
            return error(self, "PAYLOAD_TOO_LARGE");
        }
        // spec 11.2: the package is looked up once per request id and kept for the life of
        // the connection, so a running download survives a reassignment.
        let image = match self.fw_images.get(req_id) {
            Some(image) => image.clone(),
            None => {
                let name = self.device_name();
                let found = {
                    let st = self.inner.state.lock();
                    st.devices
                        .get(&name)
                        .and_then(|d| d.firmware.clone())
                        .filter(|_| kind == "fw")
                };
                let Some(image) = found else {
                    return error(self, "NOT_FOUND");
                };
                self.fw_images.insert(req_id.to_string(), image.clone());
                image
            }
        };
        self.puback(pkid, qos, 0);
        let Some(chunk) = crate::firmware::chunk(&image, size, index) else {
            self.log(format!(
                "{kind} chunk {index} of request {req_id} (size {size}): offset wraps \
                 negative; nothing sent, as ThingsBoard"
            ));
            return;
        };
        self.log(format!(
            "{kind} chunk {index} of request {req_id}: {} bytes",
            chunk.len()
        ));
        self.publish(
            format!("v2/{kind}/response/{req_id}/chunk/{index}"),
            chunk,
            None,
        );
    }

    // ---- provisioning -------------------------------------------------------------------

    fn provision_publish(&mut self, topic: &str, qos: u8, pkid: u16, payload: &[u8]) {
        if topic != PROVISION_REQUEST_TOPIC {
            // spec 10.1: PUBACK (0x90) then close.
            self.log(format!(
                "publish to {topic:?} in a provisioning session: closing"
            ));
            self.puback(pkid, qos, 0x90);
            return self.gone("publish outside /provision/request");
        }
        let request = if payload.is_empty() {
            // Not JSON; the protobuf retry reads an empty message: empty key and secret.
            Ok(provision::ProvisionRequest::default())
        } else {
            match parse_payload(payload) {
                Ok(obj @ JVal::Obj(_)) => provision::read_request(&obj),
                _ => {
                    return self.invalid(pkid, qos, "provision request (not a JSON object)");
                }
            }
        };
        let request = match request {
            Ok(r) => r,
            Err(why) => {
                // spec 10.2: PUBACK (0x83) and close, no response.
                self.log(format!("bad provision request ({why}): closing"));
                self.puback(pkid, qos, 0x83);
                return self.gone(&why);
            }
        };
        self.puback(pkid, qos, 0);
        let (response, record) = self.inner.update(|st| {
            let (response, record) = provision::provision(st, &request);
            if let Some(r) = &record {
                st.provisioned.push(r.clone());
            }
            (response, record)
        });
        self.log(format!(
            "provision request for {:?} (key {:?}): {}{}",
            request.device_name,
            request.key,
            response,
            record
                .map(|r| format!(" -> device \"{}\"", r.name))
                .unwrap_or_default()
        ));
        self.publish(PROVISION_RESPONSE_TOPIC.into(), Bytes::from(response), None);
        self.provision_close_at = Some(Instant::now() + self.inner.config.provision_close_delay);
    }
}

fn set_rpc_status(inner: &Inner, device: &str, id: u32, from: RpcStatus, to: RpcStatus) {
    inner.update(|st| {
        if let Some(e) = st.devices.get_mut(device).and_then(|d| d.rpcs.get_mut(&id)) {
            if e.record.status == from {
                e.record.status = to;
            }
        }
    });
}

/// `{"method":..,"params":..}` (spec 7.2; no id in the payload).
pub(crate) fn rpc_payload(method: &str, params_json: &str) -> String {
    let mut out = String::from("{\"method\":");
    write_json_string(&mut out, method);
    out.push_str(",\"params\":");
    out.push_str(params_json);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_drops_trailing_empties_only() {
        assert_eq!(java_split("a,b"), vec!["a", "b"]);
        assert_eq!(java_split("a, b"), vec!["a", " b"]);
        assert_eq!(java_split(""), vec![""]);
        assert_eq!(java_split("a,,"), vec!["a"]);
        assert!(java_split(",").is_empty());
        assert_eq!(java_split(",a"), vec!["", "a"]);
    }

    #[test]
    fn filters_match_plus_levels() {
        assert!(filter_matches(
            "v1/devices/me/rpc/request/+",
            "v1/devices/me/rpc/request/0"
        ));
        assert!(!filter_matches(
            "v1/devices/me/rpc/request/+",
            "v1/devices/me/rpc/request"
        ));
        assert!(filter_matches(
            "v2/fw/response/+/chunk/+",
            "v2/fw/response/1/chunk/0"
        ));
        assert!(!filter_matches(
            "v1/devices/me/attributes",
            "v1/devices/me/attributes/response/1"
        ));
    }
}
