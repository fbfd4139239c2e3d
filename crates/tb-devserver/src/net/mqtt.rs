//! The MQTT listener: one tokio task per connection moves bytes between the socket and its
//! [`Session`].
//!
//! Design: [`serve`] is generic over the stream, so an MQTTS listener hands it the TLS stream
//! of each accepted connection and shares everything else. Replies are appended to the
//! session's output and written once per wake-up, which keeps PUBACK-before-response ordering
//! by construction.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;
use tokio::sync::watch;

use crate::log::LOG_TARGET;
use crate::session::{ClientCert, Session};
use crate::shared::Shared;

/// Decrements the live-connection count when a connection task ends, however it ends.
pub(crate) struct LiveGuard(Arc<Shared>);

impl LiveGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> LiveGuard {
        shared.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(shared.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts plain-TCP MQTT connections until shutdown.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn_id = shared.conn_seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let guard = LiveGuard::new(&shared);
                    tokio::spawn(serve(shared.clone(), stream, peer, conn_id, shutdown.clone(), guard, None));
                }
                Err(e) => {
                    log::warn!(target: LOG_TARGET, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Bytes a connection reads at once while it sends little, and at most while it sends fast.
const MIN_READ: usize = 2048;
const MAX_READ: usize = 16 * 1024;

/// The next read size after a read of `n` bytes into `spare` free bytes. Design: a read that
/// filled the buffer means more is waiting, so the next one may take twice as much, up to
/// [`MAX_READ`]: a fast sender then costs one wake-up (one log batch, one write of its
/// PUBACKs, one lock of the Python log scope) per many packets, while the 10,000 quiet
/// connections of a fleet keep 2 KiB buffers. The cap stays well under a client's in-flight
/// window (256 telemetry messages of ~180 bytes are ~46 KiB), so PUBACKs keep flowing while
/// the client sends instead of arriving for its whole window at once.
fn next_read_size(current: usize, n: usize, spare: usize) -> usize {
    if n >= spare {
        (current * 2).min(MAX_READ)
    } else if n < MIN_READ {
        MIN_READ
    } else {
        current
    }
}

/// Serves one MQTT connection on `stream` (TCP, or TLS over TCP) until it closes;
/// `client_cert` is the certificate a TLS client presented.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    mut stream: S,
    peer: SocketAddr,
    conn_id: u64,
    mut shutdown: watch::Receiver<bool>,
    _guard: LiveGuard,
    client_cert: Option<ClientCert>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (tx, mut rx) = unbounded_channel();
    let mut s = Session::new(shared.clone(), conn_id, peer, tx);
    s.set_client_certificate(client_cert);
    let mut buf = BytesMut::new();
    let write_timeout = shared.config.inactivity_timeout;
    let sleep = tokio::time::sleep_until(s.deadline().into());
    tokio::pin!(sleep);
    if *shutdown.borrow() {
        return;
    }
    let mut read_size = MIN_READ;
    loop {
        if buf.capacity() - buf.len() < read_size / 4 {
            buf.reserve(read_size);
        }
        let spare = buf.capacity() - buf.len();
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => s.gone(if buf.is_empty() {
                    "connection closed by the client"
                } else {
                    "client vanished mid-packet"
                }),
                Ok(n) => {
                    read_size = next_read_size(read_size, n, spare);
                    s.handle_data(&mut buf, Instant::now());
                }
                Err(e) => s.gone(&format!("read error: {e}")),
            },
            Some(cmd) = rx.recv() => s.handle_cmd(cmd),
            _ = &mut sleep => s.handle_timeout(Instant::now()),
            _ = shutdown.changed() => s.close("server shutting down", 0x8b),
        }
        s.flush_logs();
        if let Some(seq) = shared.durability().and_then(|d| d.pending()) {
            // The durability point (store/mod.rs, `Durability`): nothing of this wake-up,
            // PUBACKs included, goes out before the changes made so far are committed.
            if let Some(d) = shared.durability() {
                d.wait(seq).await;
            }
        }
        let out = s.poll_transmit();
        if !out.is_empty() {
            let write = tokio::time::timeout(write_timeout, stream.write_all(out)).await;
            if !matches!(write, Ok(Ok(()))) {
                s.gone("write failed");
            }
            s.transmitted();
        }
        if s.is_closed() {
            break;
        }
        if buf.is_empty() && buf.capacity() > 2 * read_size.max(32 * 1024) {
            buf = BytesMut::new();
        }
        sleep.as_mut().reset(s.deadline().into());
    }
    let _ = stream.shutdown().await;
    s.finish();
    s.flush_logs();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_they_fill_the_buffer_and_shrink_when_quiet() {
        let mut size = MIN_READ;
        for _ in 0..10 {
            size = next_read_size(size, size, size);
        }
        assert_eq!(size, MAX_READ);
        assert_eq!(next_read_size(size, 8_000, size), size);
        assert_eq!(next_read_size(size, 300, size), MIN_READ);
    }
}
