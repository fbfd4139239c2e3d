//! Errors, split by blame (STYLE: minimq, h11).

use alloc::string::String;

/// Everything a tb-core command can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The caller passed something ThingsBoard would reject.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A bounded resource is full; nothing was queued.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
}

/// The caller's fault: a bad argument. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// QoS outside {0, 1}; ThingsBoard has no QoS 2 (spec 2.3).
    #[error("quality_of_service must be 0 or 1, got {0}")]
    BadQos(i64),
    /// A payload value that is refused (empty, too big, a field missing); the message says why.
    #[error("{0}")]
    Payload(String),
    /// A value of the wrong type (a list where a dict belongs); the message names both.
    #[error("{0}")]
    WrongType(String),
    /// An id that cannot appear in a topic.
    #[error("{0}")]
    BadId(String),
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

/// A bounded queue is full. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    /// The outgoing queue holds `limit` unacknowledged messages already.
    #[error(
        "outgoing queue is full: {limit} messages are waiting to be sent or acknowledged \
         (raise max_queued_messages, or flush() before sending more)"
    )]
    QueueFull {
        /// The configured bound.
        limit: usize,
    },
}

/// The peer's fault: something the server (or a stranger on the broker) sent that the device
/// cannot use. Never returned as an error: it is reported in [`crate::Event::Dropped`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The payload is not valid JSON (this includes invalid UTF-8).
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON of the wrong kind, e.g. an array where an object belongs.
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// A required field is missing or of the wrong type (gateway messages, A.7-A.10).
    #[error("field {0:?} is missing or of the wrong type")]
    BadField(&'static str),
    /// The id at the end of the topic is not a decimal 32-bit integer.
    #[error("request id in topic is not a decimal integer")]
    BadId,
    /// A response to a request that is not pending (never sent, answered, or timed out).
    #[error("no pending request with id {0}")]
    UnknownRequest(u32),
    /// A topic the device API does not use.
    #[error("unknown topic")]
    UnknownTopic,
    /// The broker echoed one of this device's own publishes back (mosquitto does this for
    /// filters the device subscribes to; ThingsBoard never does).
    #[error("echo of this device's own publish")]
    Echo,
    /// A firmware chunk that is not the one awaited: an old request id (from before a
    /// reconnect or a replaced download), a duplicate, or no download at all.
    #[error("firmware chunk {chunk} of request {request} was not awaited")]
    UnexpectedChunk {
        /// The request id from the topic.
        request: u32,
        /// The chunk index from the topic.
        chunk: u64,
    },
    /// A firmware error message while no download is in progress.
    #[error("firmware error while no download is in progress")]
    NoFirmwareDownload,
}
