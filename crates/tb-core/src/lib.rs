//! # tb-core: the ThingsBoard device protocol, sans-IO
//!
//! This crate holds every ThingsBoard rule a device needs (topic names, payload shapes and
//! validation, request-id counters, pending requests with deadlines, attribute
//! subscriptions, classification of incoming publishes, and the list of unacknowledged QoS 1
//! publishes to resend after a reconnect) and nothing else: no network code, no clock, no
//! threads, no randomness. It is `no_std` with `alloc`, so the same code runs in a CPython
//! extension and in microcontroller firmware.
//!
//! The host owns the MQTT client. It passes time in as [`Millis`] (any monotonic origin), feeds
//! what the network delivers into `handle_*` methods, and drains `poll_*` methods:
//!
//! ```
//! use tb_core::{Config, Device, Transmit};
//! use serde_json::json;
//!
//! let mut dev = Device::new(Config::default());
//! dev.send_telemetry(&json!({"temperature": 25.5})).unwrap();
//! dev.handle_connected(); // after CONNACK
//! let mut sent = Vec::new();
//! while let Some(tx) = dev.poll_transmit(0) {
//!     sent.push(tx);
//! }
//! assert!(matches!(&sent[0], Transmit::Subscribe { .. }));
//! match &sent[1] {
//!     Transmit::Publish(p) => {
//!         assert_eq!(p.topic, "v1/devices/me/telemetry");
//!         assert_eq!(p.payload, br#"{"temperature":25.5}"#);
//!         dev.handle_puback(p.id); // when the broker acknowledges it
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! The protocol reference is `spec/thingsboard-mqtt.md`; comments cite its sections.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

extern crate alloc;

mod device;
mod error;
pub mod firmware;
pub mod gateway;
pub mod limits;
mod merge;
mod ota;
mod pacing;
pub mod payload;
pub mod provision;
mod queue;
pub mod refusal;
mod split;
pub mod topics;

pub use device::{Config, Device, Event, Mode, Publish, TimedOut, Transmit, LIMITS_TIMEOUT_MS};
pub use error::{CapacityError, Error, PeerError, UsageError};
pub use firmware::{
    Checksum, ChecksumAlgorithm, Digest, FirmwareConfig, FirmwareEvent, UnknownAlgorithm,
};
pub use gateway::GatewayEvent;
pub use limits::{RateLimit, SessionLimits};
pub use provision::ProvisionOutcome;
pub use refusal::Refused;
pub use serde_json;

// ---- ids and time: below every module, so any of them may use these --------------------

/// Milliseconds on a monotonic clock the host chooses; only differences matter.
pub type Millis = u64;

/// MQTT quality of service. ThingsBoard grants at most 1 (spec 2.3), so there is no QoS 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QoS {
    /// Fire and forget.
    AtMostOnce = 0,
    /// Acknowledged with PUBACK; resent until then.
    AtLeastOnce = 1,
}

impl QoS {
    /// Converts a user-supplied number, refusing anything but 0 and 1.
    pub fn from_int(n: i64) -> Result<QoS, UsageError> {
        match n {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            other => Err(UsageError::BadQos(other)),
        }
    }
}

/// Id of an attribute request or a client-side RPC (each counts from 1 per device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u32);

/// Id of an attribute subscription (counts from 1 per device).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u32);

/// Id of one outgoing publish, unique per device; the host reports its PUBACK with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// Whether the `gateway` feature is on (a `const`, so code behind it compiles away without).
pub(crate) const GATEWAY: bool = cfg!(feature = "gateway");
/// Whether the `limits` feature is on.
pub(crate) const LIMITS: bool = cfg!(feature = "limits");
