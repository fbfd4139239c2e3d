//! The durable queue (host extra `queue_dir=PATH`): every QoS 1 message `send_*` accepts is
//! stored in `PATH` before the call returns and deleted once its PUBACK arrived. A new process
//! with the same folder and client id sends what is left, in order.
//!
//! Design: SQLite through rusqlite with its `bundled` library, the crate the dev server's store
//! already uses (a well-kept, fuzzed storage engine instead of our own log format with its own
//! recovery code). One database file per client, `PATH/tbq-<client>-<sha256 prefix>.sqlite3`,
//! so clients never share a file and each file can be held by one connection. What each
//! setting gives:
//! - `locking_mode=EXCLUSIVE`: the connection takes the file's lock once, at open, and keeps it
//!   until the client lets go of it (`disconnect()`, drop). A transaction then needs no file
//!   lock calls (a shared WAL needs six `fcntl` per INSERT) and WAL keeps its index in memory
//!   (no `-shm` file). A second process opening the same client's queue gets a clear error
//!   ("in use by another process") instead of two writers interleaving.
//! - `journal_mode=WAL`, `synchronous=NORMAL`: each accepted message is one autocommit INSERT,
//!   i.e. one append to the WAL without fsync. It is in the operating system's cache before
//!   `send_*` returns and so survives `kill -9` of the process. A power cut can lose the last
//!   messages (that would take an fsync per message) but cannot corrupt the database: WAL
//!   checkpoints fsync the log before they copy it into the database file.
//! - `wal_autocheckpoint`: a checkpoint (two fsyncs) every [`CHECKPOINT_PAGES`] WAL pages
//!   instead of SQLite's 1000. The same few pages are rewritten by every INSERT and DELETE, so
//!   a longer log costs disk space (up to about 16 MiB a client), not checkpoint work.
//!
//! Deletions are batched: the IO task hands each wake-up's acknowledged ids to one writer
//! thread for the process, which deletes them in one transaction (a group commit) on the
//! client's connection, so the IO threads never touch the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use rusqlite::{params, Connection, ErrorCode};
use tb_core::{Device, MessageId, QoS};

const LOG: &str = "thingsboard_sdk::queue";

/// WAL pages between checkpoints (4 KiB each).
const CHECKPOINT_PAGES: u32 = 4000;

/// One client's durable queue.
pub struct Queue {
    /// The open connection; None once released (`disconnect()`), opened again when needed.
    conn: Mutex<Option<Connection>>,
    client: String,
    dir: PathBuf,
    path: PathBuf,
    /// Batches handed to the writer and not yet committed (see [`Queue::sync`]).
    unwritten: Mutex<usize>,
    written: Condvar,
}

/// The file of `client`'s queue in `dir`: a readable part of the id for people listing the
/// folder, and a hash of the whole id so any id (any length, any character) maps to one
/// valid file name.
fn file_name(client: &str) -> String {
    let readable: String = client
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, client.as_bytes());
    let hash: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("tbq-{readable}-{hash}.sqlite3")
}

/// Why opening failed: the file is held by another process, or something else (said).
enum OpenError {
    InUse,
    Failed(String),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => OpenError::InUse,
            _ => OpenError::Failed(e.to_string()),
        }
    }
}

fn open_conn(path: &Path, client: &str) -> Result<Connection, OpenError> {
    let conn = Connection::open(path)?;
    // Design: no busy wait. The lock is held for the life of a client, so waiting would only
    // delay the error; a killed process's lock goes with it.
    conn.busy_timeout(std::time::Duration::ZERO)?;
    // Before anything touches the file, so WAL never uses shared memory.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
    // Takes the exclusive lock now (kept: locking_mode), so a second process fails here.
    conn.execute_batch(
        "BEGIN EXCLUSIVE;
         CREATE TABLE IF NOT EXISTS messages (
             id INTEGER NOT NULL,
             part INTEGER NOT NULL,
             topic TEXT NOT NULL,
             payload BLOB NOT NULL,
             PRIMARY KEY (id, part)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS owner (client TEXT NOT NULL);
         COMMIT;",
    )?;
    let owner: Option<String> = conn
        .query_row("SELECT client FROM owner", [], |r| r.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    match owner {
        None => {
            conn.execute("INSERT INTO owner (client) VALUES (?1)", params![client])?;
        }
        Some(o) if o == client => {}
        Some(o) => {
            // Two ids with the same hash prefix: never mix their messages.
            return Err(OpenError::Failed(format!(
                "{} belongs to client {o:?}",
                path.display()
            )));
        }
    }
    Ok(conn)
}

impl Queue {
    /// Opens (or creates) the queue in `dir` for `client` and moves what an earlier process
    /// left into `core`, renumbered under the ids `core` gives them. Returns the queue and how
    /// many messages were restored.
    pub fn open(
        dir: &Path,
        client: &str,
        core: &mut Device,
    ) -> Result<(Arc<Queue>, usize), String> {
        if !dir.is_dir() {
            return Err(format!(
                "queue_dir {} is not an existing folder",
                dir.display()
            ));
        }
        let path = dir.join(file_name(client));
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("queue_dir {}: {what}: {e}", dir.display())
        };
        let mut conn = open_conn(&path, client).map_err(|e| open_failed(dir, client, e))?;
        let mut stored: Vec<(i64, String, Vec<Vec<u8>>)> = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT id, topic, payload FROM messages ORDER BY id, part")
                .map_err(|e| fail("cannot read the queue", &e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(|e| fail("cannot read the queue", &e))?;
            for row in rows {
                let (id, topic, payload) = row.map_err(|e| fail("cannot read the queue", &e))?;
                match stored.last_mut() {
                    Some((last, _, parts)) if *last == id => parts.push(payload),
                    _ => stored.push((id, topic, vec![payload])),
                }
            }
        }
        let restored = stored.len();
        if restored > 0 {
            // Renumber under this process's ids, in one transaction.
            let tx = conn
                .transaction()
                .map_err(|e| fail("cannot write the queue", &e))?;
            tx.execute("DELETE FROM messages", [])
                .map_err(|e| fail("cannot write the queue", &e))?;
            for (_, topic, parts) in stored {
                let id = core.restore(topic.clone(), parts.clone(), QoS::AtLeastOnce);
                for (i, payload) in parts.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO messages (id, part, topic, payload) VALUES (?1, ?2, ?3, ?4)",
                        params![id.0 as i64, i as i64, topic, payload],
                    )
                    .map_err(|e| fail("cannot write the queue", &e))?;
                }
            }
            tx.commit()
                .map_err(|e| fail("cannot write the queue", &e))?;
        }
        Ok((
            Arc::new(Queue {
                conn: Mutex::new(Some(conn)),
                client: client.to_string(),
                dir: dir.to_path_buf(),
                path,
                unwritten: Mutex::new(0),
                written: Condvar::new(),
            }),
            restored,
        ))
    }

    /// The open connection, opening the file again if it was released.
    fn connection<'a>(
        &self,
        slot: &'a mut Option<Connection>,
    ) -> Result<&'a mut Connection, String> {
        if slot.is_none() {
            let conn = open_conn(&self.path, &self.client)
                .map_err(|e| open_failed(&self.dir, &self.client, e))?;
            *slot = Some(conn);
        }
        slot.as_mut()
            .ok_or_else(|| "the durable queue is closed".to_string())
    }

    /// The queued QoS 1 parts of message `id` (topic, payload), copied so they can be
    /// stored after the state lock is let go. Empty for QoS 0 messages and other commands.
    pub fn parts(core: &Device, id: MessageId) -> Vec<(String, Vec<u8>)> {
        core.queued_parts(id)
            .filter(|p| p.qos == QoS::AtLeastOnce)
            .map(|p| (p.topic.to_string(), p.payload.clone()))
            .collect()
    }

    /// Stores the parts of message `id` (from [`Queue::parts`]); the caller keeps it from
    /// being sent until this returned.
    pub fn store(&self, id: MessageId, parts: &[(String, Vec<u8>)]) -> Result<(), String> {
        let mut slot = self.conn.lock();
        let conn = self.connection(&mut slot).map_err(|e| self.not_sent(&e))?;
        let mut stmt = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO messages (id, part, topic, payload)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(|e| self.not_sent(&e))?;
        for (i, (topic, payload)) in parts.iter().enumerate() {
            stmt.execute(params![id.0 as i64, i as i64, topic, payload])
                .map_err(|e| self.not_sent(&e))?;
        }
        Ok(())
    }

    fn not_sent(&self, e: &dyn std::fmt::Display) -> String {
        format!(
            "cannot store the message in the durable queue {}: {e}; it was not sent",
            self.path.display()
        )
    }

    /// The folder the queue lives in (`queue_dir`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the file so another client (this process or another) may open it; the next
    /// `store` opens it again. Call after [`Queue::sync`].
    pub fn release(&self) {
        *self.conn.lock() = None;
    }

    /// Hands acknowledged ids to the writer thread (deleted in one transaction per batch).
    pub fn acknowledge(self: &Arc<Self>, ids: Vec<MessageId>) {
        if ids.is_empty() {
            return;
        }
        if let Some(tx) = writer() {
            *self.unwritten.lock() += 1;
            if tx.lock().send((self.clone(), ids)).is_err() {
                self.batch_done();
            }
        }
    }

    fn batch_done(&self) {
        let mut n = self.unwritten.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.written.notify_all();
        }
    }

    /// Waits until every acknowledged id handed over so far is deleted, or `timeout` passed
    /// (`disconnect()`: a client made right after on the same folder must not resend them).
    pub fn sync(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut n = self.unwritten.lock();
        while *n > 0 {
            if self.written.wait_until(&mut n, deadline).timed_out() {
                return false;
            }
        }
        true
    }

    fn delete(&self, ids: &[MessageId]) -> Result<(), String> {
        let mut slot = self.conn.lock();
        // A batch that arrives after `release()` opens the file just for itself.
        let released = slot.is_none();
        let conn = self.connection(&mut slot)?;
        let result = (|| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
                for id in ids {
                    stmt.execute(params![id.0 as i64])?;
                }
            }
            tx.commit()
        })();
        if released {
            *slot = None;
        }
        result.map_err(|e| e.to_string())
    }

    /// Deletes acknowledged ids now, on the calling thread (tests, shutdown).
    #[cfg(test)]
    fn delete_now(&self, ids: &[MessageId]) {
        let _ = self.delete(ids);
    }
}

fn open_failed(dir: &Path, client: &str, e: OpenError) -> String {
    match e {
        OpenError::InUse => format!(
            "queue_dir {}: the queue of client {client:?} is in use by another process \
             (or another client in this one)",
            dir.display()
        ),
        OpenError::Failed(e) => format!("queue_dir {}: cannot open the queue: {e}", dir.display()),
    }
}

type Batch = (Arc<Queue>, Vec<MessageId>);

/// The process's queue writer: one thread, started with the first durable queue.
fn writer() -> Option<&'static Mutex<Sender<Batch>>> {
    static WRITER: OnceLock<Option<Mutex<Sender<Batch>>>> = OnceLock::new();
    WRITER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Batch>();
            std::thread::Builder::new()
                .name("tb-queue".into())
                .spawn(move || write_loop(rx))
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

fn write_loop(rx: Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        // Everything that arrived meanwhile joins this commit, per queue.
        let mut batches: HashMap<*const Queue, (Arc<Queue>, Vec<MessageId>, usize)> =
            HashMap::new();
        let mut add = |(q, ids): Batch| {
            let entry = batches
                .entry(Arc::as_ptr(&q))
                .or_insert_with(|| (q.clone(), Vec::new(), 0));
            entry.1.extend(ids);
            entry.2 += 1;
        };
        add(first);
        while let Ok(more) = rx.try_recv() {
            add(more);
        }
        for (_, (q, ids, count)) in batches {
            let result = q.delete(&ids);
            for _ in 0..count {
                q.batch_done();
            }
            if let Err(e) = result {
                // The messages were delivered; left in the queue they would only be sent once
                // more by the next process (QoS 1 allows that).
                log::warn!(
                    target: LOG,
                    "cannot remove {} acknowledged message(s) from {}: {e}",
                    ids.len(),
                    q.path.display()
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tb_core::{Config, Transmit};

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tb-queue-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unacknowledged_messages_come_back_in_order_under_new_ids() {
        let d = dir();
        let mut a = Device::new(Config::default());
        let (q, restored) = Queue::open(&d, "dev", &mut a).unwrap();
        assert_eq!(restored, 0);
        let mut ids = Vec::new();
        for i in 0..3 {
            let id = a.send_telemetry(&serde_json::json!({ "i": i })).unwrap();
            q.store(id, &Queue::parts(&a, id)).unwrap();
            ids.push(id);
        }
        q.delete_now(&ids[..1]);
        drop(q);
        let mut b = Device::new(Config::default());
        b.send_telemetry(&serde_json::json!({"first": true}))
            .unwrap();
        let (_q, restored) = Queue::open(&d, "dev", &mut b).unwrap();
        assert_eq!(restored, 2);
        b.handle_connected();
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| b.poll_transmit(0))
            .filter_map(|t| match t {
                Transmit::Publish(p) => Some(p.payload),
                Transmit::Subscribe { .. } => None,
            })
            .collect();
        assert_eq!(
            sent,
            vec![
                br#"{"first":true}"#.to_vec(),
                br#"{"i":1}"#.to_vec(),
                br#"{"i":2}"#.to_vec()
            ]
        );
        // Another client id in the same folder sees nothing.
        let mut c = Device::new(Config::default());
        assert_eq!(Queue::open(&d, "other", &mut c).unwrap().1, 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_queue_in_use_is_a_clear_error_until_released() {
        let d = dir().join("in-use");
        std::fs::create_dir_all(&d).unwrap();
        let mut a = Device::new(Config::default());
        let (q, _) = Queue::open(&d, "dev", &mut a).unwrap();
        let id = a.send_telemetry(&serde_json::json!({"i": 1})).unwrap();
        q.store(id, &Queue::parts(&a, id)).unwrap();
        let mut b = Device::new(Config::default());
        let err = Queue::open(&d, "dev", &mut b).err().unwrap();
        assert!(err.contains("in use by another process"), "{err}");
        assert!(err.contains("\"dev\""), "{err}");
        q.release();
        let (_q, restored) = Queue::open(&d, "dev", &mut b).unwrap();
        assert_eq!(restored, 1);
        // The released queue opens again only when the other one lets go.
        let id = a.send_telemetry(&serde_json::json!({"i": 2})).unwrap();
        assert!(q
            .store(id, &Queue::parts(&a, id))
            .unwrap_err()
            .contains("in use"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_folder_is_a_clear_error() {
        let mut a = Device::new(Config::default());
        let err = Queue::open(Path::new("/nonexistent/queue"), "dev", &mut a)
            .err()
            .unwrap();
        assert!(err.contains("not an existing folder"), "{err}");
    }
}
