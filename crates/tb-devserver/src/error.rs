//! The one error type of the dev server's API.

use std::fmt;
use std::net::SocketAddr;

/// Errors of the dev server API (all the caller's fault or the OS's; peers never cause one).
#[derive(Debug)]
pub enum DevServerError {
    /// The listening socket could not be bound (e.g. port in use:
    /// `source.kind() == AddrInUse`).
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The runtime could not be created.
    Runtime(std::io::Error),
    /// A configuration value is invalid.
    Config(String),
    /// No device with that name.
    UnknownDevice(String),
    /// A device with that name exists.
    DuplicateDevice(String),
    /// The credentials are already used by another device, or are invalid.
    InvalidCredentials(String),
    /// A JSON argument is not a JSON value of the expected shape.
    InvalidJson(String),
    /// A firmware package is not valid (empty title or version).
    InvalidFirmware(String),
    /// The data folder ([`Config::data`](crate::Config::data)) cannot be used: what failed.
    Data(String),
    /// A server-side RPC got no reply before its timeout.
    RpcTimeout {
        /// Device name.
        device: String,
        /// RPC id.
        id: u32,
    },
}

impl fmt::Display for DevServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            DevServerError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            DevServerError::Config(m) => write!(f, "invalid configuration: {m}"),
            DevServerError::UnknownDevice(n) => write!(f, "no device named {n:?}"),
            DevServerError::DuplicateDevice(n) => write!(f, "a device named {n:?} exists"),
            DevServerError::InvalidCredentials(m) => write!(f, "invalid credentials: {m}"),
            DevServerError::InvalidJson(m) => write!(f, "invalid JSON: {m}"),
            DevServerError::InvalidFirmware(m) => write!(f, "invalid firmware: {m}"),
            DevServerError::Data(m) => f.write_str(m),
            DevServerError::RpcTimeout { device, id } => {
                write!(f, "RPC {id} to device {device:?} timed out")
            }
        }
    }
}

impl std::error::Error for DevServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DevServerError::Bind { source, .. } => Some(source),
            DevServerError::Runtime(e) => Some(e),
            _ => None,
        }
    }
}
