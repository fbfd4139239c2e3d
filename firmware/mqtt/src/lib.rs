//! # fw-mqtt: a small MQTT 3.1.1 client for the networked example firmware
//!
//! Two layers, both without I/O or clock, `no_std` with `alloc`:
//!
//! - [`codec`]: the packets a ThingsBoard device exchanges (CONNECT, CONNACK, PUBLISH at QoS
//!   0/1, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT), encoded into a `Vec<u8>`
//!   and decoded from a byte slice;
//! - [`Session`]: one connection's state (CONNACK wait, packet ids, keep alive, acknowledging
//!   incoming QoS 1), fed with bytes and time, drained of bytes and [`Event`]s.
//!
//! Design: the firmware's TCP stack (smoltcp) and tb-core already own the socket and the
//! resend list, so this crate owns neither. Why not a crate from crates.io: minimq and
//! rust-mqtt speak MQTT 5 only (the issue asks for 3.1.1, what ThingsBoard's reference
//! clients speak), minimq also owns its socket through embedded-nal and republishes on its own
//! (tb-core does that after each CONNACK), and rust-mqtt needs an async executor; mqttrs is a
//! 3.1.1 codec but unmaintained since 2021 and pulls in `bytes`. What a device needs from MQTT
//! 3.1.1 is about 300 lines; `fuzz/` fuzzes [`codec::decode`] and [`Session::handle_input`].
#![cfg_attr(not(test), no_std)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_docs)]

extern crate alloc;

pub mod codec;
mod session;

pub use session::{Config, Event, Lost, Session, UsageError};

/// Milliseconds on a monotonic clock the host chooses; only differences matter.
pub type Millis = u64;
