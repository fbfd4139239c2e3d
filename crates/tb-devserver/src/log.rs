//! The human-readable log: lines to the `log` crate (inside the configured scope) and to
//! every [`LogStream`].

use std::borrow::Cow;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::LogScope;

/// Log target of every line the server logs through the `log` crate.
pub const LOG_TARGET: &str = "thingsboard_sdk.devserver";

/// Longest payload excerpt in a log line.
const LOG_EXCERPT: usize = 200;

/// The first [`LOG_EXCERPT`] characters of a payload, for a log line.
pub(crate) fn excerpt(payload: &[u8]) -> Cow<'_, str> {
    // Design: at most 4 bytes per character, so a payload this short needs no count and, as
    // UTF-8, no copy (one line per message is logged).
    let short = payload.len() <= LOG_EXCERPT;
    let text = crate::json::utf8_lossy(&payload[..payload.len().min(4 * LOG_EXCERPT + 4)]);
    if !short && text.chars().count() > LOG_EXCERPT {
        let mut cut: String = text.chars().take(LOG_EXCERPT).collect();
        cut.push_str("...");
        Cow::Owned(cut)
    } else {
        text
    }
}

/// Lines of the human-readable log, from [`DevServerHandle::log_stream`](crate::DevServerHandle::log_stream).
pub struct LogStream {
    rx: Receiver<String>,
}

impl LogStream {
    /// Next line, waiting up to `timeout`; `None` on timeout or after shutdown.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<String> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Next line if one is ready.
    pub fn try_recv(&self) -> Option<String> {
        self.rx.try_recv().ok()
    }
}

/// Capacity of each log stream; lines beyond it are dropped, never blocking the server.
const LOG_STREAM_CAPACITY: usize = 10_000;

pub(crate) struct LogHub {
    subscribers: Mutex<Vec<SyncSender<String>>>,
    scope: Option<LogScope>,
}

impl LogHub {
    pub(crate) fn new(scope: Option<LogScope>) -> Self {
        LogHub {
            subscribers: Mutex::default(),
            scope,
        }
    }

    /// A new stream of the lines emitted from now on (up to 10,000 buffered; more dropped).
    pub(crate) fn subscribe(&self) -> LogStream {
        let (tx, rx) = std::sync::mpsc::sync_channel(LOG_STREAM_CAPACITY);
        self.subscribers.lock().push(tx);
        LogStream { rx }
    }

    /// Ends every stream (their receivers then see the end).
    pub(crate) fn close_streams(&self) {
        self.subscribers.lock().clear();
    }

    pub(crate) fn emit(&self, line: String) {
        self.emit_all(std::slice::from_ref(&line));
    }

    /// Logs `lines` in order: to the `log` crate (inside [`Config::log_scope`](crate::Config::log_scope)), then to every
    /// stream. Design: one call per batch, because entering the scope can cost more than the
    /// record (pyo3-log takes the GIL, creating a Python thread state each time).
    pub(crate) fn emit_all(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut forward = || {
            for line in lines {
                log::info!(target: LOG_TARGET, "{line}");
            }
        };
        match self.scope {
            Some(scope) => scope(&mut forward),
            None => forward(),
        }
        let mut subs = self.subscribers.lock();
        if subs.is_empty() {
            return;
        }
        subs.retain(|tx| {
            lines.iter().all(|line| {
                !matches!(
                    tx.try_send(line.clone()),
                    Err(TrySendError::Disconnected(_))
                )
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_keep_200_characters_of_any_payload() {
        assert_eq!(excerpt(b"{\"t\":21.5}"), "{\"t\":21.5}");
        let ascii = "x".repeat(1000);
        assert_eq!(excerpt(ascii.as_bytes()), format!("{}...", &ascii[..200]));
        assert_eq!(excerpt(&ascii.as_bytes()[..200]), &ascii[..200]);
        // Two bytes per character: 300 bytes are 150 characters, kept whole.
        let accents = "é".repeat(150);
        assert_eq!(excerpt(accents.as_bytes()), accents);
        let accents = "é".repeat(250);
        assert_eq!(
            excerpt(accents.as_bytes()),
            format!("{}...", "é".repeat(200))
        );
        // Four bytes per character, longer than the cut before decoding.
        let wide = "𝄞".repeat(300);
        assert_eq!(excerpt(wide.as_bytes()), format!("{}...", "𝄞".repeat(200)));
        // Invalid UTF-8 is replaced, as before.
        assert_eq!(excerpt(b"a\xffb"), "a\u{fffd}b");
    }
}
