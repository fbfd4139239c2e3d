//! The durable queue (host extra `queue_dir=PATH`): every QoS 1 message `send_*` accepts is
//! stored in `PATH/queue.sqlite3` before the call returns and deleted once its PUBACK arrived.
//! A new process with the same folder and client id sends what is left, in order.
//!
//! Design: SQLite through rusqlite with its `bundled` library, the crate the dev server's store
//! already uses (no new dependency; a well-kept, fuzzed storage engine instead of our own log
//! format with its own recovery code). The database is in WAL mode with `synchronous=NORMAL`:
//! each accepted message is one autocommit INSERT, i.e. one append to the WAL without fsync,
//! which is in the operating system's cache before `send_*` returns and so survives `kill -9`
//! of the process (a power cut can lose the last ones: that would take an fsync per message).
//! Deletions are batched: the IO task hands each wake-up's acknowledged ids to one writer
//! thread for the process, which deletes them in one transaction (a group commit), so the
//! IO threads never touch the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use rusqlite::{params, Connection};
use tb_core::{Device, MessageId, QoS};

const LOG: &str = "thingsboard_sdk::queue";

/// One client's durable queue.
pub struct Queue {
    conn: Mutex<Connection>,
    client: String,
    path: PathBuf,
    /// Batches handed to the writer and not yet committed (see [`Queue::sync`]).
    unwritten: Mutex<usize>,
    written: Condvar,
}

fn open_conn(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             client TEXT NOT NULL,
             id INTEGER NOT NULL,
             part INTEGER NOT NULL,
             topic TEXT NOT NULL,
             payload BLOB NOT NULL,
             PRIMARY KEY (client, id, part)
         ) WITHOUT ROWID;",
    )?;
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
        let path = dir.join("queue.sqlite3");
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("queue_dir {}: {what}: {e}", dir.display())
        };
        if !dir.is_dir() {
            return Err(format!(
                "queue_dir {} is not an existing folder",
                dir.display()
            ));
        }
        let mut conn = open_conn(&path).map_err(|e| fail("cannot open the queue", &e))?;
        let mut stored: Vec<(i64, String, Vec<Vec<u8>>)> = Vec::new();
        {
            let mut stmt = conn
                .prepare(
                    "SELECT id, topic, payload FROM messages WHERE client = ?1 ORDER BY id, part",
                )
                .map_err(|e| fail("cannot read the queue", &e))?;
            let rows = stmt
                .query_map(params![client], |r| {
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
            tx.execute("DELETE FROM messages WHERE client = ?1", params![client])
                .map_err(|e| fail("cannot write the queue", &e))?;
            for (_, topic, parts) in stored {
                let id = core.restore(topic.clone(), parts.clone(), QoS::AtLeastOnce);
                for (i, payload) in parts.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO messages (client, id, part, topic, payload)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![client, id.0 as i64, i as i64, topic, payload],
                    )
                    .map_err(|e| fail("cannot write the queue", &e))?;
                }
            }
            tx.commit()
                .map_err(|e| fail("cannot write the queue", &e))?;
        }
        Ok((
            Arc::new(Queue {
                conn: Mutex::new(conn),
                client: client.to_string(),
                path,
                unwritten: Mutex::new(0),
                written: Condvar::new(),
            }),
            restored,
        ))
    }

    /// Stores the queued QoS 1 parts of message `id` (call right after the command accepted
    /// it, before anything is pumped). QoS 0 messages are not stored.
    pub fn store(&self, core: &Device, id: MessageId) -> Result<(), String> {
        let conn = self.conn.lock();
        let mut stmt = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO messages (client, id, part, topic, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(|e| self.failed(&e))?;
        for (i, p) in core
            .queued_parts(id)
            .filter(|p| p.qos == QoS::AtLeastOnce)
            .enumerate()
        {
            stmt.execute(params![
                self.client,
                id.0 as i64,
                i as i64,
                p.topic.as_ref(),
                p.payload
            ])
            .map_err(|e| self.failed(&e))?;
        }
        Ok(())
    }

    fn failed(&self, e: &rusqlite::Error) -> String {
        format!(
            "cannot store the message in the durable queue {}: {e}; it was not sent",
            self.path.display()
        )
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

    fn delete(&self, ids: &[MessageId]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("DELETE FROM messages WHERE client = ?1 AND id = ?2")?;
            for id in ids {
                stmt.execute(params![self.client, id.0 as i64])?;
            }
        }
        tx.commit()
    }

    /// Deletes acknowledged ids now, on the calling thread (tests, shutdown).
    #[cfg(test)]
    fn delete_now(&self, ids: &[MessageId]) {
        let _ = self.delete(ids);
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
            q.store(&a, id).unwrap();
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
    fn a_missing_folder_is_a_clear_error() {
        let mut a = Device::new(Config::default());
        let err = Queue::open(Path::new("/nonexistent/queue"), "dev", &mut a)
            .err()
            .unwrap();
        assert!(err.contains("not an existing folder"), "{err}");
    }
}
