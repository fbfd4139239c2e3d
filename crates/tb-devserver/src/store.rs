//! The in-memory store: devices, credentials, attributes, telemetry, RPC and claim records,
//! connection events. One `parking_lot::Mutex` guards it; sessions hold it only briefly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc::UnboundedSender;

use crate::codec::MqttVersion;
use crate::firmware::ChecksumAlgorithm;
use crate::value::TbValue;

/// Milliseconds since the Unix epoch (ThingsBoard timestamps).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Device credentials. spec: thingsboard-mqtt.md, 3.1-3.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// CONNECT username = token; password ignored.
    AccessToken(String),
    /// MQTT basic credentials: at least one of client id / username; a password needs a
    /// username.
    MqttBasic {
        /// Client id to match, if any.
        client_id: Option<String>,
        /// Username to match, if any.
        username: Option<String>,
        /// Password to check, if any.
        password: Option<String>,
    },
    /// An X.509 certificate body (stored for provisioning answers; TLS is not served).
    X509(String),
}

impl Credentials {
    /// ThingsBoard's name: `ACCESS_TOKEN`, `MQTT_BASIC` or `X509_CERTIFICATE`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Credentials::AccessToken(_) => "ACCESS_TOKEN",
            Credentials::MqttBasic { .. } => "MQTT_BASIC",
            Credentials::X509(_) => "X509_CERTIFICATE",
        }
    }
}

/// A device to register with [`DevServerHandle::add_device`](crate::DevServerHandle::add_device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Unique device name.
    pub name: String,
    /// How it authenticates.
    pub credentials: Credentials,
    /// Gateway devices may use `v1/gateway/*` and get `gatewayRateLimits`.
    pub gateway: bool,
    /// Provisioning profile key the device belongs to (for the pre-provisioned strategy).
    pub profile: Option<String>,
}

impl DeviceSpec {
    /// A device authenticating with an access token.
    pub fn access_token(name: impl Into<String>, token: impl Into<String>) -> Self {
        DeviceSpec {
            name: name.into(),
            credentials: Credentials::AccessToken(token.into()),
            gateway: false,
            profile: None,
        }
    }

    /// A device with MQTT basic credentials.
    pub fn mqtt_basic(
        name: impl Into<String>,
        client_id: Option<String>,
        username: Option<String>,
        password: Option<String>,
    ) -> Self {
        DeviceSpec {
            name: name.into(),
            credentials: Credentials::MqttBasic {
                client_id,
                username,
                password,
            },
            gateway: false,
            profile: None,
        }
    }

    /// Marks the device as a gateway.
    pub fn gateway(mut self, gateway: bool) -> Self {
        self.gateway = gateway;
        self
    }

    /// Puts the device in the provisioning profile `key`.
    pub fn profile(mut self, key: impl Into<String>) -> Self {
        self.profile = Some(key.into());
        self
    }
}

/// Provisioning strategy of a profile. spec: 10.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionStrategy {
    /// Create the device unless its name exists.
    AllowCreateNewDevices,
    /// The device must already exist in the profile and not be provisioned yet.
    CheckPreProvisionedDevices,
}

/// A device profile with provisioning enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionProfile {
    /// `provisionDeviceKey`.
    pub key: String,
    /// `provisionDeviceSecret`.
    pub secret: String,
    /// What a valid request may do.
    pub strategy: ProvisionStrategy,
}

/// One stored telemetry value.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryPoint {
    /// Unix milliseconds (device `ts` or server receive time).
    pub ts: i64,
    /// Key.
    pub key: String,
    /// Typed value.
    pub value: TbValue,
}

/// A claim request (`v1/devices/me/claim`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// When it arrived (Unix ms).
    pub ts: i64,
    /// `secretKey` (default `""`).
    pub secret_key: String,
    /// `durationMs` (missing or <= 0: the configured default).
    pub duration_ms: i64,
}

/// A device created or handed out by provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedDevice {
    /// When (Unix ms).
    pub ts: i64,
    /// Device name.
    pub name: String,
    /// Profile key used.
    pub profile_key: String,
    /// Credentials returned to the device.
    pub credentials: Credentials,
    /// Whether it was marked as a gateway.
    pub gateway: bool,
}

/// A firmware package to assign to a device with
/// [`DevServerHandle::set_firmware`](crate::DevServerHandle::set_firmware): its image is
/// served over `v2/fw/request/...` and its `fw_*` shared attributes are set. spec: 11.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwarePackage {
    /// `fw_title` (not empty).
    pub title: String,
    /// `fw_version` (not empty).
    pub version: String,
    /// The image; its length is `fw_size`.
    pub data: Bytes,
    /// `fw_checksum_algorithm` (default SHA256).
    pub checksum_algorithm: ChecksumAlgorithm,
    /// `fw_checksum` as an uploader typed it (stored as given, even if wrong); `None`: the
    /// server computes it with `checksum_algorithm`, as ThingsBoard does.
    pub checksum: Option<String>,
    /// `fw_tag`; `None` deletes it.
    pub tag: Option<String>,
}

impl FirmwarePackage {
    /// A package with a SHA256 checksum computed by the server and no tag.
    pub fn new(
        title: impl Into<String>,
        version: impl Into<String>,
        data: impl Into<Bytes>,
    ) -> FirmwarePackage {
        FirmwarePackage {
            title: title.into(),
            version: version.into(),
            data: data.into(),
            checksum_algorithm: ChecksumAlgorithm::default(),
            checksum: None,
            tag: None,
        }
    }

    /// The same package with `algorithm` for its checksum.
    pub fn with_algorithm(mut self, algorithm: ChecksumAlgorithm) -> FirmwarePackage {
        self.checksum_algorithm = algorithm;
        self
    }
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEventKind {
    /// CONNACK 0 for a device.
    Connected,
    /// CONNACK 0 for a provisioning-only session.
    ProvisionSession,
    /// CONNACK with a refusal code (then closed).
    Refused,
    /// Closed without CONNACK (bad protocol, malformed CONNECT).
    Rejected,
    /// An accepted session ended.
    Disconnected,
}

/// A connection event, with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    /// Unix ms.
    pub ts: i64,
    /// Server-assigned connection number.
    pub conn_id: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// Kind.
    pub kind: ConnectionEventKind,
    /// Device name, when authenticated.
    pub device: Option<String>,
    /// CONNECT client id (empty if unknown).
    pub client_id: String,
    /// MQTT version, when the CONNECT was decoded.
    pub version: Option<MqttVersion>,
    /// CONNACK code sent (for Connected/Refused).
    pub return_code: Option<u8>,
    /// Why (e.g. `unknown access token`, `client DISCONNECT`, `session taken over`).
    pub reason: String,
}

/// Life cycle of a server-side RPC (ThingsBoard's `RpcStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcStatus {
    /// Waiting for the device to subscribe to `v1/devices/me/rpc/request/+`.
    Queued,
    /// Published to the device.
    Sent,
    /// The device PUBACKed the QoS 1 request (or it went out at QoS 0).
    Delivered,
    /// The device replied.
    Successful,
    /// No PUBACK within the delivery timeout (spec 7.4).
    Timeout,
    /// Expired before a reply.
    Expired,
}

/// A server-side RPC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRecord {
    /// Per-device id from 0.
    pub id: u32,
    /// Method.
    pub method: String,
    /// Params as compact JSON.
    pub params: String,
    /// One-way RPCs take no reply.
    pub oneway: bool,
    /// Status.
    pub status: RpcStatus,
    /// Reply payload text.
    pub reply: Option<String>,
}

/// A client-side RPC request from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRpcRecord {
    /// Unix ms.
    pub ts: i64,
    /// Request id from the topic.
    pub id: i32,
    /// Method.
    pub method: String,
    /// Params as compact JSON (`null` if absent).
    pub params: String,
    /// The reply sent, once sent.
    pub reply: Option<String>,
}

/// How a server-side RPC ended, as seen by [`RpcCall::wait`](crate::RpcCall::wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcOutcome {
    /// The device's reply payload, as text.
    Reply(String),
    /// The RPC expired without a reply.
    Expired,
}

pub(crate) struct RpcSlot {
    pub(crate) outcome: Mutex<Option<RpcOutcome>>,
    pub(crate) cv: Condvar,
}

impl RpcSlot {
    pub(crate) fn set(&self, outcome: RpcOutcome) {
        let mut g = self.outcome.lock();
        if g.is_none() {
            *g = Some(outcome);
        }
        self.cv.notify_all();
    }
}

pub(crate) struct RpcEntry {
    pub(crate) record: RpcRecord,
    pub(crate) expires_at: Instant,
    pub(crate) slot: Arc<RpcSlot>,
}

/// Commands from the handle (other threads) to a session task.
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

pub(crate) struct SessionLink {
    pub(crate) conn_id: u64,
    pub(crate) tx: UnboundedSender<SessionCmd>,
    pub(crate) attr_sub: bool,
    pub(crate) rpc_sub: bool,
}

pub(crate) struct Device {
    pub(crate) name: String,
    pub(crate) credentials: Credentials,
    pub(crate) gateway: bool,
    pub(crate) profile: Option<String>,
    pub(crate) provisioned: bool,
    pub(crate) client_attrs: BTreeMap<String, TbValue>,
    pub(crate) shared_attrs: BTreeMap<String, TbValue>,
    pub(crate) telemetry: VecDeque<TelemetryPoint>,
    pub(crate) latest: BTreeMap<String, TelemetryPoint>,
    pub(crate) claims: Vec<Claim>,
    pub(crate) rpc_seq: u32,
    pub(crate) rpcs: BTreeMap<u32, RpcEntry>,
    pub(crate) client_rpcs: VecDeque<ClientRpcRecord>,
    /// The image of the assigned firmware package (spec 11).
    pub(crate) firmware: Option<Bytes>,
    pub(crate) session: Option<SessionLink>,
}

impl Device {
    pub(crate) fn new(spec: DeviceSpec) -> Self {
        Device {
            name: spec.name,
            credentials: spec.credentials,
            gateway: spec.gateway,
            profile: spec.profile,
            provisioned: false,
            client_attrs: BTreeMap::new(),
            shared_attrs: BTreeMap::new(),
            telemetry: VecDeque::new(),
            latest: BTreeMap::new(),
            claims: Vec::new(),
            rpc_seq: 0,
            rpcs: BTreeMap::new(),
            client_rpcs: VecDeque::new(),
            firmware: None,
            session: None,
        }
    }

    /// Marks RPCs past their expiry (lazily, whenever the device is looked at).
    pub(crate) fn expire_rpcs(&mut self, now: Instant) {
        for entry in self.rpcs.values_mut() {
            let open = matches!(
                entry.record.status,
                RpcStatus::Queued | RpcStatus::Sent | RpcStatus::Delivered | RpcStatus::Timeout
            );
            if open && now >= entry.expires_at {
                entry.record.status = RpcStatus::Expired;
                entry.slot.set(RpcOutcome::Expired);
            }
        }
    }
}

/// Outcome of CONNECT authentication.
pub(crate) enum Auth {
    Device { name: String },
    Refused(crate::codec::ConnCode, String),
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) devices: HashMap<String, Device>,
    /// Access token → device name.
    pub(crate) tokens: HashMap<String, String>,
    pub(crate) profiles: HashMap<String, ProvisionProfile>,
    pub(crate) provisioned: Vec<ProvisionedDevice>,
    pub(crate) events: VecDeque<ConnectionEvent>,
    pub(crate) client_rpc_replies: HashMap<String, String>,
    pub(crate) generation: u64,
}

/// Bound on kept connection events (oldest dropped).
pub(crate) const MAX_EVENTS: usize = 100_000;
/// Bound on kept client RPC records per device.
pub(crate) const MAX_CLIENT_RPCS: usize = 1_000;

impl Store {
    pub(crate) fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    pub(crate) fn push_event(&mut self, event: ConnectionEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
        self.bump();
    }

    /// Whether `creds` collide with credentials already registered.
    pub(crate) fn credentials_taken(&self, creds: &Credentials) -> bool {
        match creds {
            Credentials::AccessToken(t) => self.tokens.contains_key(t),
            Credentials::MqttBasic {
                client_id,
                username,
                ..
            } => self.devices.values().any(|d| {
                matches!(&d.credentials, Credentials::MqttBasic { client_id: c, username: u, .. }
                    if c == client_id && u == username)
            }),
            Credentials::X509(cert) => self
                .devices
                .values()
                .any(|d| matches!(&d.credentials, Credentials::X509(c) if c == cert)),
        }
    }

    pub(crate) fn insert_device(&mut self, spec: DeviceSpec) {
        if let Credentials::AccessToken(t) = &spec.credentials {
            self.tokens.insert(t.clone(), spec.name.clone());
        }
        self.devices.insert(spec.name.clone(), Device::new(spec));
        self.bump();
    }

    /// spec 3.2: client-id-only match when the username is empty; otherwise (client id,
    /// username) with password check, then access token, then username-only basic.
    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        username: &str,
        password: Option<&str>,
    ) -> Auth {
        use crate::codec::ConnCode;
        let pw_ok = |expected: &Option<String>| match expected.as_deref() {
            None | Some("") => true,
            Some(e) => password == Some(e),
        };
        let basic = |want_cid: Option<&str>, want_user: Option<&str>| {
            self.devices.values().find(|d| {
                matches!(&d.credentials, Credentials::MqttBasic { client_id, username, .. }
                    if client_id.as_deref().filter(|s| !s.is_empty()) == want_cid
                    && username.as_deref().filter(|s| !s.is_empty()) == want_user)
            })
        };
        if username.is_empty() {
            if !client_id.is_empty() {
                if let Some(d) = basic(Some(client_id), None) {
                    return Auth::Device {
                        name: d.name.clone(),
                    };
                }
            }
            return if password.is_some() {
                Auth::Refused(ConnCode::BadCredentials, "password without username".into())
            } else if client_id.is_empty() {
                Auth::Refused(ConnCode::NotAuthorized, "no credentials".into())
            } else {
                Auth::Refused(
                    ConnCode::IdentifierRejected,
                    format!("unknown client id {client_id:?}"),
                )
            };
        }
        if !client_id.is_empty() {
            if let Some(d) = basic(Some(client_id), Some(username)) {
                if let Credentials::MqttBasic { password: p, .. } = &d.credentials {
                    if pw_ok(p) {
                        return Auth::Device {
                            name: d.name.clone(),
                        };
                    }
                }
                return Auth::Refused(ConnCode::BadCredentials, "wrong password".into());
            }
        }
        if let Some(name) = self.tokens.get(username) {
            return Auth::Device { name: name.clone() };
        }
        if let Some(d) = basic(None, Some(username)) {
            if let Credentials::MqttBasic { password: p, .. } = &d.credentials {
                if pw_ok(p) {
                    return Auth::Device {
                        name: d.name.clone(),
                    };
                }
            }
            return Auth::Refused(ConnCode::BadCredentials, "wrong password".into());
        }
        Auth::Refused(
            ConnCode::BadCredentials,
            format!("unknown access token {username:?}"),
        )
    }
}
