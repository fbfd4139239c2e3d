//! The persistent store: a SQLite database in the data folder ([`Config::data`]) that keeps
//! what the in-memory [`Store`] holds across restarts. [`open`] loads it into a `Store` and
//! returns the [`Journal`] that writes every later change back.
//!
//! Design: SQLite through `rusqlite` with its `bundled` feature (a well-kept crate that
//! compiles SQLite in, so no system library is needed). The journal never touches the disk:
//! [`Journal::record`] (called under the store lock) turns the change into an owned [`Op`]
//! and sends it to one writer thread of its own, never a tokio IO thread. The writer wakes on
//! the first change, lets more gather for [`BATCH_WINDOW`], then writes them all in one
//! transaction (group commit) and reports the last sequence number committed to
//! [`Durability`]. WAL mode with `synchronous=OFF`: a commit is in the WAL file (the OS's
//! page cache) when it returns, so it survives the process being killed (`kill -9`), not an
//! OS crash or a power cut; that is the durability point the MQTT session waits for before it
//! acknowledges (see [`Durability`]). Design: no fsync at all, not even at checkpoints
//! (`NORMAL` syncs there): on a busy disk one fsync held every PUBACK of the server for
//! seconds (benches/devserver_scale.py --data), and a dev server's data is not worth that.
//!
//! Telemetry: every point is kept on disk (`telemetry`, in arrival order) and the latest value
//! per key in `latest` (ThingsBoard's `ts_kv_latest`); at start each device gets back its last
//! [`Config::max_telemetry_per_device`] points. RPC records keep their expiry as Unix ms, so an
//! RPC queued before a restart is still delivered (or expires) after it.
//!
//! [`Config::data`]: crate::Config::data
//! [`Config::max_telemetry_per_device`]: crate::Config::max_telemetry_per_device

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::*;
use crate::checksum::ChecksumAlgorithm;
use crate::log::LOG_TARGET;

/// File name of the database inside the data folder.
pub(crate) const DB_FILE: &str = "devserver.sqlite3";
/// How long the writer lets changes gather after the first one before it commits them.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Most changes written in one transaction.
const MAX_BATCH: usize = 50_000;
/// Schema version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;
/// Version 1 -> 2: a device's type and its gateways (thingsboard-gateway.md A.3); rows of a
/// version-1 store get type `default` and no gateway, which is what they were.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE device ADD COLUMN dev_type TEXT NOT NULL DEFAULT 'default';
ALTER TABLE device ADD COLUMN last_gateway TEXT;
ALTER TABLE device ADD COLUMN created_by TEXT;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device(
    dev INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL,
    created_ms INTEGER NOT NULL, cred_type TEXT NOT NULL, token TEXT, client_id TEXT,
    username TEXT, password TEXT, cert TEXT, gateway INTEGER NOT NULL, profile TEXT,
    provisioned INTEGER NOT NULL, last_activity_ms INTEGER NOT NULL DEFAULT 0,
    dev_type TEXT NOT NULL DEFAULT 'default', last_gateway TEXT, created_by TEXT);
CREATE TABLE IF NOT EXISTS attribute(
    dev INTEGER NOT NULL, scope INTEGER NOT NULL, key TEXT NOT NULL, type INTEGER NOT NULL,
    value, ts INTEGER NOT NULL, PRIMARY KEY(dev, scope, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS telemetry(
    dev INTEGER NOT NULL, ts INTEGER NOT NULL, key TEXT NOT NULL, type INTEGER NOT NULL, value);
CREATE INDEX IF NOT EXISTS telemetry_dev ON telemetry(dev);
CREATE TABLE IF NOT EXISTS latest(
    dev INTEGER NOT NULL, key TEXT NOT NULL, ts INTEGER NOT NULL, type INTEGER NOT NULL, value,
    PRIMARY KEY(dev, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rpc(
    dev INTEGER NOT NULL, id INTEGER NOT NULL, method TEXT NOT NULL, params TEXT NOT NULL,
    oneway INTEGER NOT NULL, status TEXT NOT NULL, reply TEXT, expires_ms INTEGER NOT NULL,
    PRIMARY KEY(dev, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_rpc(
    dev INTEGER NOT NULL, ts INTEGER NOT NULL, id INTEGER NOT NULL, method TEXT NOT NULL,
    params TEXT NOT NULL, reply TEXT, UNIQUE(dev, ts, id));
CREATE TABLE IF NOT EXISTS claim(
    dev INTEGER NOT NULL, ts INTEGER NOT NULL, secret_key TEXT NOT NULL,
    duration_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS firmware(dev INTEGER PRIMARY KEY, package TEXT, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blob(sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ota(
    id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, title TEXT NOT NULL,
    version TEXT NOT NULL, kind TEXT NOT NULL, tag TEXT, url TEXT, file_name TEXT,
    content_type TEXT, checksum_algorithm TEXT, checksum TEXT, sha256 TEXT,
    additional_info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profile(
    key TEXT PRIMARY KEY, secret TEXT NOT NULL, strategy TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS provisioned(
    ts INTEGER NOT NULL, name TEXT NOT NULL, profile_key TEXT NOT NULL, cred_type TEXT NOT NULL,
    token TEXT, client_id TEXT, username TEXT, password TEXT, cert TEXT,
    gateway INTEGER NOT NULL);
";

/// Opens (or creates) the database in folder `dir`, loads it into `store` (keeping the last
/// `telemetry_cap` points per device) and attaches the journal that writes later changes.
///
/// # Errors
/// A message naming the folder and what failed (cannot create it, the database is in use by
/// another dev server, or it is not a dev server database).
pub(crate) fn open(
    dir: &Path,
    store: &mut Store,
    telemetry_cap: usize,
) -> Result<Persistence, String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        format!("data folder {}: {what}: {e}", dir.display())
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create it", &e))?;
    let path = dir.join(DB_FILE);
    let conn = Connection::open(&path).map_err(|e| fail("cannot open the database", &e))?;
    setup(&conn).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            fail("in use by another dev server", &e)
        }
        e => fail("not a dev server database", &e),
    })?;
    let ids = load(&conn, store, telemetry_cap.max(1)).map_err(|e| fail("cannot load it", &e))?;
    let durability = Durability::new();
    let (tx, rx) = channel();
    let d = durability.clone();
    let writer = std::thread::Builder::new()
        .name("tb-devserver-store".into())
        .spawn(move || Writer { conn, ids }.run(rx, &d))
        .map_err(|e| fail("cannot start the writer thread", &e))?;
    store.journal = Some(Box::new(SqliteJournal {
        tx,
        durability: durability.clone(),
    }));
    Ok(Persistence::new(durability, path, writer))
}

fn setup(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_millis(200))?;
    // Design: EXCLUSIVE locking keeps a second dev server off the same folder (it fails to
    // start instead of interleaving writes); the OS drops the lock when a process dies.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "schema version {version} is newer than this dev server's ({SCHEMA_VERSION})"
        )));
    }
    // Design: a version-1 file already has the device table, which `CREATE TABLE IF NOT
    // EXISTS` leaves as it is; its new columns come from the migration, in the same
    // transaction as the version bump.
    let migrate = if version == 1 { MIGRATE_1_TO_2 } else { "" };
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE; {SCHEMA} {migrate} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    ))
}

// ---- values and credentials as columns -------------------------------------------------------

fn put_value(v: &TbValue) -> (i64, Value) {
    match v {
        TbValue::Bool(b) => (0, Value::Integer(i64::from(*b))),
        TbValue::Long(n) => (1, Value::Integer(*n)),
        TbValue::Double(d) => (2, Value::Real(*d)),
        TbValue::String(s) => (3, Value::Text(s.clone())),
        TbValue::Json(s) => (4, Value::Text(s.clone())),
    }
}

fn get_value(kind: i64, v: ValueRef<'_>) -> TbValue {
    let text = || String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned();
    match kind {
        0 => TbValue::Bool(v.as_i64().unwrap_or(0) != 0),
        1 => TbValue::Long(v.as_i64().unwrap_or(0)),
        // SQLite stores a REAL without a fraction as an INTEGER only with REAL affinity;
        // these columns have none, but read either.
        2 => TbValue::Double(
            v.as_f64()
                .or_else(|_| v.as_i64().map(|n| n as f64))
                .unwrap_or(0.0),
        ),
        4 => TbValue::Json(text()),
        _ => TbValue::String(text()),
    }
}

fn scope_code(scope: AttributeScope) -> i64 {
    match scope {
        AttributeScope::Client => 0,
        AttributeScope::Shared => 1,
        AttributeScope::Server => 2,
    }
}

fn rpc_status_name(s: RpcStatus) -> &'static str {
    match s {
        RpcStatus::Queued => "QUEUED",
        RpcStatus::Sent => "SENT",
        RpcStatus::Delivered => "DELIVERED",
        RpcStatus::Successful => "SUCCESSFUL",
        RpcStatus::Timeout => "TIMEOUT",
        RpcStatus::Expired => "EXPIRED",
    }
}

fn rpc_status(name: &str) -> RpcStatus {
    match name {
        "QUEUED" => RpcStatus::Queued,
        "SENT" => RpcStatus::Sent,
        "DELIVERED" => RpcStatus::Delivered,
        "SUCCESSFUL" => RpcStatus::Successful,
        "TIMEOUT" => RpcStatus::Timeout,
        _ => RpcStatus::Expired,
    }
}

/// `(type, token, client_id, username, password, cert)` columns of credentials.
type CredCols<'a> = (
    &'static str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn cred_cols(c: &Credentials) -> CredCols<'_> {
    match c {
        Credentials::AccessToken(t) => (c.type_name(), Some(t), None, None, None, None),
        Credentials::MqttBasic {
            client_id,
            username,
            password,
        } => (
            c.type_name(),
            None,
            client_id.as_deref(),
            username.as_deref(),
            password.as_deref(),
            None,
        ),
        Credentials::X509(cert) => (c.type_name(), None, None, None, None, Some(cert)),
    }
}

/// Credentials from the columns starting at `i` (type, token, client_id, username, password,
/// cert).
fn read_creds(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Credentials> {
    let kind: String = r.get(i)?;
    let s = |k: usize| r.get::<_, Option<String>>(i + k);
    Ok(match kind.as_str() {
        "MQTT_BASIC" => Credentials::MqttBasic {
            client_id: s(2)?,
            username: s(3)?,
            password: s(4)?,
        },
        "X509_CERTIFICATE" => Credentials::X509(s(5)?.unwrap_or_default()),
        _ => Credentials::AccessToken(s(1)?.unwrap_or_default()),
    })
}

// ---- loading ---------------------------------------------------------------------------------

/// Loads everything into `store`; returns the device row ids by name for the writer.
fn load(
    conn: &Connection,
    store: &mut Store,
    cap: usize,
) -> rusqlite::Result<HashMap<String, i64>> {
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT dev, name, uuid, created_ms, gateway, profile, provisioned,
                cred_type, token, client_id, username, password, cert, last_activity_ms,
                dev_type, last_gateway, created_by
         FROM device",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let dev_id: i64 = r.get(0)?;
        let name: String = r.get(1)?;
        let uuid: String = r.get(2)?;
        let spec = DeviceSpec {
            name: name.clone(),
            credentials: read_creds(r, 7)?,
            gateway: r.get::<_, i64>(4)? != 0,
            profile: r.get(5)?,
        };
        let mut dev = Device::new(spec);
        if let Ok(id) = uuid::Uuid::parse_str(&uuid) {
            dev.id = id;
        }
        dev.created_ms = r.get(3)?;
        dev.provisioned = r.get::<_, i64>(6)? != 0;
        dev.last_activity_ms = r.get(13)?;
        dev.device_type = r.get(14)?;
        let gw = |i: usize| -> rusqlite::Result<Option<uuid::Uuid>> {
            let text: Option<String> = r.get(i)?;
            Ok(text.and_then(|t| uuid::Uuid::parse_str(&t).ok()))
        };
        dev.last_gateway = gw(15)?;
        dev.created_by = gw(16)?;
        if let Credentials::AccessToken(t) = &dev.credentials {
            store.tokens.insert(t.clone(), name.clone());
        }
        store.ids.insert(dev.id, name.clone());
        store.devices.insert(name.clone(), dev);
        names.insert(dev_id, name);
    }
    drop(rows);
    drop(stmt);
    fn device<'a>(
        store: &'a mut Store,
        names: &HashMap<i64, String>,
        id: i64,
    ) -> Option<&'a mut Device> {
        names.get(&id).and_then(|n| store.devices.get_mut(n))
    }

    let mut stmt = conn.prepare("SELECT dev, scope, key, type, value, ts FROM attribute")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            let scope = match r.get::<_, i64>(1)? {
                0 => AttributeScope::Client,
                1 => AttributeScope::Shared,
                _ => AttributeScope::Server,
            };
            let stamped = Stamped {
                value: get_value(r.get(3)?, r.get_ref(4)?),
                ts: r.get(5)?,
            };
            dev.attributes_mut(scope).insert(r.get(2)?, stamped);
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare("SELECT dev, key, ts, type, value FROM latest")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            let key: String = r.get(1)?;
            let point = TelemetryPoint {
                ts: r.get(2)?,
                key: key.clone(),
                value: get_value(r.get(3)?, r.get_ref(4)?),
            };
            dev.latest.insert(key, point);
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare(
        "SELECT ts, key, type, value FROM telemetry WHERE dev = ?1 ORDER BY rowid DESC LIMIT ?2",
    )?;
    for (&id, name) in &names {
        let Some(dev) = store.devices.get_mut(name) else {
            continue;
        };
        let mut rows = stmt.query(params![id, cap as i64])?;
        while let Some(r) = rows.next()? {
            dev.telemetry.push_front(TelemetryPoint {
                ts: r.get(0)?,
                key: r.get(1)?,
                value: get_value(r.get(2)?, r.get_ref(3)?),
            });
        }
    }
    drop(stmt);

    let now = now_ms();
    let mut stmt = conn.prepare(
        "SELECT dev, id, method, params, oneway, status, reply, expires_ms FROM rpc ORDER BY dev, id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            let id = u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
            let expires_ms: i64 = r.get(7)?;
            let left = Duration::from_millis(expires_ms.saturating_sub(now).max(0) as u64);
            let status: String = r.get(5)?;
            let record = RpcRecord {
                id,
                method: r.get(2)?,
                params: r.get(3)?,
                oneway: r.get::<_, i64>(4)? != 0,
                status: rpc_status(&status),
                reply: r.get(6)?,
            };
            let slot = RpcSlot::new();
            if let (RpcStatus::Successful, Some(reply)) = (record.status, &record.reply) {
                slot.set(RpcOutcome::Reply(reply.clone()));
            }
            dev.rpc_seq = dev.rpc_seq.max(id.wrapping_add(1));
            dev.rpcs.insert(
                id,
                RpcEntry {
                    sent: record.status != RpcStatus::Queued,
                    record,
                    expires_at: Instant::now() + left,
                    slot,
                },
            );
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt =
        conn.prepare("SELECT dev, ts, id, method, params, reply FROM client_rpc ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            if dev.client_rpcs.len() >= MAX_CLIENT_RPCS {
                dev.client_rpcs.pop_front();
            }
            dev.client_rpcs.push_back(ClientRpcRecord {
                ts: r.get(1)?,
                id: r.get(2)?,
                method: r.get(3)?,
                params: r.get(4)?,
                reply: r.get(5)?,
            });
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt =
        conn.prepare("SELECT dev, ts, secret_key, duration_ms FROM claim ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            dev.claims.push(Claim {
                ts: r.get(1)?,
                secret_key: r.get(2)?,
                duration_ms: r.get(3)?,
            });
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare(
        "SELECT f.dev, f.package, b.data FROM firmware f JOIN blob b ON b.sha256 = f.sha256",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        if let Some(dev) = device(store, &names, r.get(0)?) {
            let package: Option<String> = r.get(1)?;
            dev.firmware = Some(AssignedFirmware {
                data: Bytes::from(r.get::<_, Vec<u8>>(2)?),
                package: package.and_then(|p| uuid::Uuid::parse_str(&p).ok()),
            });
        }
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare(
        "SELECT o.id, o.created_ms, o.title, o.version, o.kind, o.tag, o.url, o.file_name,
                o.content_type, o.checksum_algorithm, o.checksum, b.data, o.additional_info
         FROM ota o LEFT JOIN blob b ON b.sha256 = o.sha256",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let Ok(id) = uuid::Uuid::parse_str(&r.get::<_, String>(0)?) else {
            continue;
        };
        let algorithm: Option<String> = r.get(9)?;
        let package = OtaPackage {
            id,
            created_ms: r.get(1)?,
            title: r.get(2)?,
            version: r.get(3)?,
            kind: r.get(4)?,
            tag: r.get(5)?,
            url: r.get(6)?,
            file_name: r.get(7)?,
            content_type: r.get(8)?,
            checksum_algorithm: algorithm.and_then(|a| ChecksumAlgorithm::from_name(&a)),
            checksum: r.get(10)?,
            data: r.get::<_, Option<Vec<u8>>>(11)?.map(Bytes::from),
            additional_info: r.get(12)?,
        };
        store.ota.insert(id, package);
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare("SELECT key, secret, strategy FROM profile")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let strategy: String = r.get(2)?;
        let profile = ProvisionProfile {
            key: key.clone(),
            secret: r.get(1)?,
            strategy: if strategy == "CHECK_PRE_PROVISIONED_DEVICES" {
                ProvisionStrategy::CheckPreProvisionedDevices
            } else {
                ProvisionStrategy::AllowCreateNewDevices
            },
        };
        store.profiles.insert(key, profile);
    }
    drop(rows);
    drop(stmt);

    let mut stmt = conn.prepare(
        "SELECT ts, name, profile_key, gateway, cred_type, token, client_id, username, password,
                cert FROM provisioned ORDER BY rowid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        store.provisioned.push(ProvisionedDevice {
            ts: r.get(0)?,
            name: r.get(1)?,
            profile_key: r.get(2)?,
            gateway: r.get::<_, i64>(3)? != 0,
            credentials: read_creds(r, 4)?,
        });
    }
    Ok(names.into_iter().map(|(id, name)| (name, id)).collect())
}

// ---- the journal and its writer --------------------------------------------------------------

/// A [`Change`] as owned data, for the writer thread.
enum Op {
    /// Added or updated (upsert by name).
    Device {
        name: String,
        id: uuid::Uuid,
        created_ms: i64,
        credentials: Credentials,
        gateway: bool,
        profile: Option<String>,
        provisioned: bool,
        last_activity_ms: i64,
        device_type: String,
        last_gateway: Option<uuid::Uuid>,
        created_by: Option<uuid::Uuid>,
    },
    DeviceRemoved(String),
    Telemetry(String, Vec<TelemetryPoint>),
    AttributesSet(String, AttributeScope, Vec<(String, TbValue)>, i64),
    AttributesDeleted(String, AttributeScope, Vec<String>),
    Rpc(String, RpcRecord, i64),
    ClientRpc(String, ClientRpcRecord),
    Claim(String, Claim),
    Firmware(String, Option<(Bytes, Option<uuid::Uuid>)>),
    Profile(ProvisionProfile),
    Provisioned(ProvisionedDevice),
    OtaSaved(OtaPackage),
    OtaRemoved(uuid::Uuid),
}

impl Op {
    fn from_change(change: Change<'_>) -> Op {
        let device_op = |d: &Device| Op::Device {
            name: d.name.clone(),
            id: d.id,
            created_ms: d.created_ms,
            credentials: d.credentials.clone(),
            gateway: d.gateway,
            profile: d.profile.clone(),
            provisioned: d.provisioned,
            last_activity_ms: d.last_activity_ms,
            device_type: d.device_type.clone(),
            last_gateway: d.last_gateway,
            created_by: d.created_by,
        };
        match change {
            Change::DeviceAdded(d) | Change::DeviceUpdated(d) => device_op(d),
            Change::DeviceRemoved { name } => Op::DeviceRemoved(name.into()),
            Change::Telemetry { device, points } => Op::Telemetry(device.into(), points.to_vec()),
            Change::AttributesSet {
                device,
                scope,
                values,
                ts,
            } => Op::AttributesSet(device.into(), scope, values.to_vec(), ts),
            Change::AttributesDeleted {
                device,
                scope,
                keys,
            } => Op::AttributesDeleted(
                device.into(),
                scope,
                keys.iter().map(|k| k.to_string()).collect(),
            ),
            Change::Rpc {
                device,
                record,
                expires_ms,
            } => Op::Rpc(device.into(), record.clone(), expires_ms),
            Change::ClientRpc { device, record } => Op::ClientRpc(device.into(), record.clone()),
            Change::Claim { device, claim } => Op::Claim(device.into(), claim.clone()),
            Change::Firmware { device, firmware } => {
                Op::Firmware(device.into(), firmware.map(|f| (f.data.clone(), f.package)))
            }
            Change::Profile(p) => Op::Profile(p.clone()),
            Change::Provisioned(p) => Op::Provisioned(p.clone()),
            Change::OtaSaved(p) => Op::OtaSaved(p.clone()),
            Change::OtaRemoved { id } => Op::OtaRemoved(id),
        }
    }
}

struct SqliteJournal {
    tx: Sender<(u64, Op)>,
    durability: Arc<Durability>,
}

impl Journal for SqliteJournal {
    fn record(&mut self, change: Change<'_>) {
        let seq = self.durability.next_seq();
        if self.tx.send((seq, Op::from_change(change))).is_err() {
            // The writer is gone (it logged why): nobody may wait for it.
            self.durability.set_committed(seq);
        }
    }
}

struct Writer {
    conn: Connection,
    /// Device row id by name.
    ids: HashMap<String, i64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<(u64, Op)>, durability: &Durability) {
        let mut batch = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            // Design: a fixed window rather than a wake-up per change: at 10,000 changes/s
            // the writer wakes ~200 times a second and each commit carries ~50 changes.
            std::thread::sleep(BATCH_WINDOW);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let last = batch.last().map_or(0, |(seq, _)| *seq);
            if let Err(e) = self.write(&mut batch) {
                log::error!(
                    target: LOG_TARGET,
                    "data store: {} changes not written: {e}",
                    batch.len()
                );
            }
            batch.clear();
            durability.set_committed(last);
        }
        // The channel closed: the server stopped. Fold the WAL into the database.
        let _ = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    }

    fn write(&mut self, batch: &mut Vec<(u64, Op)>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        // Design: the latest value of a (device, key) is written once per batch, not once
        // per point. A backlog makes batches long and each device appears in them several
        // times, so the more the writer lags, the less `latest` costs it. Pending values are
        // written before any other change, so the order of changes stays as it was.
        let mut latest = LatestBatch::new();
        for (_, op) in batch.drain(..) {
            match op {
                Op::Telemetry(name, points) => {
                    insert_telemetry(&tx, &self.ids, &name, points, &mut latest)?
                }
                op => {
                    latest.flush(&tx)?;
                    apply(&tx, &mut self.ids, op)?;
                }
            }
        }
        latest.flush(&tx)?;
        tx.commit()
    }
}

/// The newest point per (device row, key) of the telemetry in a batch, not yet written.
struct LatestBatch(HashMap<(i64, String), (i64, i64, Value)>);

impl LatestBatch {
    fn new() -> Self {
        LatestBatch(HashMap::new())
    }

    /// Notes a point; as in the store, the highest `ts` wins and a later arrival wins a tie.
    fn note(&mut self, dev: i64, p: &TelemetryPoint) {
        let (kind, value) = put_value(&p.value);
        match self.0.entry((dev, p.key.clone())) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if p.ts >= e.get().0 {
                    e.insert((p.ts, kind, value));
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((p.ts, kind, value));
            }
        }
    }

    fn flush(&mut self, c: &Connection) -> rusqlite::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut st = c.prepare_cached(
            "INSERT INTO latest(dev, key, ts, type, value) VALUES(?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(dev, key) DO UPDATE SET ts = excluded.ts, type = excluded.type,
                value = excluded.value WHERE excluded.ts >= latest.ts",
        )?;
        for ((dev, key), (ts, kind, value)) in self.0.drain() {
            st.execute(params![dev, key, ts, kind, value])?;
        }
        Ok(())
    }
}

/// Every point goes to `telemetry`; `latest` gets the newest per key through `batch`.
fn insert_telemetry(
    c: &Connection,
    ids: &HashMap<String, i64>,
    name: &str,
    points: Vec<TelemetryPoint>,
    batch: &mut LatestBatch,
) -> rusqlite::Result<()> {
    let Some(&d) = ids.get(name) else {
        return Ok(());
    };
    let mut ins = c.prepare_cached(
        "INSERT INTO telemetry(dev, ts, key, type, value) VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in &points {
        let (kind, value) = put_value(&p.value);
        ins.execute(params![d, p.ts, p.key, kind, value])?;
        batch.note(d, p);
    }
    Ok(())
}

fn apply(c: &Connection, ids: &mut HashMap<String, i64>, op: Op) -> rusqlite::Result<()> {
    let dev = |ids: &HashMap<String, i64>, name: &str| ids.get(name).copied();
    match op {
        Op::Device {
            name,
            id,
            created_ms,
            credentials,
            gateway,
            profile,
            provisioned,
            last_activity_ms,
            device_type,
            last_gateway,
            created_by,
        } => {
            let (kind, token, client_id, username, password, cert) = cred_cols(&credentials);
            let row: i64 = c
                .prepare_cached(
                    "INSERT INTO device(name, uuid, created_ms, cred_type, token, client_id,
                        username, password, cert, gateway, profile, provisioned,
                        last_activity_ms, dev_type, last_gateway, created_by)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                        ?16)
                     ON CONFLICT(name) DO UPDATE SET uuid = excluded.uuid,
                        created_ms = excluded.created_ms, cred_type = excluded.cred_type,
                        token = excluded.token, client_id = excluded.client_id,
                        username = excluded.username, password = excluded.password,
                        cert = excluded.cert, gateway = excluded.gateway,
                        profile = excluded.profile, provisioned = excluded.provisioned,
                        last_activity_ms = excluded.last_activity_ms,
                        dev_type = excluded.dev_type, last_gateway = excluded.last_gateway,
                        created_by = excluded.created_by
                     RETURNING dev",
                )?
                .query_row(
                    params![
                        name,
                        id.to_string(),
                        created_ms,
                        kind,
                        token,
                        client_id,
                        username,
                        password,
                        cert,
                        gateway,
                        profile,
                        provisioned,
                        last_activity_ms,
                        device_type,
                        last_gateway.map(|u| u.to_string()),
                        created_by.map(|u| u.to_string())
                    ],
                    |r| r.get(0),
                )?;
            ids.insert(name, row);
        }
        Op::DeviceRemoved(name) => {
            if let Some(d) = ids.remove(&name) {
                for table in [
                    "attribute",
                    "telemetry",
                    "latest",
                    "rpc",
                    "client_rpc",
                    "claim",
                    "firmware",
                    "device",
                ] {
                    c.prepare_cached(&format!("DELETE FROM {table} WHERE dev = ?1"))?
                        .execute([d])?;
                }
                collect_blobs(c)?;
            }
        }
        Op::Telemetry(name, points) => {
            let mut latest = LatestBatch::new();
            insert_telemetry(c, ids, &name, points, &mut latest)?;
            latest.flush(c)?;
        }
        Op::AttributesSet(name, scope, values, ts) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            let mut st = c.prepare_cached(
                "INSERT OR REPLACE INTO attribute(dev, scope, key, type, value, ts)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (key, v) in values {
                let (kind, value) = put_value(&v);
                st.execute(params![d, scope_code(scope), key, kind, value, ts])?;
            }
        }
        Op::AttributesDeleted(name, scope, keys) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            let mut st = c.prepare_cached(
                "DELETE FROM attribute WHERE dev = ?1 AND scope = ?2 AND key = ?3",
            )?;
            for key in keys {
                st.execute(params![d, scope_code(scope), key])?;
            }
        }
        Op::Rpc(name, r, expires_ms) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            c.prepare_cached(
                "INSERT OR REPLACE INTO rpc(dev, id, method, params, oneway, status, reply,
                    expires_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                d,
                r.id,
                r.method,
                r.params,
                r.oneway,
                rpc_status_name(r.status),
                r.reply,
                expires_ms
            ])?;
        }
        Op::ClientRpc(name, r) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            c.prepare_cached(
                "INSERT INTO client_rpc(dev, ts, id, method, params, reply)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(dev, ts, id) DO UPDATE SET reply = excluded.reply",
            )?
            .execute(params![d, r.ts, r.id, r.method, r.params, r.reply])?;
        }
        Op::Claim(name, claim) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            c.prepare_cached(
                "INSERT INTO claim(dev, ts, secret_key, duration_ms) VALUES(?1, ?2, ?3, ?4)",
            )?
            .execute(params![d, claim.ts, claim.secret_key, claim.duration_ms])?;
        }
        Op::Firmware(name, firmware) => {
            let Some(d) = dev(ids, &name) else {
                return Ok(());
            };
            match firmware {
                Some((data, package)) => {
                    let sha = hex(&Sha256::digest(&data));
                    c.prepare_cached("INSERT OR IGNORE INTO blob(sha256, data) VALUES(?1, ?2)")?
                        .execute(params![sha, data.as_ref()])?;
                    c.prepare_cached(
                        "INSERT OR REPLACE INTO firmware(dev, package, sha256) VALUES(?1, ?2, ?3)",
                    )?
                    .execute(params![
                        d,
                        package.map(|p| p.to_string()),
                        sha
                    ])?;
                }
                None => {
                    c.prepare_cached("DELETE FROM firmware WHERE dev = ?1")?
                        .execute([d])?;
                }
            }
            collect_blobs(c)?;
        }
        Op::Profile(p) => {
            let strategy = match p.strategy {
                ProvisionStrategy::AllowCreateNewDevices => "ALLOW_CREATE_NEW_DEVICES",
                ProvisionStrategy::CheckPreProvisionedDevices => "CHECK_PRE_PROVISIONED_DEVICES",
            };
            c.prepare_cached(
                "INSERT OR REPLACE INTO profile(key, secret, strategy) VALUES(?1, ?2, ?3)",
            )?
            .execute(params![p.key, p.secret, strategy])?;
        }
        Op::Provisioned(p) => {
            let (kind, token, client_id, username, password, cert) = cred_cols(&p.credentials);
            c.prepare_cached(
                "INSERT INTO provisioned(ts, name, profile_key, cred_type, token, client_id,
                    username, password, cert, gateway)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                p.ts,
                p.name,
                p.profile_key,
                kind,
                token,
                client_id,
                username,
                password,
                cert,
                p.gateway
            ])?;
        }
        Op::OtaSaved(p) => {
            let sha = match &p.data {
                Some(data) => {
                    let sha = hex(&Sha256::digest(data));
                    c.prepare_cached("INSERT OR IGNORE INTO blob(sha256, data) VALUES(?1, ?2)")?
                        .execute(params![sha, data.as_ref()])?;
                    Some(sha)
                }
                None => None,
            };
            c.prepare_cached(
                "INSERT OR REPLACE INTO ota(id, created_ms, title, version, kind, tag, url,
                    file_name, content_type, checksum_algorithm, checksum, sha256,
                    additional_info)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                p.id.to_string(),
                p.created_ms,
                p.title,
                p.version,
                p.kind,
                p.tag,
                p.url,
                p.file_name,
                p.content_type,
                p.checksum_algorithm.map(|a| a.name()),
                p.checksum,
                sha,
                p.additional_info
            ])?;
            collect_blobs(c)?;
        }
        Op::OtaRemoved(id) => {
            c.prepare_cached("DELETE FROM ota WHERE id = ?1")?
                .execute([id.to_string()])?;
            collect_blobs(c)?;
        }
    }
    Ok(())
}

/// Deletes images no device assignment and no OTA package refers to any more.
fn collect_blobs(c: &Connection) -> rusqlite::Result<()> {
    c.prepare_cached(
        "DELETE FROM blob WHERE sha256 NOT IN (SELECT sha256 FROM firmware)
            AND sha256 NOT IN (SELECT sha256 FROM ota WHERE sha256 IS NOT NULL)",
    )?
    .execute([])?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tb-devserver-sqlite-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn reopen(dir: &Path, cap: usize) -> (Store, Persistence) {
        let mut store = Store::default();
        let p = open(dir, &mut store, cap).expect("open");
        (store, p)
    }

    fn close(mut store: Store, p: Persistence) {
        store.journal = None;
        p.finish();
    }

    #[test]
    fn every_kind_of_record_survives_a_reopen() {
        let dir = temp_dir("all");
        let (mut st, p) = reopen(&dir, 3);
        st.insert_device(DeviceSpec::access_token("A", "tok-a"));
        st.insert_device(DeviceSpec::mqtt_basic(
            "B",
            Some("cid".into()),
            Some("user".into()),
            Some("pw".into()),
        ));
        let pts = |ts: i64, v: i64| TelemetryPoint {
            ts,
            key: "t".into(),
            value: TbValue::Long(v),
        };
        for i in 0..5 {
            assert!(st.append_telemetry("A", vec![pts(100 - i, i)], 3));
        }
        st.append_telemetry(
            "A",
            vec![TelemetryPoint {
                ts: 7,
                key: "d".into(),
                value: TbValue::Double(2.0),
            }],
            3,
        );
        st.set_attributes(
            "A",
            AttributeScope::Shared,
            vec![("s".into(), TbValue::Json("{\"a\":1}".into()))],
            42,
        );
        st.set_attributes(
            "A",
            AttributeScope::Client,
            vec![
                ("c".into(), TbValue::Bool(true)),
                ("gone".into(), TbValue::String("x".into())),
            ],
            43,
        );
        st.delete_attributes("A", AttributeScope::Client, &["gone"]);
        st.put_profile(ProvisionProfile {
            key: "k".into(),
            secret: "s".into(),
            strategy: ProvisionStrategy::CheckPreProvisionedDevices,
        });
        st.add_claim(
            "A",
            Claim {
                ts: 1,
                secret_key: "sk".into(),
                duration_ms: 5,
            },
        );
        st.devices.get_mut("A").expect("A").firmware = Some(AssignedFirmware {
            data: Bytes::from_static(b"image"),
            package: None,
        });
        st.record_firmware("A");
        st.insert_device(DeviceSpec::access_token("Gone", "tok-g"));
        st.remove_device("Gone");
        close(st, p);

        let (st, p) = reopen(&dir, 3);
        let a = &st.devices["A"];
        assert_eq!(st.tokens["tok-a"], "A");
        assert_eq!(st.devices.len(), 2);
        assert_eq!(
            st.devices["B"].credentials,
            Credentials::MqttBasic {
                client_id: Some("cid".into()),
                username: Some("user".into()),
                password: Some("pw".into()),
            }
        );
        // The last 3 points in arrival order; latest is the highest ts of each key.
        let kept: Vec<i64> = a.telemetry.iter().map(|p| p.ts).collect();
        assert_eq!(kept, vec![97, 96, 7]);
        assert_eq!(a.latest["t"].value, TbValue::Long(0));
        assert_eq!(a.latest["d"].value, TbValue::Double(2.0));
        assert_eq!(
            a.shared_attrs["s"],
            Stamped {
                value: TbValue::Json("{\"a\":1}".into()),
                ts: 42
            }
        );
        assert_eq!(a.client_attrs.len(), 1);
        assert_eq!(a.client_attrs["c"].ts, 43);
        assert_eq!(
            st.profiles["k"].strategy,
            ProvisionStrategy::CheckPreProvisionedDevices
        );
        assert_eq!(a.claims.len(), 1);
        assert_eq!(
            a.firmware.as_ref().map(|f| f.data.clone()),
            Some(Bytes::from_static(b"image"))
        );
        close(st, p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_device_type_and_its_gateways_survive_a_reopen() {
        let dir = temp_dir("gwinfo");
        let (mut st, p) = reopen(&dir, 3);
        let gw = st.insert_device(DeviceSpec::access_token("gw", "tok-gw").gateway(true));
        st.insert_device(DeviceSpec::access_token("sub", "tok-sub"));
        let sub = st.devices.get_mut("sub").expect("sub");
        sub.device_type = "meter".into();
        sub.last_gateway = Some(gw);
        sub.created_by = Some(gw);
        st.record_device("sub");
        close(st, p);
        let (st, p) = reopen(&dir, 3);
        let sub = &st.devices["sub"];
        assert_eq!(
            (sub.device_type.as_str(), sub.last_gateway, sub.created_by),
            ("meter", Some(gw), Some(gw))
        );
        assert_eq!(st.devices["gw"].device_type, DEFAULT_TYPE);
        close(st, p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_1_store_is_migrated_and_keeps_its_devices() {
        // The device table as schema version 1 wrote it, with one row.
        let dir = temp_dir("v1");
        std::fs::create_dir_all(&dir).expect("dir");
        {
            let conn = Connection::open(dir.join(DB_FILE)).expect("v1 file");
            conn.execute_batch(
                "CREATE TABLE device(
                    dev INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uuid TEXT NOT NULL,
                    created_ms INTEGER NOT NULL, cred_type TEXT NOT NULL, token TEXT,
                    client_id TEXT, username TEXT, password TEXT, cert TEXT,
                    gateway INTEGER NOT NULL, profile TEXT, provisioned INTEGER NOT NULL,
                    last_activity_ms INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO device(name, uuid, created_ms, cred_type, token, gateway,
                    provisioned) VALUES('old', '5a3f0c1e-7c0e-11ee-b962-0242ac120002', 7,
                    'ACCESS_TOKEN', 'tok-old', 0, 0);
                 PRAGMA user_version = 1;",
            )
            .expect("v1 schema");
        }
        let (mut st, p) = reopen(&dir, 3);
        let old = &st.devices["old"];
        assert_eq!(
            (old.device_type.as_str(), old.last_gateway, old.created_ms),
            (DEFAULT_TYPE, None, 7)
        );
        st.devices.get_mut("old").expect("old").device_type = "meter".into();
        st.record_device("old");
        close(st, p);
        let (st, p) = reopen(&dir, 3);
        assert_eq!(st.devices["old"].device_type, "meter");
        close(st, p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_server_on_the_same_folder_is_refused() {
        let dir = temp_dir("busy");
        let (st, p) = reopen(&dir, 10);
        let mut other = Store::default();
        let err = open(&dir, &mut other, 10).err().expect("refused");
        assert!(err.contains("in use by another dev server"), "{err}");
        close(st, p);
        let (st, p) = reopen(&dir, 10);
        close(st, p);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_batch_writes_the_newest_latest_value_and_keeps_the_order_of_changes() {
        let conn = Connection::open_in_memory().expect("memory");
        setup(&conn).expect("schema");
        let mut w = Writer {
            conn,
            ids: HashMap::new(),
        };
        let device = |name: &str| Op::Device {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            created_ms: 1,
            credentials: Credentials::AccessToken(format!("tok-{name}")),
            gateway: false,
            profile: None,
            provisioned: false,
            last_activity_ms: 0,
            device_type: DEFAULT_TYPE.into(),
            last_gateway: None,
            created_by: None,
        };
        let point = |ts: i64, v: i64| TelemetryPoint {
            ts,
            key: "t".into(),
            value: TbValue::Long(v),
        };
        let telemetry =
            |name: &str, ts: i64, v: i64| Op::Telemetry(name.into(), vec![point(ts, v)]);
        // A: a tie (the later arrival wins) and an older point (ignored); B: removed after
        // its telemetry, in the same batch, so none of its rows may come back.
        let mut batch: Vec<(u64, Op)> = [
            device("A"),
            device("B"),
            telemetry("A", 10, 1),
            telemetry("B", 10, 7),
            telemetry("A", 10, 2),
            telemetry("A", 5, 3),
            Op::DeviceRemoved("B".into()),
            telemetry("A", 9, 4),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, op)| (i as u64 + 1, op))
        .collect();
        w.write(&mut batch).expect("write");
        let rows: Vec<(String, i64, i64)> = w
            .conn
            .prepare("SELECT d.name, l.ts, l.value FROM latest l JOIN device d USING(dev)")
            .expect("query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("values");
        assert_eq!(rows, vec![("A".to_string(), 10, 2)]);
        let orphans: i64 = w
            .conn
            .query_row(
                "SELECT count(*) FROM latest WHERE dev NOT IN (SELECT dev FROM device)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(orphans, 0);
        let points: i64 = w
            .conn
            .query_row("SELECT count(*) FROM telemetry", [], |r| r.get(0))
            .expect("count");
        assert_eq!(points, 4, "every point of A is kept, none of B");
    }

    /// What one lagging batch costs the writer: `rounds` messages of 3 keys from each of
    /// `devices` devices, written one upsert per point (each change applied alone) and
    /// through `Writer::write` (latest once per key). A measurement, not a check:
    /// `cargo test --release -p tb-devserver --lib writer_batch_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn writer_batch_cost() {
        let (devices, rounds) = (10_000, 4);
        let ops = || -> Vec<(u64, Op)> {
            let mut v = Vec::new();
            for r in 0..rounds {
                for d in 0..devices {
                    let points = ["temperature", "humidity", "d"]
                        .iter()
                        .map(|k| TelemetryPoint {
                            ts: 1_000 * r + 1,
                            key: (*k).into(),
                            value: TbValue::Long(d),
                        })
                        .collect();
                    v.push((0, Op::Telemetry(format!("dev-{d}"), points)));
                }
            }
            v
        };
        for mode in ["per point", "per batch"] {
            let dir = temp_dir("cost");
            std::fs::create_dir_all(&dir).expect("dir");
            let conn = Connection::open(dir.join(DB_FILE)).expect("open");
            setup(&conn).expect("schema");
            let mut w = Writer {
                conn,
                ids: HashMap::new(),
            };
            for d in 0..devices {
                w.ids.insert(format!("dev-{d}"), d);
            }
            let mut batch = ops();
            let t0 = Instant::now();
            if mode == "per point" {
                let tx = w.conn.transaction().expect("tx");
                for (_, op) in batch.drain(..) {
                    apply(&tx, &mut w.ids, op).expect("apply");
                }
                tx.commit().expect("commit");
            } else {
                w.write(&mut batch).expect("write");
            }
            let msgs = devices * rounds;
            println!(
                "{mode}: {msgs} messages in {:.0} ms",
                t0.elapsed().as_secs_f64() * 1000.0
            );
            drop(w);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn committed_follows_queued() {
        let dir = temp_dir("seq");
        let (mut st, p) = reopen(&dir, 10);
        st.insert_device(DeviceSpec::access_token("A", "t"));
        assert!(p.durability.wait_blocking(Duration::from_secs(10)));
        assert_eq!(p.durability.pending(), None);
        close(st, p);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
