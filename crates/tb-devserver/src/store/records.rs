//! The records the store keeps and the public API hands out: devices' credentials,
//! provisioning profiles, telemetry points, claims, connection events, RPC records, firmware
//! packages. Plain data, no behaviour beyond constructors.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::checksum::ChecksumAlgorithm;
use crate::codec::MqttVersion;
use crate::value::TbValue;

/// Milliseconds since the Unix epoch (ThingsBoard timestamps).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The body of a PEM certificate: armour lines and whitespace removed
/// (`DeviceCredentialsServiceImpl.formatCertData`); X509_CERTIFICATE credentials are compared
/// in this form.
pub(crate) fn x509_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.split_whitespace())
        .collect()
}

/// ThingsBoard's `credentialsId` of X.509 credentials: the SHA3-256 of the certificate's PEM
/// body (armour and line breaks removed), in lower-case hex. ThingsBoard stores that hash
/// (`EncryptionUtil.getSha3Hash`) and looks a presented certificate up by it.
pub(crate) fn x509_credentials_id(pem: &str) -> String {
    use sha3::Digest;
    let digest = sha3::Sha3_256::digest(x509_body(pem).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Device credentials. spec: thingsboard-mqtt.md, 3.1-3.3.
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
    /// An X.509 certificate, PEM with or without its armour: a client presenting it on the
    /// MQTTS listener is this device (spec 3.3).
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

/// An OTA package of the REST API (spec thingsboard-rest.md, 8): its record and, once
/// uploaded, its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtaPackage {
    pub(crate) id: uuid::Uuid,
    pub(crate) created_ms: i64,
    pub(crate) title: String,
    pub(crate) version: String,
    /// `FIRMWARE` or `SOFTWARE`.
    pub(crate) kind: String,
    pub(crate) tag: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) checksum_algorithm: Option<ChecksumAlgorithm>,
    pub(crate) checksum: Option<String>,
    pub(crate) data: Option<Bytes>,
    /// `additionalInfo` as compact JSON text (`null` when absent).
    pub(crate) additional_info: String,
}

/// What [`DevServerHandle::device_info`](crate::DevServerHandle::device_info) tells about a
/// device: the fields ThingsBoard shows on its device page and REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Its name.
    pub name: String,
    /// Its entity id.
    pub id: uuid::Uuid,
    /// Its type (profile name): `default` unless a gateway's connect named one on creation
    /// (thingsboard-gateway.md A.3, A.4).
    pub device_type: String,
    /// Whether it is a gateway.
    pub gateway: bool,
    /// Name of the gateway that last connected it (`additionalInfo.lastConnectedGateway`);
    /// `None` if none did or that gateway is deleted.
    pub last_connected_gateway: Option<String>,
    /// Name of the gateway that created it (the gateway -> device relation `Created`).
    pub created_by: Option<String>,
}
