//! The process-wide IO runtime: a few threads, each running a current-thread tokio runtime.
//!
//! Design: every client's MQTT event loop is a task, never a thread, so 10,000 clients cost
//! 10,000 tasks. A current-thread runtime per shard avoids the cross-thread wake-ups of a
//! work-stealing runtime (measured at about 40 % more CPU per message for one busy client);
//! clients are spread over the shards round robin. `THINGSBOARD_SDK_IO_THREADS` overrides the
//! shard count (default: 2, or 1 on a single-core machine).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use tokio::runtime::{Builder, Handle};

struct Shards {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static SHARDS: OnceLock<Shards> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn shard_count() -> usize {
    if let Some(n) = std::env::var("THINGSBOARD_SDK_IO_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
    {
        return n;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cores.clamp(1, 2)
}

fn start() -> Shards {
    let mut handles = Vec::new();
    for i in 0..shard_count() {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("tb-io-{i}"))
            .spawn(move || {
                let rt = match Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!(target: "thingsboard_sdk::engine", "cannot start IO runtime: {e}");
                        return;
                    }
                };
                let _ = tx.send(rt.handle().clone());
                rt.block_on(std::future::pending::<()>());
            });
        if spawned.is_ok() {
            if let Ok(h) = rx.recv() {
                handles.push(h);
            }
        }
    }
    Shards {
        handles,
        next: AtomicUsize::new(0),
    }
}

/// Spawns an IO task on the next shard. Returns false if no IO thread could be started.
pub fn spawn<F>(fut: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    let shards = SHARDS.get_or_init(start);
    if shards.handles.is_empty() {
        return false;
    }
    let i = shards.next.fetch_add(1, Ordering::Relaxed) % shards.handles.len();
    shards.handles[i].spawn(fut);
    true
}

/// Milliseconds since the first call, on a monotonic clock: the `now` fed to tb-core.
pub fn now_ms() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u64
}

/// The `Instant` of a [`now_ms`] reading.
pub fn instant_at(ms: u64) -> Instant {
    let epoch = EPOCH.get_or_init(Instant::now);
    *epoch + std::time::Duration::from_millis(ms)
}
