//! Server configuration: ThingsBoard's defaults, rate-limit strings, the log scope.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::value::TypingOptions;

/// Rate limits as ThingsBoard writes them: `capacity:seconds` pairs joined by commas
/// (`"10:1,300:60"`), all enforced at once. `None` = unlimited (reported as JSON `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Every uplink message of a device.
    pub messages: Option<String>,
    /// Telemetry messages.
    pub telemetry_messages: Option<String>,
    /// Telemetry data points (key/value pairs).
    pub telemetry_data_points: Option<String>,
}

/// Server configuration. `Config::default()` is ThingsBoard's defaults on 127.0.0.1:0.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// Port (0 = any free port; see [`DevServer::local_addr`](crate::DevServer::local_addr)).
    pub port: u16,
    /// Largest accepted MQTT remaining length (`NETTY_MAX_PAYLOAD_SIZE`, 65536).
    pub max_payload_size: usize,
    /// Reported as `maxInflightMessages` by `getSessionLimits` (100).
    pub max_inflight_messages: u32,
    /// Close a connection with no packet for this long (10 min; spec 2.6).
    pub inactivity_timeout: Duration,
    /// Reply `{"error":"timeout"}` to an unanswered client-side RPC after this (60 s).
    pub client_rpc_timeout: Duration,
    /// Mark a QoS 1 server-side RPC `Timeout` without PUBACK after this (10 s).
    pub rpc_delivery_timeout: Duration,
    /// Close a provisioning session this long after the response (60 s).
    pub provision_close_delay: Duration,
    /// Default claim duration (`security.claim.duration`, 24 h).
    pub claim_duration_ms: i64,
    /// `transport.json.type_cast_enabled` (true).
    pub type_cast_enabled: bool,
    /// `transport.json.max_string_value_length` (0 = off).
    pub max_string_value_length: usize,
    /// Device profile option "send PUBACK on validation failure" (false).
    pub send_puback_on_validation_failure: bool,
    /// Enforced device rate limits (also reported by `getSessionLimits`).
    pub rate_limits: RateLimits,
    /// Reported as `gatewayRateLimits` to gateway devices.
    pub gateway_rate_limits: RateLimits,
    /// Telemetry points kept per device (oldest dropped first).
    pub max_telemetry_per_device: usize,
    /// Folder of the persistent store (a SQLite database, created if missing): devices,
    /// credentials, attributes, telemetry, RPC records, claims, provisioning profiles and
    /// firmware survive a restart. `None` (the default): memory only.
    pub data: Option<PathBuf>,
    /// MQTTS listener: PEM files of the server's certificate (chain) and private key; with
    /// both set, TLS is served on [`tls_port`](Self::tls_port) besides plain MQTT on
    /// [`port`](Self::port). Clients may authenticate with a certificate (X.509 credentials,
    /// spec 3.3) or as on the plain port.
    pub tls_cert: Option<PathBuf>,
    /// See [`tls_cert`](Self::tls_cert).
    pub tls_key: Option<PathBuf>,
    /// Port of the MQTTS listener (0 = any free port; ThingsBoard's is 8883).
    pub tls_port: u16,
    /// Worker threads of the runtime [`DevServer::start`](crate::DevServer::start) creates (1).
    pub worker_threads: usize,
    /// Runs around each batch of log records the server hands to the `log` crate (all the
    /// lines one connection produced in one wake-up), or `None` to hand them over bare.
    /// The Python binding attaches to the interpreter here, so that pyo3-log's records
    /// share one thread state instead of creating and destroying one per record.
    pub log_scope: Option<LogScope>,
    /// Port of the HTTP listener (REST API, web page, event stream) on `host`: `None` = no
    /// HTTP (the default here; the CLI uses 8080), `Some(0)` = any free port (see
    /// [`DevServer::http_addr`](crate::DevServer::http_addr)).
    pub http_port: Option<u16>,
    /// The tenant administrator of the REST API (ThingsBoard's demo default,
    /// `tenant@thingsboard.org` / `tenant`).
    pub admin: Login,
    /// Largest accepted HTTP request body for JSON endpoints (1 MiB).
    pub http_max_body: usize,
    /// Largest accepted OTA package upload (64 MiB).
    pub http_max_upload: usize,
}

/// A REST API user. Its `Debug` form hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// User name (an e-mail address on ThingsBoard).
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// See [`Config::log_scope`]: calls its argument at most once (not at all when the records
/// would be dropped anyway).
pub type LogScope = fn(&mut dyn FnMut());

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            max_payload_size: 65536,
            max_inflight_messages: 100,
            inactivity_timeout: Duration::from_secs(600),
            client_rpc_timeout: Duration::from_secs(60),
            rpc_delivery_timeout: Duration::from_secs(10),
            provision_close_delay: Duration::from_secs(60),
            claim_duration_ms: 86_400_000,
            type_cast_enabled: true,
            max_string_value_length: 0,
            send_puback_on_validation_failure: false,
            rate_limits: RateLimits::default(),
            gateway_rate_limits: RateLimits::default(),
            max_telemetry_per_device: 10_000,
            data: None,
            tls_cert: None,
            tls_key: None,
            tls_port: 0,
            worker_threads: 1,
            log_scope: None,
            http_port: None,
            admin: Login {
                username: "tenant@thingsboard.org".into(),
                password: "tenant".into(),
            },
            http_max_body: 1 << 20,
            http_max_upload: 64 << 20,
        }
    }
}

impl Config {
    pub(crate) fn typing(&self) -> TypingOptions {
        TypingOptions {
            type_cast: self.type_cast_enabled,
            max_string_len: self.max_string_value_length,
        }
    }
}
