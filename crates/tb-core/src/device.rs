//! The device session state machine.

use alloc::borrow::Cow;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::error::{Error, PeerError};
use crate::firmware::{Firmware, FirmwareConfig, FirmwareEvent};
use crate::gateway::Gateway;
use crate::limits::{self, Pacer, SessionLimits};
use crate::payload;
use crate::provision::{self, ProvisionOutcome};
use crate::queue::Echoes;
use crate::refusal::Refusals;
use crate::split::Shape;
use crate::topics;
// Design: the ids and the clock live in lib.rs, below every module (firmware.rs needs Millis
// and device.rs imports firmware); re-exported here for the `impl Device` files.
pub(crate) use crate::{MessageId, Millis, QoS, RequestId, SubscriptionId};

/// What kind of session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An ordinary device session (access token or basic credentials).
    Device,
    /// A provisioning-only session (spec 10.1).
    Provisioning,
    /// A gateway: a device that also relays for sub-devices on `v1/gateway/*`
    /// (thingsboard-gateway.md; see [`crate::gateway`]).
    Gateway,
}

/// Settings of a [`Device`].
#[derive(Debug, Clone)]
pub struct Config {
    /// QoS of telemetry, attributes, claims, RPC and subscriptions.
    pub qos: QoS,
    /// Bound on messages queued or awaiting PUBACK; beyond it commands fail with
    /// [`CapacityError::QueueFull`](crate::CapacityError::QueueFull).
    pub max_queued: usize,
    /// Session kind.
    pub mode: Mode,
    /// How long an own publish may come back from the broker and be recognised as an echo.
    pub echo_window_ms: Millis,
    /// Largest MQTT remaining length the server accepts (spec 2.5: 65536 by default); a
    /// bigger publish is refused before it is queued, since the server would close the
    /// connection on it.
    pub max_packet_size: usize,
    /// Firmware updates over the air (spec 11); see [`crate::firmware`].
    pub firmware: FirmwareConfig,
    /// Ask the server for its limits (`getSessionLimits`, spec 8) after every CONNACK, then
    /// split and pace by them. A server that does not answer is fine.
    pub ask_session_limits: bool,
    /// How long queued publishes wait after a CONNACK for the `getSessionLimits` answer
    /// before they go unpaced, while no answer came on an earlier connection (once the server
    /// answered, later connections wait for the answer up to [`LIMITS_TIMEOUT_MS`]).
    pub limits_hold_ms: Millis,
    /// Limits set by hand; when given, the server is not asked.
    pub limits: Option<SessionLimits>,
    /// Pace publishes by the rate limits (when false, limits only bound the packet size).
    pub pace: bool,
}

/// How long the `getSessionLimits` request waits for its answer.
pub const LIMITS_TIMEOUT_MS: Millis = 10_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            qos: QoS::AtLeastOnce,
            max_queued: 100_000,
            mode: Mode::Device,
            echo_window_ms: 10_000,
            max_packet_size: 65_536,
            firmware: FirmwareConfig::default(),
            ask_session_limits: false,
            limits_hold_ms: 0,
            limits: None,
            pace: true,
        }
    }
}

/// One outgoing MQTT PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The device's id for this message. The parts of a split upload share one id, and the
    /// message is delivered once every part was acknowledged. Id 0 marks the device's own
    /// messages (the `getSessionLimits` request, a gateway's re-announcements), which no
    /// handle waits for.
    pub id: MessageId,
    /// Topic name.
    pub topic: Cow<'static, str>,
    /// Payload bytes (compact JSON for every JSON topic).
    pub payload: Vec<u8>,
    /// QoS to publish at.
    pub qos: QoS,
    /// Data points the message carries (telemetry and attribute uploads), as rate limits
    /// count them.
    pub data_points: u32,
    /// How many messages this packet carries: 1, or more for a merged gateway upload (see
    /// [`Device::poll_transmit_merged`]). Set on the packet handed to the host and on the
    /// first of its messages in `inflight`; 1 everywhere else.
    pub(crate) carries: u32,
}

/// Something the host must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// SUBSCRIBE to these filters at this QoS (one packet).
    Subscribe {
        /// Exact filters (spec 2.11).
        filters: &'static [&'static str],
        /// Requested QoS.
        qos: QoS,
    },
    /// PUBLISH this message.
    Publish(Publish),
}

/// A request that got no response in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The timeout that ran out.
    pub after_ms: Millis,
}

/// Something that happened, for the host to hand to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A shared-attribute push on `v1/devices/me/attributes`.
    AttributeUpdate {
        /// The pushed object, as it arrived.
        data: Map<String, Value>,
        /// Subscriptions to notify, in call order: all-keys (`*`) subscriptions first, then
        /// per key in the order the keys arrived (the reference's order).
        subscriptions: Vec<SubscriptionId>,
    },
    /// The answer to [`Device::request_attributes`], or its timeout.
    AttributeResponse {
        /// The request.
        id: RequestId,
        /// The whole response object (`{"client": {...}, "shared": {...}}`).
        result: Result<Value, TimedOut>,
    },
    /// A server-side RPC request.
    RpcRequest {
        /// The id from the topic, as text (the reference passes it so).
        id: String,
        /// The decoded request object, usually `{"method": ..., "params": ...}`.
        body: Value,
    },
    /// The answer to [`Device::send_rpc_call`], or its timeout.
    RpcResponse {
        /// The request.
        id: RequestId,
        /// The decoded response.
        result: Result<Value, TimedOut>,
    },
    /// The answer to [`Device::provision`].
    ProvisionResponse(ProvisionOutcome),
    /// An incoming message that was not usable; the host logs it and goes on.
    Dropped {
        /// Where it arrived.
        topic: String,
        /// Why it was dropped.
        reason: PeerError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    Attributes,
    Rpc,
}

#[derive(Debug)]
struct Pending {
    kind: PendingKind,
    id: RequestId,
    deadline: Millis,
    timeout: Millis,
}

/// A ThingsBoard device session as a sans-IO state machine.
///
/// Call order for a host:
/// 1. commands (`send_telemetry`, `request_attributes`, ...) queue messages at any time,
///    connected or not;
/// 2. [`handle_connected`](Device::handle_connected) after each CONNACK,
///    [`handle_disconnected`](Device::handle_disconnected) when the link drops,
///    [`handle_puback`](Device::handle_puback) per PUBACK,
///    [`handle_publish`](Device::handle_publish) per incoming PUBLISH,
///    [`handle_timeout`](Device::handle_timeout) when [`poll_timeout`](Device::poll_timeout)
///    has passed;
/// 3. then drain [`poll_transmit`](Device::poll_transmit) into the network,
///    [`poll_event`](Device::poll_event) into the application and
///    [`poll_firmware_event`](Device::poll_firmware_event) into the firmware writer
///    (see [`crate::firmware`] for that side's call order).
///
/// Every QoS 1 publish stays in the device until [`handle_puback`](Device::handle_puback)
/// names it; a disconnect puts the unacknowledged ones back at the head of the queue, so they
/// are sent again, in their original order, after the next CONNACK.
#[derive(Debug)]
pub struct Device {
    pub(crate) cfg: Config,
    connected: bool,
    subscribe_due: bool,
    /// Whether this connection subscribed to the firmware filters (before its first chunk
    /// request; see [`topics::FIRMWARE_SUBSCRIPTIONS`]).
    fw_subscribed: bool,
    pub(crate) next_msg: u64,
    pub(crate) next_attr_request: u32,
    next_rpc: u32,
    next_sub: u32,
    subscriptions: Vec<(SubscriptionId, String)>,
    pending: Vec<Pending>,
    pub(crate) queued: VecDeque<Publish>,
    pub(crate) inflight: VecDeque<Publish>,
    pub(crate) events: VecDeque<Event>,
    echoes: Echoes,
    pub(crate) qos1_unacked: usize,
    pub(crate) fw: Firmware,
    pub(crate) gw: Gateway,
    pub(crate) pacer: Pacer,
    /// The limits in force (by hand, or the server's answer).
    pub(crate) limits: Option<SessionLimits>,
    /// After a CONNACK: until when data waits for the `getSessionLimits` answer.
    pub(crate) limits_hold: Option<Millis>,
    /// The `getSessionLimits` request is out; its answer is awaited until this deadline.
    pub(crate) limits_deadline: Option<Millis>,
    /// The server answered `getSessionLimits` on some connection.
    pub(crate) limits_answered: bool,
    /// The head of the queue waits for the pacer until then.
    pub(crate) paced_until: Option<Millis>,
    /// Closes right after one message, towards refusing it (see [`crate::refusal`]).
    pub(crate) refusals: Refusals,
}

impl Device {
    /// A new, disconnected device session.
    pub fn new(cfg: Config) -> Device {
        // Firmware downloads belong to device sessions only (a gateway is one, too).
        let fw_cfg = FirmwareConfig {
            enabled: cfg.firmware.enabled && cfg.mode != Mode::Provisioning,
            ..cfg.firmware.clone()
        };
        let mut dev = Device {
            fw: Firmware::new(fw_cfg, cfg.max_packet_size),
            cfg,
            connected: false,
            subscribe_due: false,
            fw_subscribed: false,
            next_msg: 0,
            next_attr_request: 0,
            next_rpc: 0,
            next_sub: 0,
            subscriptions: Vec::new(),
            pending: Vec::new(),
            queued: VecDeque::new(),
            inflight: VecDeque::new(),
            events: VecDeque::new(),
            echoes: Echoes::default(),
            qos1_unacked: 0,
            gw: Gateway::default(),
            pacer: Pacer::new(),
            limits: None,
            limits_hold: None,
            limits_deadline: None,
            limits_answered: false,
            paced_until: None,
            refusals: Refusals::default(),
        };
        if crate::LIMITS {
            if let Some(l) = dev.cfg.limits.clone() {
                dev.apply_limits(l);
            }
        }
        dev
    }

    // ---- getters -------------------------------------------------------------------------

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether this is a gateway session.
    pub fn is_gateway(&self) -> bool {
        self.cfg.mode == Mode::Gateway
    }

    /// The limits in force: set by hand, or the server's `getSessionLimits` answer.
    pub fn session_limits(&self) -> Option<&SessionLimits> {
        self.limits.as_ref()
    }

    /// Whether the host reported a live MQTT session.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Messages queued or awaiting PUBACK.
    pub fn unacknowledged(&self) -> usize {
        self.queued.len() + self.inflight.len()
    }

    /// QoS 1 messages queued or awaiting PUBACK (what a flush waits for).
    pub fn unacknowledged_qos1(&self) -> usize {
        self.qos1_unacked
    }

    /// Whether the message is still queued or awaiting its PUBACK.
    pub fn is_pending(&self, id: MessageId) -> bool {
        // Both queues stay sorted by id: messages are queued in id order, handed over from the
        // head of `queued` to the tail of `inflight`, and put back in order on a disconnect.
        self.inflight.binary_search_by_key(&id, |p| p.id).is_ok()
            || self.queued.binary_search_by_key(&id, |p| p.id).is_ok()
    }

    /// Whether a request is still waiting for its response.
    pub fn is_request_pending(&self, id: RequestId) -> bool {
        self.pending.iter().any(|p| p.id == id)
    }

    // ---- commands ------------------------------------------------------------------------

    /// Queues telemetry (spec 4). `data` is a dict, a `{"ts", "values"}` dict, or a list.
    ///
    /// Data bigger than one packet (or than the smallest data-point window) is split into
    /// several publishes along keys and `ts` entries; the id covers them all.
    pub fn send_telemetry(&mut self, data: &Value) -> Result<MessageId, Error> {
        payload::check_telemetry(data)?;
        let qos = self.cfg.qos;
        self.enqueue_upload(topics::TELEMETRY, Shape::Telemetry, data, qos, "telemetry")
    }

    /// Queues client-side attributes (spec 5).
    pub fn send_attributes(&mut self, data: &Value) -> Result<MessageId, Error> {
        payload::check_attributes(data)?;
        let qos = self.cfg.qos;
        self.enqueue_upload(
            topics::ATTRIBUTES,
            Shape::Attributes,
            data,
            qos,
            "attributes",
        )
    }

    /// Queues a claiming request (spec 9).
    pub fn claim_device(
        &mut self,
        secret_key: Option<&str>,
        duration_ms: Option<u64>,
    ) -> Result<MessageId, Error> {
        let qos = self.cfg.qos;
        self.enqueue(
            topics::CLAIM.into(),
            payload::claim(secret_key, duration_ms),
            qos,
        )
    }

    /// Queues the reply to server-side RPC `id` (spec 7.3).
    pub fn send_rpc_reply(&mut self, id: &str, response: &Value) -> Result<MessageId, Error> {
        payload::check_rpc_reply_id(id)?;
        let mut topic = String::with_capacity(topics::RPC_RESPONSE_PREFIX.len() + id.len());
        topic.push_str(topics::RPC_RESPONSE_PREFIX);
        topic.push_str(id);
        let qos = self.cfg.qos;
        self.enqueue(topic.into(), payload::encode(response), qos)
    }

    fn add_pending(&mut self, kind: PendingKind, id: RequestId, now: Millis, timeout: Millis) {
        self.pending.push(Pending {
            kind,
            id,
            deadline: now.saturating_add(timeout),
            timeout,
        });
    }

    /// Queues an attribute request (spec 6); its answer (or timeout after `timeout_ms`) comes as
    /// [`Event::AttributeResponse`] with the returned id.
    pub fn request_attributes(
        &mut self,
        now: Millis,
        client_keys: &[&str],
        shared_keys: &[&str],
        timeout_ms: Millis,
    ) -> Result<RequestId, Error> {
        let body = payload::attribute_request(client_keys, shared_keys)?;
        let id = RequestId(self.next_attr_request.wrapping_add(1));
        let topic = alloc::format!("{}{}", topics::ATTRIBUTES_REQUEST_PREFIX, id.0);
        let qos = self.cfg.qos;
        self.enqueue(topic.into(), body, qos)?;
        self.next_attr_request = id.0;
        self.add_pending(PendingKind::Attributes, id, now, timeout_ms);
        Ok(id)
    }

    /// Queues a client-side RPC (spec 8); its answer (or timeout) comes as
    /// [`Event::RpcResponse`] with the returned id.
    pub fn send_rpc_call(
        &mut self,
        now: Millis,
        method: &str,
        params: &Value,
        timeout_ms: Millis,
    ) -> Result<RequestId, Error> {
        let id = RequestId(self.next_rpc.wrapping_add(1));
        let topic = alloc::format!("{}{}", topics::RPC_REQUEST_PREFIX, id.0);
        let qos = self.cfg.qos;
        self.enqueue(topic.into(), payload::rpc_request(method, params), qos)?;
        self.next_rpc = id.0;
        self.add_pending(PendingKind::Rpc, id, now, timeout_ms);
        Ok(id)
    }

    /// Queues a provisioning request (spec 10.2); the answer comes as
    /// [`Event::ProvisionResponse`]. Use in a [`Mode::Provisioning`] session.
    pub fn provision(&mut self, request: &Value) -> Result<MessageId, Error> {
        let body = provision::request_payload(request)?;
        self.enqueue(topics::PROVISION_REQUEST.into(), body, QoS::AtLeastOnce)
    }

    /// Adds an attribute subscription for `key` (`"*"` for every update). No MQTT traffic.
    pub fn subscribe_to_attribute(&mut self, key: &str) -> SubscriptionId {
        self.next_sub = self.next_sub.wrapping_add(1);
        let id = SubscriptionId(self.next_sub);
        self.subscriptions.push((id, key.to_string()));
        id
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe_from_attribute(&mut self, id: SubscriptionId) -> bool {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|(s, _)| *s != id);
        before != self.subscriptions.len()
    }

    /// Removes every attribute subscription.
    pub fn clear_subscriptions(&mut self) {
        self.subscriptions.clear();
    }

    /// Forgets a pending request without an event (the caller gave up on it).
    pub fn cancel_request(&mut self, id: RequestId) {
        self.pending.retain(|p| p.id != id);
    }

    // ---- inputs --------------------------------------------------------------------------

    /// The broker accepted the session (CONNACK 0). Subscriptions are due again (ThingsBoard
    /// keeps none across connections, spec 2.7), then unacknowledged messages are resent.
    ///
    /// A firmware download in progress resumes: the request for the missing chunk is replaced
    /// by a fresh one under a new request id (chunk requests left from before are not resent).
    ///
    /// With [`Config::ask_session_limits`], the `getSessionLimits` request goes first; a
    /// gateway then announces its connected sub-devices again.
    pub fn handle_connected(&mut self) {
        self.handle_connected_at(0);
    }

    /// [`handle_connected`](Device::handle_connected) with the time, which starts the wait for
    /// the `getSessionLimits` answer (see [`Config::limits_hold_ms`]).
    pub fn handle_connected_at(&mut self, now: Millis) {
        self.requeue_inflight();
        self.refusals.on_connected();
        self.connected = true;
        self.subscribe_due = true;
        self.fw_subscribed = false;
        self.drop_queued_chunk_requests();
        if crate::LIMITS || crate::GATEWAY {
            self.queue_session_start(now);
        }
        if self.fw.is_downloading() {
            let mut out = Vec::new();
            self.fw.resume(&mut out);
            self.apply_firmware(out);
        }
    }

    /// The link dropped. Unacknowledged QoS 1 messages go back to the head of the queue.
    pub fn handle_disconnected(&mut self) {
        self.connected = false;
        self.subscribe_due = false;
        self.limits_hold = None;
        self.limits_deadline = None;
        self.paced_until = None;
        self.refusals.on_disconnected();
        self.requeue_inflight();
        self.fw.pause();
    }

    /// The broker acknowledged message `id` (QoS 1), or the host wrote it to the network
    /// (QoS 0). Returns whether it was awaiting that.
    pub fn handle_puback(&mut self, id: MessageId) -> bool {
        self.handle_puback_with(id, |_| {})
    }

    /// [`handle_puback`](Device::handle_puback) for the packet sent under `id`, calling `done`
    /// with every message it carried, in order: `id` alone, or each message of a merged
    /// gateway upload ([`poll_transmit_merged`](Device::poll_transmit_merged)), all finished
    /// by its one PUBACK.
    pub fn handle_puback_with(&mut self, id: MessageId, mut done: impl FnMut(MessageId)) -> bool {
        // Acks arrive in order almost always, so the match is nearly always at the front.
        let Some(pos) = self.inflight.iter().position(|p| p.id == id) else {
            return false;
        };
        let n = (self.inflight[pos].carries.max(1) as usize).min(self.inflight.len() - pos);
        for p in self.inflight.drain(pos..pos + n) {
            self.refusals.on_acked(&p);
            if p.qos == QoS::AtLeastOnce {
                self.qos1_unacked -= 1;
            }
            done(p.id);
        }
        true
    }

    /// Time passed: requests past their deadline end with a timeout event, and a firmware
    /// chunk past its deadline ends the download FAILED.
    pub fn handle_timeout(&mut self, now: Millis) {
        if crate::LIMITS {
            self.limits_timeout(now);
            // Set again by the next poll_transmit if the head still has to wait; a stale one
            // would make the host wake at once, over and over.
            if self.paced_until.is_some_and(|t| t <= now) {
                self.paced_until = None;
            }
        }
        if crate::GATEWAY {
            self.gw.handle_timeout(now);
        }
        if self.fw.deadline().is_some_and(|t| t <= now) {
            let mut out = Vec::new();
            self.fw.handle_timeout(now, &mut out);
            self.apply_firmware(out);
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                let p = self.pending.swap_remove(i);
                let result = Err(TimedOut {
                    after_ms: p.timeout,
                });
                self.events.push_back(match p.kind {
                    PendingKind::Attributes => Event::AttributeResponse { id: p.id, result },
                    PendingKind::Rpc => Event::RpcResponse { id: p.id, result },
                });
            } else {
                i += 1;
            }
        }
    }

    fn take_pending(&mut self, kind: PendingKind, id: u32) -> bool {
        match self
            .pending
            .iter()
            .position(|p| p.kind == kind && p.id.0 == id)
        {
            Some(pos) => {
                self.pending.swap_remove(pos);
                true
            }
            None => false,
        }
    }

    pub(crate) fn drop_msg(&mut self, topic: &str, reason: PeerError) {
        self.events.push_back(Event::Dropped {
            topic: topic.to_string(),
            reason,
        });
    }

    /// An incoming PUBLISH. Every outcome is an event; bad data becomes [`Event::Dropped`].
    pub fn handle_publish(&mut self, now: Millis, topic: &str, payload: &[u8]) {
        if self.echoes.take(now, topic, payload) {
            return self.drop_msg(topic, PeerError::Echo);
        }
        if self.cfg.mode != Mode::Provisioning
            && (topic.starts_with(topics::FW_RESPONSE_PREFIX) || topic == topics::FW_ERROR)
        {
            return self.handle_firmware_publish(topic, payload);
        }
        if crate::GATEWAY
            && self.cfg.mode == Mode::Gateway
            && topic.starts_with(topics::GATEWAY_PREFIX)
        {
            if let Err(reason) = self.gw.classify(topic, payload) {
                self.drop_msg(topic, reason);
            }
            return;
        }
        if crate::LIMITS
            && self.limits_deadline.is_some()
            && topics::id_after(topic, topics::RPC_RESPONSE_PREFIX) == Some(Ok(0))
        {
            return self.handle_limits_response(topic, payload);
        }
        let event = match self.classify(topic, payload) {
            Ok(ev) => ev,
            Err(reason) => Event::Dropped {
                topic: topic.to_string(),
                reason,
            },
        };
        self.events.push_back(event);
    }

    fn classify(&mut self, topic: &str, payload: &[u8]) -> Result<Event, PeerError> {
        let json = payload::parse;
        let object = payload::parse_object;
        if topic == topics::ATTRIBUTES {
            let data = object(payload)?;
            self.firmware_offer(&data, true);
            let subscriptions = self.matching_subscriptions(&data);
            return Ok(Event::AttributeUpdate {
                data,
                subscriptions,
            });
        }
        if let Some(id) = topics::id_after(topic, topics::ATTRIBUTES_RESPONSE_PREFIX) {
            let id = id.map_err(|()| PeerError::BadId)?;
            let result = Value::Object(object(payload)?);
            if !self.take_pending(PendingKind::Attributes, id) {
                return Err(PeerError::UnknownRequest(id));
            }
            if let Some(Value::Object(shared)) = result.get("shared") {
                let shared = shared.clone();
                self.firmware_offer(&shared, false);
            }
            return Ok(Event::AttributeResponse {
                id: RequestId(id),
                result: Ok(result),
            });
        }
        if let Some(id) = topics::id_after(topic, topics::RPC_REQUEST_PREFIX) {
            id.map_err(|()| PeerError::BadId)?;
            let body = Value::Object(object(payload)?);
            let id = topic[topics::RPC_REQUEST_PREFIX.len()..].to_string();
            return Ok(Event::RpcRequest { id, body });
        }
        if let Some(id) = topics::id_after(topic, topics::RPC_RESPONSE_PREFIX) {
            let id = id.map_err(|()| PeerError::BadId)?;
            let result = json(payload)?;
            if !self.take_pending(PendingKind::Rpc, id) {
                return Err(PeerError::UnknownRequest(id));
            }
            return Ok(Event::RpcResponse {
                id: RequestId(id),
                result: Ok(result),
            });
        }
        if topic == topics::PROVISION_RESPONSE {
            return provision::parse_response(payload).map(Event::ProvisionResponse);
        }
        Err(PeerError::UnknownTopic)
    }

    fn matching_subscriptions(&self, data: &Map<String, Value>) -> Vec<SubscriptionId> {
        // `*` first, then per key in the update's order (plain loops: see gateway.rs).
        let mut out = Vec::new();
        for want in core::iter::once("*").chain(data.keys().map(String::as_str)) {
            for (id, k) in &self.subscriptions {
                if k == want {
                    out.push(*id);
                }
            }
        }
        out
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next thing to send, while connected: first the subscriptions after a CONNACK, then
    /// queued publishes in order (the firmware filters are subscribed just before the
    /// connection's first chunk request). A publish stays held until [`handle_puback`] names it (for
    /// QoS 0, once the host wrote it), and is sent again after a reconnect until then.
    ///
    /// [`handle_puback`]: Device::handle_puback
    pub fn poll_transmit(&mut self, now: Millis) -> Option<Transmit> {
        self.transmit(now, false)
    }

    /// [`poll_transmit`](Device::poll_transmit) for a host whose in-flight window was full
    /// and has reopened (back-pressure): a queued gateway upload may leave merged with the
    /// uploads queued behind it on the same topic into one PUBLISH (`{"A":[..],"B":[..]}`,
    /// thingsboard-gateway.md A.6/A.7), each message keeping its id (see [`crate::gateway`]).
    /// A host calls plain `poll_transmit` otherwise, so light traffic goes out one PUBLISH
    /// per message, as queued.
    pub fn poll_transmit_merged(&mut self, now: Millis) -> Option<Transmit> {
        self.transmit(now, crate::GATEWAY)
    }

    fn transmit(&mut self, now: Millis, merge: bool) -> Option<Transmit> {
        if !self.connected {
            return None;
        }
        if self.subscribe_due {
            self.subscribe_due = false;
            let filters: &'static [&'static str] = match self.cfg.mode {
                Mode::Device => &topics::DEVICE_SUBSCRIPTIONS,
                Mode::Provisioning => &topics::PROVISION_SUBSCRIPTIONS,
                Mode::Gateway => &topics::GATEWAY_ALL_SUBSCRIPTIONS,
            };
            return Some(Transmit::Subscribe {
                filters,
                qos: self.cfg.qos,
            });
        }
        let head = self.queued.front()?;
        let (head_id, cost) = (head.id, limits::cost_of(&head.topic, head.data_points));
        let chunk_request = head.topic.starts_with(topics::FW_REQUEST_PREFIX);
        if crate::LIMITS && !self.may_send(now, head_id, &cost) {
            return None;
        }
        if chunk_request && !self.fw_subscribed {
            // Before this connection's first chunk request; the broker handles the SUBSCRIBE
            // before the request, so the answer cannot arrive unrouted.
            self.fw_subscribed = true;
            return Some(Transmit::Subscribe {
                filters: &topics::FIRMWARE_SUBSCRIPTIONS,
                qos: self.cfg.qos,
            });
        }
        let mut p = self.queued.pop_front()?;
        let mut cost = cost;
        let mut merged = 0;
        if crate::GATEWAY && merge {
            merged = self.merge_backlog(now, &mut p, &mut cost);
        }
        if crate::LIMITS && self.cfg.pace {
            self.pacer.take(now, &cost);
        }
        if chunk_request {
            // The chunk timer runs from when the request leaves, not from when it was queued.
            self.fw.request_sent(now);
        }
        if self.cfg.mode != Mode::Provisioning {
            let expires = now.saturating_add(self.cfg.echo_window_ms);
            self.echoes.remember(&p, expires);
        }
        if merged > 0 {
            // `merge_backlog` moved the messages to `inflight` already.
            return Some(Transmit::Publish(p));
        }
        self.inflight.push_back(p.clone());
        Some(Transmit::Publish(p))
    }

    /// Whether [`poll_event`](Device::poll_event) has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || !self.gw.events.is_empty()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline of a pending request or firmware chunk, if any: call
    /// [`handle_timeout`](Device::handle_timeout) once it has passed.
    ///
    /// It also tells when a message held back by pacing (or by the wait for the server's
    /// limits) may go: call [`handle_timeout`](Device::handle_timeout) and then
    /// [`poll_transmit`](Device::poll_transmit) again.
    pub fn poll_timeout(&self) -> Option<Millis> {
        // Design: pairwise, and only the deadlines the features built in can have, rather than
        // an array of all six through flatten().min(): less code on a microcontroller.
        fn earliest(a: Option<Millis>, b: Option<Millis>) -> Option<Millis> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        let requests = self.pending.iter().map(|p| p.deadline).min();
        let mut t = earliest(requests, self.fw.deadline());
        if crate::GATEWAY {
            t = earliest(t, self.gw.deadline());
        }
        if crate::LIMITS {
            t = earliest(t, self.limits_hold);
            t = earliest(t, self.limits_deadline);
            t = earliest(t, self.paced_until);
        }
        t
    }

    /// The next firmware download report for the host (see [`crate::firmware`]): drain it
    /// after every `handle_*` call, like [`poll_event`](Device::poll_event).
    pub fn poll_firmware_event(&mut self) -> Option<FirmwareEvent> {
        self.fw.poll_event()
    }
}
