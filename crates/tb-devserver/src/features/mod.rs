//! One module per ThingsBoard feature, shared by the MQTT session and the REST API: each
//! parses what a device or a user sends for that feature, applies it to the store and tells
//! the device (through its [`SessionLink`](crate::shared::SessionLink)) what it must hear.
//! They know nothing of sockets, MQTT packets or HTTP.

pub(crate) mod attributes;
pub(crate) mod claiming;
pub(crate) mod devices;
pub(crate) mod firmware;
pub(crate) mod gateway;
pub(crate) mod provisioning;
pub(crate) mod rpc;
pub(crate) mod telemetry;

use crate::value::PayloadError;

/// Why a device's upload was refused, in the two classes of spec 2.9 (they differ on the
/// wire: the MQTT session closes or PUBACKs with a reason code; REST answers 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// A validation failure (`JsonSyntaxException`, `IllegalStateException`): what was wrong.
    Invalid(String),
    /// Any other runtime exception: what was wrong.
    Unchecked(String),
}

impl Rejection {
    /// `what (message)`, of the class of `e`.
    pub(crate) fn payload(what: &str, e: &PayloadError) -> Rejection {
        let msg = format!("{what} ({})", e.message());
        match e {
            PayloadError::Validation(_) => Rejection::Invalid(msg),
            PayloadError::Unchecked(_) => Rejection::Unchecked(msg),
        }
    }
}
