//! The Gateway MQTT API: a device in [`Mode::Gateway`] relays for sub-devices on
//! `v1/gateway/*` (spec: thingsboard-gateway.md, Part A; the reference client's behaviour in
//! Part B).
//!
//! A gateway is also an ordinary device: every device command works for its own traffic. The
//! `gw_*` commands below queue sub-device messages in the same queue, with the same delivery
//! guarantees (QoS 1 kept until PUBACK, resent after a reconnect), the same splitting of big
//! uploads and the same pacing (against the `gatewayRateLimits` windows). Server messages on
//! gateway topics come out of [`Device::poll_gateway_event`]; bad ones as
//! [`Event::Dropped`](crate::Event::Dropped) from [`Device::poll_event`].
//!
//! After every CONNACK the gateway subscribes to the device topics and to the three gateway
//! topics, and announces again every sub-device it connected (so that the server opens their
//! sessions and RPCs and attribute pushes for them flow again).
//!
//! [`Mode::Gateway`]: crate::Mode::Gateway

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::device::{Device, MessageId, Millis, QoS, RequestId, SubscriptionId, TimedOut};
use crate::error::{Error, PeerError, UsageError};
use crate::payload::{self, Object};
use crate::split::Shape;
use crate::topics;

/// Something the server sent a gateway about one of its sub-devices.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    /// A shared-attribute change (`{"device", "data"}` on `v1/gateway/attributes`).
    AttributeUpdate {
        /// The sub-device.
        device: String,
        /// The changed keys (or `{"deleted": [...]}`), as they arrived.
        data: Map<String, Value>,
        /// Subscriptions to notify, in the reference's order: all devices (`*`), then this
        /// device's all-keys subscriptions, then per key in the order the keys arrived.
        subscriptions: Vec<SubscriptionId>,
    },
    /// The answer to [`Device::gw_request_attributes`], or its timeout.
    AttributeResponse {
        /// The request.
        id: RequestId,
        /// The sub-device it asked about.
        device: String,
        /// The whole response (`{"id", "device", "value"}` or `"values"`, or neither when
        /// nothing was found).
        result: Result<Value, TimedOut>,
    },
    /// A server-side RPC to a sub-device (`{"device", "data": {"id", "method", "params"}}`).
    RpcRequest {
        /// The sub-device.
        device: String,
        /// The request object (`{"id", "method", "params"}`), as it arrived.
        data: Map<String, Value>,
    },
    /// The server reports a problem with a sub-device (MQTT 5 only, A.10): `reason` 150 means
    /// its rate limit was hit.
    DeviceDisconnected {
        /// The sub-device.
        device: String,
        /// The reason code, when the message had one.
        reason: Option<i64>,
    },
}

#[derive(Debug)]
struct Pending {
    id: RequestId,
    device: String,
    deadline: Millis,
    timeout: Millis,
}

/// Gateway state inside a [`Device`].
#[derive(Debug, Default)]
pub(crate) struct Gateway {
    /// Sub-devices connected with `gw_connect_device` and not disconnected: (name, type), in
    /// connect order, announced again after every reconnect.
    pub(crate) devices: Vec<(String, String)>,
    next_sub: u32,
    /// (id, device or `*`, key or `*`).
    subscriptions: Vec<(SubscriptionId, String, String)>,
    pending: Vec<Pending>,
    pub(crate) events: VecDeque<GatewayEvent>,
}

impl Gateway {
    pub(crate) fn deadline(&self) -> Option<Millis> {
        self.pending.iter().map(|p| p.deadline).min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Millis) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                let p = self.pending.swap_remove(i);
                self.events.push_back(GatewayEvent::AttributeResponse {
                    id: p.id,
                    device: p.device,
                    result: Err(TimedOut {
                        after_ms: p.timeout,
                    }),
                });
            } else {
                i += 1;
            }
        }
    }

    fn matching(&self, device: &str, data: &Map<String, Value>) -> Vec<SubscriptionId> {
        // Design: plain loops rather than filter/map/collect chains: the same ids in the same
        // order, in less flash on a microcontroller.
        let mut out = Vec::new();
        for (id, d, _) in &self.subscriptions {
            if d == "*" {
                out.push(*id);
            }
        }
        for want in core::iter::once("*").chain(data.keys().map(String::as_str)) {
            for (id, d, k) in &self.subscriptions {
                if d == device && k == want {
                    out.push(*id);
                }
            }
        }
        out
    }

    /// Classifies a publish on a `v1/gateway/` topic.
    pub(crate) fn classify(&mut self, topic: &str, payload: &[u8]) -> Result<(), PeerError> {
        let msg = payload::parse_object(payload)?;
        let device = match msg.get("device") {
            Some(Value::String(d)) => d.clone(),
            _ => return Err(PeerError::BadField("device")),
        };
        let data_object = |msg: &Map<String, Value>| match msg.get("data") {
            Some(Value::Object(d)) => Ok(d.clone()),
            _ => Err(PeerError::BadField("data")),
        };
        let event = match topic {
            topics::GATEWAY_ATTRIBUTES => {
                let data = data_object(&msg)?;
                let subscriptions = self.matching(&device, &data);
                GatewayEvent::AttributeUpdate {
                    device,
                    data,
                    subscriptions,
                }
            }
            topics::GATEWAY_RPC => GatewayEvent::RpcRequest {
                device,
                data: data_object(&msg)?,
            },
            topics::GATEWAY_ATTRIBUTES_RESPONSE => {
                let id = msg
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or(PeerError::BadField("id"))?;
                let pos = self
                    .pending
                    .iter()
                    .position(|p| p.id.0 == id)
                    .ok_or(PeerError::UnknownRequest(id))?;
                self.pending.swap_remove(pos);
                GatewayEvent::AttributeResponse {
                    id: RequestId(id),
                    device,
                    result: Ok(Value::Object(msg)),
                }
            }
            topics::GATEWAY_DISCONNECT => GatewayEvent::DeviceDisconnected {
                device,
                reason: msg.get("reason").and_then(Value::as_i64),
            },
            _ => return Err(PeerError::UnknownTopic),
        };
        self.events.push_back(event);
        Ok(())
    }
}

/// Refuses a sub-device name the server would close the connection on (A.4: empty).
fn check_name(device: &str) -> Result<(), UsageError> {
    if device.is_empty() {
        return Err(UsageError::Invalid(
            "device_name must be a non-empty str (ThingsBoard closes a gateway connection on an \
             empty name)"
                .into(),
        ));
    }
    Ok(())
}

/// `{"device": name, "type": type}` (A.4).
pub(crate) fn connect_payload(device: &str, device_type: &str) -> Vec<u8> {
    Object::new()
        .str("device", device)
        .str("type", device_type)
        .finish()
}

impl Device {
    /// What every sub-device command checks first: a gateway session, then a name the server
    /// accepts.
    fn gateway_command(&self, device: &str) -> Result<(), UsageError> {
        if !crate::GATEWAY {
            return Err(UsageError::Invalid(
                "gateway commands need tb-core's `gateway` feature".into(),
            ));
        }
        if !self.is_gateway() {
            return Err(UsageError::Invalid(
                "gateway commands need a gateway session (Mode::Gateway)".into(),
            ));
        }
        check_name(device)
    }

    /// Connects a sub-device (`v1/gateway/connect`, A.4): the server creates it on first use
    /// with this type (`"default"` if empty) and opens its session. It is announced again after
    /// every reconnect until [`gw_disconnect_device`](Device::gw_disconnect_device).
    pub fn gw_connect_device(
        &mut self,
        device: &str,
        device_type: &str,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        let ty = if device_type.is_empty() {
            "default"
        } else {
            device_type
        };
        let id = self.enqueue(
            topics::GATEWAY_CONNECT.into(),
            connect_payload(device, ty),
            qos,
        )?;
        match self.gw.devices.iter_mut().find(|(n, _)| n == device) {
            Some(entry) => entry.1 = ty.into(),
            None => self.gw.devices.push((device.into(), ty.into())),
        }
        Ok(id)
    }

    /// Disconnects a sub-device (`v1/gateway/disconnect`, A.5); it is no longer announced
    /// after a reconnect.
    pub fn gw_disconnect_device(&mut self, device: &str, qos: QoS) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        let body = Object::new().str("device", device).finish();
        let id = self.enqueue(topics::GATEWAY_DISCONNECT.into(), body, qos)?;
        self.gw.devices.retain(|(n, _)| n != device);
        Ok(id)
    }

    /// Names of the sub-devices connected and not disconnected, in connect order.
    pub fn gw_devices(&self) -> impl Iterator<Item = &str> {
        self.gw.devices.iter().map(|(n, _)| n.as_str())
    }

    /// Queues sub-device telemetry (`v1/gateway/telemetry`, A.6): `data` as for
    /// [`send_telemetry`](Device::send_telemetry); a single object is sent as a one-item list,
    /// as the reference does. Split into several messages when too big (one id for all).
    pub fn gw_send_telemetry(
        &mut self,
        device: &str,
        data: &Value,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        payload::check_telemetry(data)?;
        self.enqueue_upload(
            topics::GATEWAY_TELEMETRY,
            Shape::GatewayTelemetry(device),
            data,
            qos,
            "telemetry",
        )
    }

    /// Queues sub-device client attributes (`v1/gateway/attributes`, A.7).
    pub fn gw_send_attributes(
        &mut self,
        device: &str,
        data: &Value,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        payload::check_attributes(data)?;
        self.enqueue_upload(
            topics::GATEWAY_ATTRIBUTES,
            Shape::GatewayAttributes(device),
            data,
            qos,
            "attributes",
        )
    }

    /// Queues an attribute request for a sub-device (A.8):
    /// `{"keys": [...], "device", "client": bool, "id"}`, the reference's shape; ids come from
    /// the same counter as [`request_attributes`](Device::request_attributes). The answer (or
    /// the timeout) comes as [`GatewayEvent::AttributeResponse`].
    pub fn gw_request_attributes(
        &mut self,
        now: Millis,
        device: &str,
        keys: &[&str],
        client: bool,
        timeout_ms: Millis,
    ) -> Result<RequestId, Error> {
        self.gateway_command(device)?;
        let id = RequestId(self.next_attr_request.wrapping_add(1));
        let keys: Vec<Value> = keys.iter().map(|k| Value::String((*k).into())).collect();
        let body = Object::new()
            .value("keys", &Value::Array(keys))
            .str("device", device)
            .value("client", &Value::Bool(client))
            .value("id", &Value::from(id.0))
            .finish();
        let qos = self.config().qos;
        self.enqueue(topics::GATEWAY_ATTRIBUTES_REQUEST.into(), body, qos)?;
        self.next_attr_request = id.0;
        self.gw.pending.push(Pending {
            id,
            device: device.into(),
            deadline: now.saturating_add(timeout_ms),
            timeout: timeout_ms,
        });
        Ok(id)
    }

    /// Queues the reply to a sub-device RPC (A.9): `{"device", "id", "data"}`.
    pub fn gw_send_rpc_reply(
        &mut self,
        device: &str,
        id: i64,
        response: &Value,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        let body = Object::new()
            .str("device", device)
            .value("id", &Value::from(id))
            .value("data", response)
            .finish();
        self.enqueue(topics::GATEWAY_RPC.into(), body, qos)
    }

    /// Queues a claiming request for a sub-device (A.10):
    /// `{device: {"secretKey", "durationMs"}}`, each field only when given.
    pub fn gw_claim(
        &mut self,
        device: &str,
        secret_key: Option<&str>,
        duration_ms: Option<u64>,
        qos: QoS,
    ) -> Result<MessageId, Error> {
        self.gateway_command(device)?;
        let inner = payload::claim(secret_key, duration_ms);
        let body = Object::new().raw(device, &inner).finish();
        self.enqueue(topics::GATEWAY_CLAIM.into(), body, qos)
    }

    /// Adds a subscription to shared-attribute pushes of `device` (`"*"`: every sub-device)
    /// for `key` (`"*"`: every key). No MQTT traffic: the server pushes every change of an
    /// open sub-device.
    pub fn gw_subscribe_to_attribute(&mut self, device: &str, key: &str) -> SubscriptionId {
        self.gw.next_sub = self.gw.next_sub.wrapping_add(1);
        let id = SubscriptionId(self.gw.next_sub);
        self.gw
            .subscriptions
            .push((id, device.to_string(), key.to_string()));
        id
    }

    /// Removes a gateway subscription; returns whether it existed.
    pub fn gw_unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let before = self.gw.subscriptions.len();
        self.gw.subscriptions.retain(|(s, _, _)| *s != id);
        before != self.gw.subscriptions.len()
    }

    /// Forgets a pending sub-device attribute request without an event.
    pub fn gw_cancel_request(&mut self, id: RequestId) {
        self.gw.pending.retain(|p| p.id != id);
    }

    /// The next gateway event for the application: drain it after every `handle_*` call,
    /// like [`poll_event`](Device::poll_event).
    pub fn poll_gateway_event(&mut self) -> Option<GatewayEvent> {
        self.gw.events.pop_front()
    }
}

/// Reads the device name of a gateway upload payload (`{device: ...}`), for re-splitting.
pub(crate) fn upload_device(v: &Value) -> Option<String> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    m.keys().next().cloned()
}
