//! The store, the bottom layer: devices and credentials, attributes by scope, telemetry,
//! RPC and claim records, provisioning profiles, connection events. Everything above it
//! (the feature modules, then the MQTT session and the REST API) reads and writes through it;
//! it imports nothing of theirs.
//!
//! Design: the working set lives in memory behind one `parking_lot::Mutex` held briefly, as
//! ThingsBoard's caches do; every write that must outlive the process goes through one of the
//! `Store` methods below, each of which hands a [`Change`] to the store's [`Journal`] when one
//! is attached. A persistent backend (SQLite) is such a journal: it loads the working set at
//! start and writes the changes on a writer thread of its own, batched, so the in-memory path
//! (10,000 devices at 1 msg/s on one core) costs one branch more when persistence is off.
//! Live sessions are not stored here: they belong to the layer above (`shared.rs`).

mod records;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use records::*;

use crate::value::TbValue;

/// Attribute scopes (ThingsBoard's `DataConstants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttributeScope {
    /// Written by the device.
    Client,
    /// Written by users, pushed to the device.
    Shared,
    /// Written by users, never seen by the device.
    Server,
}

impl AttributeScope {
    /// `CLIENT_SCOPE`, `SHARED_SCOPE` or `SERVER_SCOPE`.
    pub fn name(self) -> &'static str {
        match self {
            AttributeScope::Client => "CLIENT_SCOPE",
            AttributeScope::Shared => "SHARED_SCOPE",
            AttributeScope::Server => "SERVER_SCOPE",
        }
    }

    /// The scope named `name` (exact, as ThingsBoard's enum conversion).
    pub fn from_name(name: &str) -> Option<AttributeScope> {
        [Self::Client, Self::Shared, Self::Server]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// An attribute value and the server time of its last write (`lastUpdateTs`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stamped {
    pub(crate) value: TbValue,
    pub(crate) ts: i64,
}

/// Attributes of one scope, by key.
pub(crate) type Attributes = BTreeMap<String, Stamped>;

/// A write the store made, for a [`Journal`].
#[derive(Debug)]
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // the only journal is SQLite's
pub(crate) enum Change<'a> {
    DeviceAdded(&'a Device),
    /// Its credentials, profile, gateway or provisioned flag or last activity changed.
    DeviceUpdated(&'a Device),
    DeviceRemoved {
        name: &'a str,
    },
    Telemetry {
        device: &'a str,
        points: &'a [TelemetryPoint],
    },
    AttributesSet {
        device: &'a str,
        scope: AttributeScope,
        values: &'a [(String, TbValue)],
        ts: i64,
    },
    OtaSaved(&'a OtaPackage),
    OtaRemoved {
        id: uuid::Uuid,
    },
    AttributesDeleted {
        device: &'a str,
        scope: AttributeScope,
        keys: &'a [&'a str],
    },
    /// A server-side RPC was created or changed status (upsert by device and id).
    Rpc {
        device: &'a str,
        record: &'a RpcRecord,
        /// Unix ms after which it expires.
        expires_ms: i64,
    },
    /// A client-side RPC was recorded or answered (upsert by device, `ts` and id).
    ClientRpc {
        device: &'a str,
        record: &'a ClientRpcRecord,
    },
    Claim {
        device: &'a str,
        claim: &'a Claim,
    },
    /// A device's firmware assignment was set or removed.
    Firmware {
        device: &'a str,
        firmware: Option<&'a AssignedFirmware>,
    },
    Profile(&'a ProvisionProfile),
    Provisioned(&'a ProvisionedDevice),
}

/// Where the store's writes go besides memory (see the module doc). Called under the store
/// lock: an implementation queues the change and returns; it never blocks on a disk.
pub(crate) trait Journal: Send {
    fn record(&mut self, change: Change<'_>);
}

/// How far a journal got: the sequence number of the last change queued and of the last one
/// committed. Changes are numbered from 1 in the order [`Journal::record`] saw them, so
/// "committed >= n" means every change up to the n-th is on disk.
///
/// Design: the MQTT session answers a wake-up's packets (PUBACKs included) only once the
/// changes queued by then are committed ([`wait`](Self::wait)): what a device saw
/// acknowledged survives the process being killed. The writer thread commits every few
/// milliseconds, so many sessions share one commit (group commit).
pub(crate) struct Durability {
    queued: AtomicU64,
    committed: Mutex<u64>,
    committed_cv: Condvar,
    committed_tx: watch::Sender<u64>,
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl Durability {
    pub(crate) fn new() -> Arc<Durability> {
        Arc::new(Durability {
            queued: AtomicU64::new(0),
            committed: Mutex::new(0),
            committed_cv: Condvar::new(),
            committed_tx: watch::Sender::new(0),
        })
    }

    /// Numbers a change being queued (called under the store lock).
    pub(crate) fn next_seq(&self) -> u64 {
        self.queued.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Called by the writer once everything up to `seq` is committed (or given up on).
    pub(crate) fn set_committed(&self, seq: u64) {
        {
            let mut c = self.committed.lock();
            *c = (*c).max(seq);
        }
        self.committed_cv.notify_all();
        self.committed_tx.send_modify(|c| *c = (*c).max(seq));
    }

    /// The last change queued, if it is not committed yet.
    pub(crate) fn pending(&self) -> Option<u64> {
        let q = self.queued.load(Ordering::SeqCst);
        (q > *self.committed_tx.borrow()).then_some(q)
    }

    /// Waits until change `seq` is committed (returns at once if the writer is gone).
    pub(crate) async fn wait(&self, seq: u64) {
        let mut rx = self.committed_tx.subscribe();
        let _ = rx.wait_for(|c| *c >= seq).await;
    }

    /// Blocks until every change queued so far is committed or `timeout` passes; `true` if
    /// they are.
    pub(crate) fn wait_blocking(&self, timeout: std::time::Duration) -> bool {
        let target = self.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut c = self.committed.lock();
        while *c < target {
            if self.committed_cv.wait_until(&mut c, deadline).timed_out() {
                return *c >= target;
            }
        }
        true
    }
}

/// A persistent store attached to a [`Store`] (`sqlite::open`): its writer thread and its
/// progress.
pub(crate) struct Persistence {
    pub(crate) durability: Arc<Durability>,
    /// The database file.
    pub(crate) path: std::path::PathBuf,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Persistence {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn new(
        durability: Arc<Durability>,
        path: std::path::PathBuf,
        writer: std::thread::JoinHandle<()>,
    ) -> Persistence {
        Persistence {
            durability,
            path,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Waits for the writer to commit what it was sent and end. Call after the store's
    /// journal was dropped (that closes the writer's channel).
    pub(crate) fn finish(&self) {
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

pub(crate) struct RpcSlot {
    pub(crate) outcome: Mutex<Option<RpcOutcome>>,
    pub(crate) cv: Condvar,
}

impl RpcSlot {
    pub(crate) fn new() -> Arc<RpcSlot> {
        Arc::new(RpcSlot {
            outcome: Mutex::new(None),
            cv: Condvar::new(),
        })
    }

    pub(crate) fn set(&self, outcome: RpcOutcome) {
        let mut g = self.outcome.lock();
        if g.is_none() {
            *g = Some(outcome);
        }
        self.cv.notify_all();
    }
}

pub(crate) struct RpcEntry {
    pub(crate) record: RpcRecord,
    /// Whether it was ever published to the device (the REST API's 408 vs 409, spec 7.4).
    pub(crate) sent: bool,
    pub(crate) expires_at: Instant,
    pub(crate) slot: Arc<RpcSlot>,
}

/// The device type of a device nobody gave one (thingsboard-gateway.md A.4).
pub(crate) const DEFAULT_TYPE: &str = "default";

#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) name: String,
    /// ThingsBoard's entity id (a random UUID).
    pub(crate) id: uuid::Uuid,
    /// Unix ms.
    pub(crate) created_ms: i64,
    pub(crate) credentials: Credentials,
    pub(crate) gateway: bool,
    pub(crate) profile: Option<String>,
    pub(crate) provisioned: bool,
    /// ThingsBoard's device type (its profile name); `default` unless a gateway's connect
    /// named one when it created the device (thingsboard-gateway.md A.3, A.4).
    pub(crate) device_type: String,
    /// Id of the gateway that last connected it (`additionalInfo.lastConnectedGateway`, A.3).
    pub(crate) last_gateway: Option<uuid::Uuid>,
    /// Id of the gateway that created it: the gateway -> device relation of type `Created`.
    pub(crate) created_by: Option<uuid::Uuid>,
    pub(crate) client_attrs: Attributes,
    pub(crate) shared_attrs: Attributes,
    pub(crate) server_attrs: Attributes,
    pub(crate) telemetry: VecDeque<TelemetryPoint>,
    pub(crate) latest: BTreeMap<String, TelemetryPoint>,
    pub(crate) claims: Vec<Claim>,
    pub(crate) rpc_seq: u32,
    pub(crate) rpcs: BTreeMap<u32, RpcEntry>,
    pub(crate) client_rpcs: VecDeque<ClientRpcRecord>,
    /// The assigned firmware package (spec 11).
    pub(crate) firmware: Option<AssignedFirmware>,
    /// Unix ms of the last packet or connect/disconnect (0 = never).
    pub(crate) last_activity_ms: i64,
}

impl std::fmt::Debug for RpcEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record.fmt(f)
    }
}

/// A device's firmware assignment: the image served over MQTT and, when it came from an OTA
/// package of the REST API, that package's id.
#[derive(Debug, Clone)]
pub(crate) struct AssignedFirmware {
    pub(crate) data: Bytes,
    pub(crate) package: Option<uuid::Uuid>,
}

impl Device {
    pub(crate) fn new(spec: DeviceSpec) -> Self {
        Device {
            name: spec.name,
            id: uuid::Uuid::new_v4(),
            created_ms: now_ms(),
            credentials: spec.credentials,
            gateway: spec.gateway,
            profile: spec.profile,
            provisioned: false,
            device_type: DEFAULT_TYPE.to_string(),
            last_gateway: None,
            created_by: None,
            client_attrs: BTreeMap::new(),
            shared_attrs: BTreeMap::new(),
            server_attrs: BTreeMap::new(),
            telemetry: VecDeque::new(),
            latest: BTreeMap::new(),
            claims: Vec::new(),
            rpc_seq: 0,
            rpcs: BTreeMap::new(),
            client_rpcs: VecDeque::new(),
            firmware: None,
            last_activity_ms: 0,
        }
    }

    pub(crate) fn attributes(&self, scope: AttributeScope) -> &Attributes {
        match scope {
            AttributeScope::Client => &self.client_attrs,
            AttributeScope::Shared => &self.shared_attrs,
            AttributeScope::Server => &self.server_attrs,
        }
    }

    fn attributes_mut(&mut self, scope: AttributeScope) -> &mut Attributes {
        match scope {
            AttributeScope::Client => &mut self.client_attrs,
            AttributeScope::Shared => &mut self.shared_attrs,
            AttributeScope::Server => &mut self.server_attrs,
        }
    }

    /// Marks RPCs past their expiry (lazily, whenever the device is looked at).
    pub(crate) fn expire_rpcs(&mut self, now: Instant) {
        for entry in self.rpcs.values_mut() {
            let open = matches!(
                entry.record.status,
                RpcStatus::Queued | RpcStatus::Sent | RpcStatus::Delivered | RpcStatus::Timeout
            );
            if open && now >= entry.expires_at {
                entry.record.status = RpcStatus::Expired;
                entry.slot.set(RpcOutcome::Expired);
            }
        }
    }
}

/// Outcome of CONNECT authentication.
pub(crate) enum Auth {
    Device { name: String },
    Refused(crate::codec::ConnCode, String),
}

#[derive(Default)]
pub(crate) struct Store {
    pub(crate) devices: HashMap<String, Device>,
    /// Access token → device name.
    pub(crate) tokens: HashMap<String, String>,
    /// Device id → device name.
    pub(crate) ids: HashMap<uuid::Uuid, String>,
    pub(crate) profiles: HashMap<String, ProvisionProfile>,
    pub(crate) provisioned: Vec<ProvisionedDevice>,
    pub(crate) events: VecDeque<ConnectionEvent>,
    pub(crate) client_rpc_replies: HashMap<String, String>,
    pub(crate) generation: u64,
    pub(crate) ota: BTreeMap<uuid::Uuid, OtaPackage>,
    pub(crate) journal: Option<Box<dyn Journal>>,
}

/// Bound on kept connection events (oldest dropped).
pub(crate) const MAX_EVENTS: usize = 100_000;
/// Bound on kept client RPC records per device.
pub(crate) const MAX_CLIENT_RPCS: usize = 1_000;

impl Store {
    fn journal(&mut self, change: Change<'_>) {
        if let Some(j) = self.journal.as_mut() {
            j.record(change);
        }
    }

    /// Stores telemetry points of `device` (oldest dropped past `cap` per device) and updates
    /// the latest value per key (highest `ts`; a later arrival wins a tie). `false` if the
    /// device does not exist.
    pub(crate) fn append_telemetry(
        &mut self,
        device: &str,
        points: Vec<TelemetryPoint>,
        cap: usize,
    ) -> bool {
        let Some(dev) = self.devices.get_mut(device) else {
            return false;
        };
        let cap = cap.max(1);
        for point in &points {
            // Design: updated in place; only a key seen for the first time is copied (this
            // runs for every point a device sends).
            match dev.latest.get_mut(&point.key) {
                Some(latest) => {
                    if latest.ts <= point.ts {
                        latest.ts = point.ts;
                        latest.value.clone_from(&point.value);
                    }
                }
                None => {
                    dev.latest.insert(point.key.clone(), point.clone());
                }
            }
        }
        if self.journal.is_some() {
            self.journal(Change::Telemetry {
                device,
                points: &points,
            });
        }
        let Some(dev) = self.devices.get_mut(device) else {
            return false;
        };
        for point in points {
            if dev.telemetry.len() >= cap {
                dev.telemetry.pop_front();
            }
            dev.telemetry.push_back(point);
        }
        true
    }

    /// Writes attributes of one scope at server time `ts`. `false` if the device does not
    /// exist.
    pub(crate) fn set_attributes(
        &mut self,
        device: &str,
        scope: AttributeScope,
        values: Vec<(String, TbValue)>,
        ts: i64,
    ) -> bool {
        if self.journal.is_some() && self.devices.contains_key(device) {
            self.journal(Change::AttributesSet {
                device,
                scope,
                values: &values,
                ts,
            });
        }
        let Some(dev) = self.devices.get_mut(device) else {
            return false;
        };
        let attrs = dev.attributes_mut(scope);
        for (k, value) in values {
            attrs.insert(k, Stamped { value, ts });
        }
        true
    }

    /// Deletes attributes of one scope. `false` if the device does not exist.
    pub(crate) fn delete_attributes(
        &mut self,
        device: &str,
        scope: AttributeScope,
        keys: &[&str],
    ) -> bool {
        let Some(dev) = self.devices.get_mut(device) else {
            return false;
        };
        let attrs = dev.attributes_mut(scope);
        for k in keys {
            attrs.remove(*k);
        }
        self.journal(Change::AttributesDeleted {
            device,
            scope,
            keys,
        });
        true
    }

    /// Adds or replaces an OTA package.
    pub(crate) fn save_ota(&mut self, package: OtaPackage) {
        if let Some(j) = self.journal.as_mut() {
            j.record(Change::OtaSaved(&package));
        }
        self.ota.insert(package.id, package);
    }

    /// Removes an OTA package.
    pub(crate) fn remove_ota(&mut self, id: &uuid::Uuid) -> Option<OtaPackage> {
        let p = self.ota.remove(id)?;
        self.journal(Change::OtaRemoved { id: *id });
        Some(p)
    }

    /// The name of the device with entity id `id`.
    pub(crate) fn name_of(&self, id: &uuid::Uuid) -> Option<&str> {
        self.ids.get(id).map(String::as_str)
    }

    /// Journals server-side RPC `id` of `device` as it is now (after a create or a status
    /// change).
    pub(crate) fn record_rpc(&mut self, device: &str, id: u32) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        if let Some(e) = self.devices.get(device).and_then(|d| d.rpcs.get(&id)) {
            let left = e.expires_at.saturating_duration_since(Instant::now());
            journal.record(Change::Rpc {
                device,
                record: &e.record,
                expires_ms: now_ms().saturating_add(left.as_millis() as i64),
            });
        }
    }

    /// Journals the newest client-side RPC record of `device` with request id `id` (after it
    /// was recorded or answered).
    pub(crate) fn record_client_rpc(&mut self, device: &str, id: i32) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let found = self
            .devices
            .get(device)
            .and_then(|d| d.client_rpcs.iter().rev().find(|r| r.id == id));
        if let Some(record) = found {
            journal.record(Change::ClientRpc { device, record });
        }
    }

    /// Journals a device's credentials, profile, gateway and provisioned flags, type,
    /// gateways and last activity (connect, disconnect).
    pub(crate) fn record_device(&mut self, device: &str) {
        if let (Some(journal), Some(dev)) = (self.journal.as_mut(), self.devices.get(device)) {
            journal.record(Change::DeviceUpdated(dev));
        }
    }

    /// Journals a device's firmware assignment as it is now.
    pub(crate) fn record_firmware(&mut self, device: &str) {
        if let (Some(journal), Some(dev)) = (self.journal.as_mut(), self.devices.get(device)) {
            journal.record(Change::Firmware {
                device,
                firmware: dev.firmware.as_ref(),
            });
        }
    }

    /// Adds a claim to a device.
    pub(crate) fn add_claim(&mut self, device: &str, claim: Claim) {
        let Some(dev) = self.devices.get_mut(device) else {
            return;
        };
        if let Some(journal) = self.journal.as_mut() {
            journal.record(Change::Claim {
                device,
                claim: &claim,
            });
        }
        dev.claims.push(claim);
    }

    /// Registers (or replaces) a provisioning profile.
    pub(crate) fn put_profile(&mut self, profile: ProvisionProfile) {
        self.journal(Change::Profile(&profile));
        self.profiles.insert(profile.key.clone(), profile);
    }

    /// Records a device created or handed out by provisioning.
    pub(crate) fn push_provisioned(&mut self, record: ProvisionedDevice) {
        self.journal(Change::Provisioned(&record));
        self.provisioned.push(record);
    }

    /// Removes a device and its token; the caller closes its session.
    pub(crate) fn remove_device(&mut self, name: &str) -> Option<Device> {
        let dev = self.devices.remove(name)?;
        if let Credentials::AccessToken(t) = &dev.credentials {
            self.tokens.remove(t);
        }
        self.ids.remove(&dev.id);
        self.journal(Change::DeviceRemoved { name });
        self.bump();
        Some(dev)
    }

    pub(crate) fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    pub(crate) fn push_event(&mut self, event: ConnectionEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
        self.bump();
    }

    /// Whether `creds` collide with credentials already registered.
    pub(crate) fn credentials_taken(&self, creds: &Credentials) -> bool {
        match creds {
            Credentials::AccessToken(t) => self.tokens.contains_key(t),
            Credentials::MqttBasic {
                client_id,
                username,
                ..
            } => self.devices.values().any(|d| {
                matches!(&d.credentials, Credentials::MqttBasic { client_id: c, username: u, .. }
                    if c == client_id && u == username)
            }),
            Credentials::X509(cert) => {
                let body = x509_body(cert);
                self.devices
                    .values()
                    .any(|d| matches!(&d.credentials, Credentials::X509(c) if x509_body(c) == body))
            }
        }
    }

    /// Adds a device (the caller checked name and credentials) and returns its id.
    pub(crate) fn insert_device(&mut self, spec: DeviceSpec) -> uuid::Uuid {
        if let Credentials::AccessToken(t) = &spec.credentials {
            self.tokens.insert(t.clone(), spec.name.clone());
        }
        let name = spec.name.clone();
        let dev = Device::new(spec);
        let id = dev.id;
        self.ids.insert(id, name.clone());
        if self.journal.is_some() {
            if let Some(j) = self.journal.as_mut() {
                j.record(Change::DeviceAdded(&dev));
            }
        }
        self.devices.insert(name, dev);
        self.bump();
        id
    }

    /// spec 3.3: the device whose X509_CERTIFICATE credentials are the certificate with PEM
    /// body `body`; an unknown certificate is not authorised.
    pub(crate) fn authenticate_x509(&self, body: &str) -> Auth {
        let found = self
            .devices
            .values()
            .find(|d| matches!(&d.credentials, Credentials::X509(c) if x509_body(c) == body));
        match found {
            Some(d) => Auth::Device {
                name: d.name.clone(),
            },
            None => Auth::Refused(
                crate::codec::ConnCode::NotAuthorized,
                "unknown client certificate".into(),
            ),
        }
    }

    /// spec 3.2: client-id-only match when the username is empty; otherwise (client id,
    /// username) with password check, then access token, then username-only basic.
    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        username: &str,
        password: Option<&str>,
    ) -> Auth {
        use crate::codec::ConnCode;
        let pw_ok = |expected: &Option<String>| match expected.as_deref() {
            None | Some("") => true,
            Some(e) => password == Some(e),
        };
        let basic = |want_cid: Option<&str>, want_user: Option<&str>| {
            self.devices.values().find(|d| {
                matches!(&d.credentials, Credentials::MqttBasic { client_id, username, .. }
                    if client_id.as_deref().filter(|s| !s.is_empty()) == want_cid
                    && username.as_deref().filter(|s| !s.is_empty()) == want_user)
            })
        };
        if username.is_empty() {
            if !client_id.is_empty() {
                if let Some(d) = basic(Some(client_id), None) {
                    return Auth::Device {
                        name: d.name.clone(),
                    };
                }
            }
            return if password.is_some() {
                Auth::Refused(ConnCode::BadCredentials, "password without username".into())
            } else if client_id.is_empty() {
                Auth::Refused(ConnCode::NotAuthorized, "no credentials".into())
            } else {
                Auth::Refused(
                    ConnCode::IdentifierRejected,
                    format!("unknown client id {client_id:?}"),
                )
            };
        }
        if !client_id.is_empty() {
            if let Some(d) = basic(Some(client_id), Some(username)) {
                if let Credentials::MqttBasic { password: p, .. } = &d.credentials {
                    if pw_ok(p) {
                        return Auth::Device {
                            name: d.name.clone(),
                        };
                    }
                }
                return Auth::Refused(ConnCode::BadCredentials, "wrong password".into());
            }
        }
        if let Some(name) = self.tokens.get(username) {
            return Auth::Device { name: name.clone() };
        }
        if let Some(d) = basic(None, Some(username)) {
            if let Credentials::MqttBasic { password: p, .. } = &d.credentials {
                if pw_ok(p) {
                    return Auth::Device {
                        name: d.name.clone(),
                    };
                }
            }
            return Auth::Refused(ConnCode::BadCredentials, "wrong password".into());
        }
        Auth::Refused(
            ConnCode::BadCredentials,
            format!("unknown access token {username:?}"),
        )
    }
}
