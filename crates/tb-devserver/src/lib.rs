//! An embedded MQTT server that behaves as ThingsBoard's device transport does, so device
//! code can be run and tested on one machine without ThingsBoard.
//!
//! # Contract
//!
//! * Behaviour follows `spec/thingsboard-mqtt.md` section 17, items 1-45: CONNACK
//!   codes per 3.5, session-present = !clean-session, one session per device, packets
//!   pipelined behind CONNECT processed in order after the CONNACK, remaining length above
//!   [`Config::max_payload_size`] closes the connection, only the SUBSCRIBE filters of 2.11
//!   are granted (at most QoS 1; others get 0x80, 0x8F on MQTT 5), QoS 2 PUBLISH is answered
//!   with PUBACK, validation failures close MQTT 3.x sessions, `[]` telemetry is never
//!   acknowledged, unknown topics are acknowledged and dropped, `v1/gateway/*` from a
//!   non-gateway device is ignored, attribute requests, server- and client-side RPC,
//!   `getSessionLimits`, claiming and provisioning answer exactly as the spec lists.
//! * Firmware (items 41-44): [`DevServerHandle::set_firmware`] sets and pushes the `fw_*`
//!   shared attributes with a checksum computed for any [`ChecksumAlgorithm`]; chunks are
//!   served as ThingsBoard slices them, errors go to `v2/fw/error` before the close.
//! * MQTT 3.1.1 fully, 3.1 (`MQIsdp`/3) and 5 accepted (MQTT 5 gets reason codes in
//!   CONNACK, PUBACK, SUBACK, UNSUBACK and DISCONNECT; no properties are sent). The packet
//!   codec is rumqttc's `mqttbytes`.
//! * Everything is kept in memory: devices and credentials, provisioning profiles, client
//!   and shared attributes, timestamped telemetry typed as ThingsBoard types it
//!   ([`TbValue`]: lenient JSON, numeric strings cast to numbers), RPC and claim records,
//!   connection events, a firmware slot per device.
//! * With [`Config::http_port`], an HTTP listener serves the REST API subset of
//!   `spec/thingsboard-rest.md` in ThingsBoard's shapes (JWT login as [`Config::admin`],
//!   devices, time series, attributes by scope, one- and two-way RPC, OTA packages; errors
//!   with ThingsBoard's statuses and JSON), the web page's files, and a server-sent event
//!   stream that costs nothing while no one listens (docs/devserver-rest.md).
//! * With [`Config::data`] (cargo feature `sqlite`), the store is also kept in a SQLite
//!   database and loaded at the next start; a PUBACK or a REST write's answer goes out only
//!   once what it changed is committed. With [`Config::tls_cert`] and [`Config::tls_key`]
//!   (feature `tls`), an MQTTS listener authenticates X.509 devices by their certificate,
//!   refusing one outside its validity dates. Both features are on by default; without
//!   them those options are a configuration error (the fuzz targets build without them).
//! * One tokio task per connection, no thread per connection; a connection that misbehaves
//!   is closed or stalls alone, it never affects the others, and no input panics.
//! * [`DevServer`] owns the listener (and, with [`DevServer::start`], a small runtime);
//!   dropping it shuts everything down. [`DevServerHandle`] is `Clone + Send + Sync`; every
//!   method may be called from any thread, and blocking ones take a timeout.
//! * Human-readable log lines (one per connection, upload, RPC, provisioning) go to the
//!   `log` crate under target [`LOG_TARGET`] and to every [`LogStream`]; a connection's lines
//!   go out together once per wake-up, before the replies to the packets that caused them
//!   are written, inside [`Config::log_scope`] if set.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use tb_devserver::{Config, DevServer, DeviceSpec};
//!
//! let server = DevServer::start(Config::default())?;
//! server.add_device(DeviceSpec::access_token("Thermostat", "A1_TEST_TOKEN"))?;
//! println!("listening on {}", server.local_addr());
//! // ... a device connects with username A1_TEST_TOKEN and subscribes to RPC ...
//! let reply = server.send_rpc("Thermostat", "getTemp", "{}", Duration::from_secs(5))?;
//! println!("device says {reply}");
//! # Ok::<(), tb_devserver::DevServerError>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// Layers, top to bottom; each module imports only from those below it:
//   net (listeners) -> session (MQTT) and rest (HTTP) -> features (one per ThingsBoard feature)
//   -> shared (config, sessions, logs, events) -> store (the data)
//   -> leaves: codec, json, value, checksum, topics, log, error, config, ratelimit.
mod net;
mod server;

mod rest;
mod session;

mod features;
mod shared;
mod store;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "tls")]
mod certs;
mod checksum;
mod codec;
mod config;
mod error;
mod events;
mod json;
mod log;
mod ratelimit;
mod topics;
mod value;

#[cfg(feature = "tls")]
pub use certs::{write_self_signed, SelfSigned};
pub use checksum::{ChecksumAlgorithm, UnknownAlgorithm};
pub use codec::MqttVersion;
pub use config::{Config, LogScope, Login, RateLimits};
pub use error::DevServerError;
pub use features::rpc::{ClientRpcHandler, ClientRpcRequest, RpcCall};
pub use log::{LogStream, LOG_TARGET};
pub use server::{DevServer, DevServerHandle};
pub use store::{
    AttributeScope, Claim, ClientRpcRecord, ConnectionEvent, ConnectionEventKind, Credentials,
    DeviceInfo, DeviceSpec, FirmwarePackage, ProvisionProfile, ProvisionStrategy,
    ProvisionedDevice, RpcOutcome, RpcRecord, RpcStatus, TelemetryPoint,
};
pub use value::TbValue;
