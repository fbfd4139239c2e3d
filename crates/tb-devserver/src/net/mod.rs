//! The network layer, the top of the dev server: listeners that accept connections and tasks
//! that move bytes between a socket and the protocol layer below (the MQTT session, the REST
//! API). They own no protocol rule.

pub(crate) mod http;
pub(crate) mod mqtt;
#[cfg(feature = "tls")]
pub(crate) mod tls;
