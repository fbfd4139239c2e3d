//! The MQTT session of one connection: CONNECT and authentication, subscriptions, packet ids,
//! PUBACKs, keepalive and the close rules of spec 2, and the dispatch of each device publish
//! to its feature module (`uplink.rs`).
//!
//! Call order (the network task drives it): [`Session::handle_data`] with the bytes read,
//! [`Session::handle_cmd`] for commands from other tasks, [`Session::handle_timeout`] at
//! [`Session::deadline`]; after each, [`Session::flush_logs`], then write
//! [`Session::poll_transmit`] and call [`Session::transmitted`]; stop once
//! [`Session::is_closed`], then [`Session::finish`].

mod gateway;
#[cfg(test)]
mod ingest_cost;
mod uplink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::UnboundedSender;

use crate::codec::{self, ConnCode, ConnectInfo, DecodeError, Inbound, MqttVersion, Outbound};
use crate::events::Event;
use crate::features::{devices, rpc};
use crate::ratelimit::Buckets;
use crate::shared::{SessionCmd, SessionLink, Shared};
use crate::store::{now_ms, Auth, ConnectionEvent, ConnectionEventKind, RpcStatus};
use crate::topics::{
    filter_matches, rpc_request_topic, ACCEPTED_FILTERS, ATTRIBUTES_TOPIC, PROVISION,
    PROVISION_RESPONSE_TOPIC, RPC_SUBSCRIBE_FILTER,
};

/// The certificate a TLS client presented (spec 3.3).
#[derive(Debug, Clone)]
pub(crate) struct ClientCert {
    /// Its PEM body (base64 DER, no armour, no line breaks).
    pub(crate) body: String,
    /// Why it cannot authenticate anyone even if it is known (it is outside its validity
    /// dates), if so.
    pub(crate) invalid: Option<String>,
}

enum Role {
    PreConnect,
    Device(String),
    Provision,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
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
    /// The TLS client certificate, if one was presented (spec 3.3).
    client_cert: Option<ClientCert>,
    /// The same for everything a gateway relays (`gatewayRateLimits`, shared by its
    /// sub-devices; thingsboard-gateway.md A.11).
    gw_buckets: [Option<Buckets>; 3],
    /// Scratch space for the JSON text of a gateway message's part, kept between messages.
    json_text: String,
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn_id: u64,
        peer: SocketAddr,
        tx: UnboundedSender<SessionCmd>,
    ) -> Self {
        Session {
            shared,
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
            client_cert: None,
            gw_buckets: [None, None, None],
            json_text: String::new(),
        }
    }

    /// The certificate a TLS client presented: it then authenticates the device and the
    /// CONNECT credentials are ignored (spec 3.3).
    pub(crate) fn set_client_certificate(&mut self, cert: Option<ClientCert>) {
        self.client_cert = cert;
    }

    // ---- getters ------------------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub(crate) fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.shared.config.inactivity_timeout;
        match self.provision_close_at {
            Some(p) if p < idle => p,
            _ => idle,
        }
    }

    /// Whether the connection is to be closed (after writing what is pending).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    fn version(&self) -> MqttVersion {
        self.version.unwrap_or(MqttVersion::V311)
    }

    fn is_v5(&self) -> bool {
        self.version == Some(MqttVersion::V5)
    }

    fn device_name(&self) -> String {
        match &self.role {
            Role::Device(n) => n.clone(),
            _ => String::new(),
        }
    }

    // ---- input --------------------------------------------------------------------------

    /// Bytes read from the socket: decodes and handles every complete packet in `buf`.
    pub(crate) fn handle_data(&mut self, buf: &mut BytesMut, now: Instant) {
        self.last_activity = now;
        let max = self.shared.config.max_payload_size;
        while self.closed.is_none() && !buf.is_empty() {
            let decoded = match self.version {
                None => codec::decode_connect(buf, max),
                Some(v) => codec::decode(buf, v, max),
            };
            match decoded {
                Ok(packet) => self.handle(packet),
                Err(DecodeError::Incomplete) => break,
                Err(DecodeError::TooLarge(n)) => {
                    self.log(format_args!(
                        "packet with remaining length {n} exceeds {max} bytes: closing"
                    ));
                    self.close("packet too large", 0x81);
                }
                Err(DecodeError::Malformed(m)) => {
                    self.log(format_args!("malformed packet ({m}): closing"));
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

    /// A command from another task (a publish to make, a close).
    pub(crate) fn handle_cmd(&mut self, cmd: SessionCmd) {
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
                self.log(format_args!("closed by the server: {reason}"));
                self.close(&reason, code);
            }
        }
    }

    /// The [`deadline`](Self::deadline) passed: provisioning close or inactivity timeout.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.provision_close_at.is_some_and(|p| now >= p) {
            self.close("provisioning session closed after the response delay", 0x00);
        } else if now >= self.last_activity + self.shared.config.inactivity_timeout {
            self.close("inactivity timeout", 0xa0);
        }
    }

    // ---- output -------------------------------------------------------------------------

    /// Bytes to write now (empty if none).
    pub(crate) fn poll_transmit(&self) -> &[u8] {
        &self.out
    }

    /// The bytes of [`poll_transmit`](Self::poll_transmit) were written (or given up on).
    pub(crate) fn transmitted(&mut self) {
        self.out.clear();
        if self.out.capacity() > 64 * 1024 {
            self.out = BytesMut::new();
        }
    }

    /// Emits the lines [`log`](Self::log) collected. Design: called once per wake-up, before
    /// the replies are written, so a client that saw its PUBACK finds the line logged, and the
    /// log scope (the GIL, in Python) is entered once for all packets of one read.
    pub(crate) fn flush_logs(&mut self) {
        self.shared.logs.emit_all(&self.logs);
        self.logs.clear();
    }

    /// The connection ended: records the event and forgets the device's session.
    pub(crate) fn finish(&mut self) {
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
        let gateway = self.gateway;
        let subs = self.shared.update(|st| {
            if let Some(name) = &device {
                devices::detach_session(st, name, conn_id);
            }
            st.store.push_event(event);
            // A.10: the gateway's connection ends every sub-device session it opened.
            if gateway {
                crate::features::gateway::close_all(st, conn_id)
            } else {
                Vec::new()
            }
        });
        for name in subs {
            self.shared.events.send(Event::Device { name });
        }
        if let Some(name) = device {
            self.shared.events.send(Event::Device { name });
        }
        self.log(format_args!("disconnected: {reason}"));
    }

    // ---- internals ----------------------------------------------------------------------

    /// Collects a log line, `[conn N] "device" msg`. Design: written straight into the one
    /// `String` the line needs (a line per message is logged, so this is on the ingest path).
    fn log(&mut self, msg: std::fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        let mut line = String::with_capacity(96);
        let _ = write!(line, "[conn {}]", self.conn_id);
        match &self.role {
            Role::Device(name) => {
                line.push_str(" \"");
                line.push_str(name);
                line.push('"');
            }
            Role::Provision => line.push_str(" provisioning"),
            Role::PreConnect => {}
        }
        line.push(' ');
        let _ = line.write_fmt(msg);
        self.logs.push(line);
    }

    fn send(&mut self, packet: Outbound) {
        let v = self.version();
        codec::encode(&mut self.out, v, packet);
    }

    /// Closes the connection, sending DISCONNECT `code` first on MQTT 5.
    pub(crate) fn close(&mut self, reason: &str, code: u8) {
        if self.closed.is_some() {
            return;
        }
        if self.is_v5() && !matches!(self.role, Role::PreConnect) {
            self.send(Outbound::Disconnect(code));
        }
        self.closed = Some(reason.to_string());
    }

    /// Closes without a DISCONNECT (peer gone, or ThingsBoard just drops the channel).
    pub(crate) fn gone(&mut self, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(reason.to_string());
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
        self.shared.update(|st| st.store.push_event(event));
        let peer = self.peer;
        self.log(format_args!("{peer} rejected without CONNACK: {reason}"));
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
            self.shared.update(|st| st.store.push_event(event));
            let peer = self.peer;
            self.log(format_args!(
                "{} connected for provisioning (MQTT {})",
                peer,
                info.version.as_str()
            ));
            return;
        }
        let auth = match &self.client_cert {
            // spec 3.3: an invalid or expired certificate is "not authorised".
            Some(ClientCert {
                invalid: Some(why), ..
            }) => Auth::Refused(crate::codec::ConnCode::NotAuthorized, why.clone()),
            Some(cert) => self.shared.state.lock().store.authenticate_x509(&cert.body),
            None => self.shared.state.lock().store.authenticate(
                &info.client_id,
                &info.username,
                info.password.as_deref(),
            ),
        };
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
                self.shared.update(|st| st.store.push_event(event));
                let peer = self.peer;
                self.log(format_args!(
                    "{} refused: {reason} (CONNACK {wire}, client id {:?})",
                    peer, info.client_id
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
            via_gateway: None,
        };
        let event = base(
            ConnectionEventKind::Connected,
            Some(name.clone()),
            Some(0),
            "accepted".into(),
        );
        self.gateway = devices::attach_session(&self.shared, &name, link).unwrap_or(false);
        self.shared.update(|st| st.store.push_event(event));
        let now = Instant::now();
        let specs = &self.shared.limits.device;
        self.buckets = [
            specs[0].as_ref().map(|s| Buckets::new(s, now)),
            specs[1].as_ref().map(|s| Buckets::new(s, now)),
            specs[2].as_ref().map(|s| Buckets::new(s, now)),
        ];
        let specs = &self.shared.limits.gateway;
        self.gw_buckets = [
            specs[0].as_ref().map(|s| Buckets::new(s, now)),
            specs[1].as_ref().map(|s| Buckets::new(s, now)),
            specs[2].as_ref().map(|s| Buckets::new(s, now)),
        ];
        self.send(Outbound::ConnAck {
            code: ConnCode::Accepted,
            session_present,
        });
        self.role = Role::Device(name);
        let peer = self.peer;
        self.log(format_args!(
            "{} connected (MQTT {}, client id {:?})",
            peer,
            info.version.as_str(),
            info.client_id
        ));
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
        if let Role::Device(name) = &self.role {
            if self.shared.events.watching(name) {
                self.shared.events.send(Event::Log {
                    device: name.clone(),
                    ts: now_ms(),
                    up: false,
                    topic: topic.clone(),
                    payload: crate::events::log_payload(&payload),
                });
            }
        }
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
                rpc::set_status(
                    &self.shared,
                    &name,
                    id,
                    RpcStatus::Sent,
                    RpcStatus::Delivered,
                );
            } else {
                self.inflight_rpcs.push((pkid, id));
                let shared = self.shared.clone();
                let wait = self.shared.config.rpc_delivery_timeout;
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    rpc::set_status(&shared, &name, id, RpcStatus::Sent, RpcStatus::Timeout);
                });
            }
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        if let Some(i) = self.inflight_rpcs.iter().position(|(p, _)| *p == pkid) {
            let (_, id) = self.inflight_rpcs.swap_remove(i);
            let name = self.device_name();
            rpc::set_status(
                &self.shared,
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
        let (mut attr, mut rpc_sub) = (false, false);
        for (filter, qos) in filters {
            if ACCEPTED_FILTERS.contains(&filter.as_str()) {
                let granted = qos.min(1);
                attr |= filter == ATTRIBUTES_TOPIC;
                rpc_sub |= filter == RPC_SUBSCRIBE_FILTER;
                self.log(format_args!("subscribed to {filter} (QoS {granted})"));
                self.register_sub(filter, granted);
                codes.push(Some(granted));
            } else {
                self.log(format_args!(
                    "subscription to {filter} refused (unsupported filter)"
                ));
                codes.push(None);
            }
        }
        self.send(Outbound::SubAck { pkid, codes });
        if !(attr || rpc_sub) {
            return;
        }
        let name = self.device_name();
        let conn_id = self.conn_id;
        let pending = self.shared.update(|st| {
            let Some(link) = st.links.get_mut(&name).filter(|l| l.conn_id == conn_id) else {
                return Vec::new();
            };
            link.attr_sub |= attr;
            link.rpc_sub |= rpc_sub;
            if rpc_sub {
                rpc::take_queued(&self.shared, st, &name)
            } else {
                Vec::new()
            }
        });
        for (id, payload) in pending {
            self.log(format_args!("delivering pending server RPC {id}"));
            self.publish(rpc_request_topic(id), Bytes::from(payload), Some(id));
        }
    }

    fn unsubscribe(&mut self, pkid: u16, filters: Vec<String>) {
        let mut existed = Vec::with_capacity(filters.len());
        let (mut attr, mut rpc_sub) = (false, false);
        for filter in filters {
            let before = self.subs.len();
            self.subs.retain(|(f, _)| *f != filter);
            existed.push(self.subs.len() != before);
            attr |= filter == ATTRIBUTES_TOPIC;
            rpc_sub |= filter == RPC_SUBSCRIBE_FILTER;
        }
        self.send(Outbound::UnsubAck { pkid, existed });
        if attr || rpc_sub {
            let name = self.device_name();
            let conn_id = self.conn_id;
            self.shared.update(|st| {
                if let Some(link) = st.links.get_mut(&name).filter(|l| l.conn_id == conn_id) {
                    link.attr_sub &= !attr;
                    link.rpc_sub &= !rpc_sub;
                }
            });
        }
    }
}
