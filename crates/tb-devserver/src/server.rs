//! The public server object, its thread-safe handle and configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use crate::json::{parse_lenient, write_json_string, JVal};
use crate::ratelimit::RateLimitSpec;
use crate::store::*;
use crate::value::{type_object, TbValue, TypingOptions};

/// Log target of every line the server logs through the `log` crate.
pub const LOG_TARGET: &str = "thingsboard_sdk.devserver";

/// Rate limits as ThingsBoard writes them: `capacity:seconds` pairs joined by commas
/// (`"10:1,300:60"`), all enforced at once. `None` = unlimited (reported as JSON `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Every uplink message of a device.
    pub messages: Option<String>,
    /// Telemetry messages.
    pub telemetry_messages: Option<String>,
    /// Telemetry data points (key/value pairs).
    pub telemetry_data_points: Option<String>,
}

/// Server configuration. `Config::default()` is ThingsBoard's defaults on 127.0.0.1:0.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// Port (0 = any free port; see [`DevServer::local_addr`]).
    pub port: u16,
    /// Largest accepted MQTT remaining length (`NETTY_MAX_PAYLOAD_SIZE`, 65536).
    pub max_payload_size: usize,
    /// Reported as `maxInflightMessages` by `getSessionLimits` (100).
    pub max_inflight_messages: u32,
    /// Close a connection with no packet for this long (10 min; spec 2.6).
    pub inactivity_timeout: Duration,
    /// Reply `{"error":"timeout"}` to an unanswered client-side RPC after this (60 s).
    pub client_rpc_timeout: Duration,
    /// Mark a QoS 1 server-side RPC `Timeout` without PUBACK after this (10 s).
    pub rpc_delivery_timeout: Duration,
    /// Close a provisioning session this long after the response (60 s).
    pub provision_close_delay: Duration,
    /// Default claim duration (`security.claim.duration`, 24 h).
    pub claim_duration_ms: i64,
    /// `transport.json.type_cast_enabled` (true).
    pub type_cast_enabled: bool,
    /// `transport.json.max_string_value_length` (0 = off).
    pub max_string_value_length: usize,
    /// Device profile option "send PUBACK on validation failure" (false).
    pub send_puback_on_validation_failure: bool,
    /// Enforced device rate limits (also reported by `getSessionLimits`).
    pub rate_limits: RateLimits,
    /// Reported as `gatewayRateLimits` to gateway devices.
    pub gateway_rate_limits: RateLimits,
    /// Telemetry points kept per device (oldest dropped first).
    pub max_telemetry_per_device: usize,
    /// Worker threads of the runtime [`DevServer::start`] creates (1).
    pub worker_threads: usize,
    /// Runs around each batch of log records the server hands to the `log` crate (all the
    /// lines one connection produced in one wake-up), or `None` to hand them over bare.
    /// The Python binding attaches to the interpreter here, so that pyo3-log's records
    /// share one thread state instead of creating and destroying one per record.
    pub log_scope: Option<LogScope>,
}

/// See [`Config::log_scope`]: must call its argument exactly once.
pub type LogScope = fn(&mut dyn FnMut());

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            max_payload_size: 65536,
            max_inflight_messages: 100,
            inactivity_timeout: Duration::from_secs(600),
            client_rpc_timeout: Duration::from_secs(60),
            rpc_delivery_timeout: Duration::from_secs(10),
            provision_close_delay: Duration::from_secs(60),
            claim_duration_ms: 86_400_000,
            type_cast_enabled: true,
            max_string_value_length: 0,
            send_puback_on_validation_failure: false,
            rate_limits: RateLimits::default(),
            gateway_rate_limits: RateLimits::default(),
            max_telemetry_per_device: 10_000,
            worker_threads: 1,
            log_scope: None,
        }
    }
}

impl Config {
    pub(crate) fn typing(&self) -> TypingOptions {
        TypingOptions {
            type_cast: self.type_cast_enabled,
            max_string_len: self.max_string_value_length,
        }
    }
}

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

/// A client-side RPC request, as given to a [`ClientRpcHandler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRpcRequest {
    /// Device name.
    pub device: String,
    /// Request id from the topic.
    pub id: i32,
    /// `method`.
    pub method: String,
    /// `params` as compact JSON (`null` when absent).
    pub params: String,
}

/// Scripted client-side RPC replies: return the reply payload (JSON text) or `None` for the
/// default (`{"error":"timeout"}` after [`Config::client_rpc_timeout`]). Called on a blocking
/// thread, never on the IO tasks.
pub type ClientRpcHandler = Arc<dyn Fn(&ClientRpcRequest) -> Option<String> + Send + Sync>;

/// Lines of the human-readable log, from [`DevServerHandle::log_stream`].
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

    pub(crate) fn emit(&self, line: String) {
        self.emit_all(std::slice::from_ref(&line));
    }

    /// Logs `lines` in order: to the `log` crate (inside [`Config::log_scope`]), then to every
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

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) state: Mutex<Store>,
    pub(crate) changed: Condvar,
    pub(crate) logs: LogHub,
    pub(crate) rpc_handler: Mutex<Option<ClientRpcHandler>>,
    pub(crate) conn_seq: AtomicU64,
    pub(crate) live: AtomicUsize,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) limits: crate::ratelimit::Limits,
}

impl Inner {
    /// Runs `f` on the store, then wakes [`DevServerHandle::wait_for_change`] waiters.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let r = {
            let mut st = self.state.lock();
            let r = f(&mut st);
            st.bump();
            r
        };
        self.changed.notify_all();
        r
    }
}

/// A running dev server. Dropping it shuts it down. Dereferences to its
/// [`DevServerHandle`], so every handle method is available on it.
pub struct DevServer {
    handle: DevServerHandle,
    addr: SocketAddr,
    runtime: Mutex<Option<Runtime>>,
}

impl DevServer {
    /// Binds `config.host:config.port` and serves on a runtime of its own
    /// (`config.worker_threads` workers).
    ///
    /// # Errors
    /// [`DevServerError::Bind`] if the address cannot be bound, `Config` for bad rate-limit
    /// strings, `Runtime` if the runtime cannot start.
    pub fn start(config: Config) -> Result<DevServer, DevServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name("tb-devserver")
            .enable_all()
            .build()
            .map_err(DevServerError::Runtime)?;
        let handle = runtime.handle().clone();
        let mut server = Self::start_on(handle, config)?;
        server.runtime = Mutex::new(Some(runtime));
        Ok(server)
    }

    /// Like [`start`](Self::start) but serves on an existing multi- or current-thread
    /// runtime (with IO and time enabled).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_on(runtime: Handle, config: Config) -> Result<DevServer, DevServerError> {
        let limits = crate::ratelimit::Limits {
            device: RateLimitSpec::parse_all(&config.rate_limits)?,
            gateway: RateLimitSpec::parse_all(&config.gateway_rate_limits)?,
        };
        let addr = SocketAddr::new(config.host, config.port);
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|source| DevServerError::Bind { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| DevServerError::Bind { addr, source })?;
        let local = std_listener
            .local_addr()
            .map_err(|source| DevServerError::Bind { addr, source })?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|source| DevServerError::Bind { addr, source })?
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            logs: LogHub::new(config.log_scope),
            config,
            state: Mutex::new(Store::default()),
            changed: Condvar::new(),
            rpc_handler: Mutex::new(None),
            conn_seq: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            shutdown,
            limits,
        });
        runtime.spawn(crate::session::accept_loop(
            inner.clone(),
            listener,
            shutdown_rx,
        ));
        inner.logs.emit(format!("dev server listening on {local}"));
        Ok(DevServer {
            handle: DevServerHandle { inner },
            addr: local,
            runtime: Mutex::new(None),
        })
    }

    /// The bound address (with the chosen port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A clonable, thread-safe handle to the store and commands.
    pub fn handle(&self) -> DevServerHandle {
        self.handle.clone()
    }

    /// Stops accepting, closes every connection and stops the runtime this server created.
    /// Idempotent; waits at most about one second.
    pub fn shutdown(&self) {
        let inner = &self.handle.inner;
        if inner.shutdown.send_replace(true) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while inner.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
        inner.logs.emit("dev server stopped".into());
        inner.logs.subscribers.lock().clear();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::ops::Deref for DevServer {
    type Target = DevServerHandle;
    fn deref(&self) -> &DevServerHandle {
        &self.handle
    }
}

/// A pending server-side RPC. [`wait`](Self::wait) in slices to stay interruptible.
pub struct RpcCall {
    device: String,
    id: u32,
    expires_at: Instant,
    slot: Arc<RpcSlot>,
}

impl RpcCall {
    /// Device name.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Per-device RPC id (the `{id}` of `v1/devices/me/rpc/request/{id}`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits up to `timeout` for the outcome; `None` if still pending then.
    pub fn wait(&self, timeout: Duration) -> Option<RpcOutcome> {
        let deadline = Instant::now() + timeout;
        let mut g = self.slot.outcome.lock();
        loop {
            if let Some(o) = g.as_ref() {
                return Some(o.clone());
            }
            let now = Instant::now();
            if now >= self.expires_at {
                return Some(RpcOutcome::Expired);
            }
            if now >= deadline {
                return None;
            }
            let until = deadline.min(self.expires_at);
            self.slot.cv.wait_until(&mut g, until);
        }
    }
}

/// Thread-safe handle: every method may be called from any thread; blocking methods take a
/// timeout. Cheap to clone.
#[derive(Clone)]
pub struct DevServerHandle {
    pub(crate) inner: Arc<Inner>,
}

fn parse_object(json: &str) -> Result<Vec<(String, JVal)>, DevServerError> {
    match parse_lenient(json) {
        Ok(JVal::Obj(m)) => Ok(m),
        Ok(_) => Err(DevServerError::InvalidJson(format!(
            "expected a JSON object, got {json:?}"
        ))),
        Err(e) => Err(DevServerError::InvalidJson(e.0)),
    }
}

fn typed_json(values: &[(String, TbValue)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, k);
        out.push(':');
        v.write_json(&mut out);
    }
    out.push('}');
    out
}

impl DevServerHandle {
    fn with_device<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Device) -> R,
    ) -> Result<R, DevServerError> {
        let st = self.inner.state.lock();
        st.devices
            .get(name)
            .map(f)
            .ok_or_else(|| DevServerError::UnknownDevice(name.into()))
    }

    /// Registers a device.
    ///
    /// # Errors
    /// `DuplicateDevice` if the name exists; `InvalidCredentials` if the credentials are
    /// taken or break the basic-credential rules (spec 3.2).
    pub fn add_device(&self, spec: DeviceSpec) -> Result<(), DevServerError> {
        if let Credentials::MqttBasic {
            client_id,
            username,
            password,
        } = &spec.credentials
        {
            let has = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
            if !has(client_id) && !has(username) {
                return Err(DevServerError::InvalidCredentials(
                    "MQTT basic credentials need a client id or a username".into(),
                ));
            }
            if has(password) && !has(username) {
                return Err(DevServerError::InvalidCredentials(
                    "an MQTT basic password needs a username".into(),
                ));
            }
        }
        self.inner.update(|st| {
            if st.devices.contains_key(&spec.name) {
                return Err(DevServerError::DuplicateDevice(spec.name.clone()));
            }
            if st.credentials_taken(&spec.credentials) {
                return Err(DevServerError::InvalidCredentials(format!(
                    "credentials of {:?} are used by another device",
                    spec.name
                )));
            }
            st.insert_device(spec);
            Ok(())
        })
    }

    /// Names of all devices, sorted.
    pub fn devices(&self) -> Vec<String> {
        let st = self.inner.state.lock();
        let mut names: Vec<String> = st.devices.keys().cloned().collect();
        names.sort();
        names
    }

    /// Registers (or replaces) a provisioning profile.
    pub fn add_provision_profile(&self, profile: ProvisionProfile) {
        self.inner.update(|st| {
            st.profiles.insert(profile.key.clone(), profile);
        });
    }

    /// Sets shared attributes from a JSON object (typed per spec 2.12) and pushes the changed
    /// keys, as one flat object, to the device if it is subscribed to
    /// `v1/devices/me/attributes`.
    ///
    /// # Errors
    /// `UnknownDevice`, or `InvalidJson` if `json_object` is not a JSON object.
    pub fn set_shared_attributes(
        &self,
        device: &str,
        json_object: &str,
    ) -> Result<(), DevServerError> {
        let members = parse_object(json_object)?;
        let values = type_object(&members, self.inner.config.typing())
            .map_err(|e| DevServerError::InvalidJson(e.message().into()))?;
        let payload = typed_json(&values);
        self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            for (k, v) in values {
                dev.shared_attrs.insert(k, v);
            }
            push_attr(dev, payload.clone());
            Ok::<(), DevServerError>(())
        })?;
        self.inner
            .logs
            .emit(format!("\"{device}\" shared attributes set: {payload}"));
        Ok(())
    }

    /// Deletes shared attributes and pushes `{"deleted":[...]}` to a subscribed device (even
    /// for keys that did not exist, as ThingsBoard does).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn delete_shared_attributes(
        &self,
        device: &str,
        keys: &[&str],
    ) -> Result<(), DevServerError> {
        let payload = deleted_json(keys);
        self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            for k in keys {
                dev.shared_attrs.remove(*k);
            }
            push_attr(dev, payload.clone());
            Ok::<(), DevServerError>(())
        })?;
        self.inner
            .logs
            .emit(format!("\"{device}\" shared attributes deleted: {payload}"));
        Ok(())
    }

    /// Starts a server-side RPC: `params_json` is any JSON value (lenient). It is published
    /// on `v1/devices/me/rpc/request/{id}` once the device subscribes to
    /// `v1/devices/me/rpc/request/+` (immediately if it is), unless it expires after
    /// `expiry` first. A one-way RPC takes no reply.
    ///
    /// # Errors
    /// `UnknownDevice`, `InvalidJson`.
    pub fn start_rpc(
        &self,
        device: &str,
        method: &str,
        params_json: &str,
        expiry: Duration,
        oneway: bool,
    ) -> Result<RpcCall, DevServerError> {
        let params = parse_lenient(params_json)
            .map_err(|e| DevServerError::InvalidJson(e.0))?
            .to_json();
        let mut payload = String::from("{\"method\":");
        write_json_string(&mut payload, method);
        payload.push_str(",\"params\":");
        payload.push_str(&params);
        payload.push('}');
        let expires_at = Instant::now() + expiry;
        let slot = Arc::new(RpcSlot {
            outcome: Mutex::new(None),
            cv: Condvar::new(),
        });
        let id = self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            let id = dev.rpc_seq;
            dev.rpc_seq = dev.rpc_seq.wrapping_add(1);
            let mut status = RpcStatus::Queued;
            if let Some(link) = dev.session.as_ref().filter(|l| l.rpc_sub) {
                let sent = link.tx.send(SessionCmd::Publish {
                    topic: format!("v1/devices/me/rpc/request/{id}"),
                    payload: Bytes::from(payload.clone()),
                    rpc: Some(id),
                });
                if sent.is_ok() {
                    status = RpcStatus::Sent;
                }
            }
            dev.rpcs.insert(
                id,
                RpcEntry {
                    record: RpcRecord {
                        id,
                        method: method.into(),
                        params: params.clone(),
                        oneway,
                        status,
                        reply: None,
                    },
                    expires_at,
                    slot: slot.clone(),
                },
            );
            Ok::<u32, DevServerError>(id)
        })?;
        self.inner.logs.emit(format!(
            "server RPC {id} to \"{device}\": {payload}{}",
            if oneway { " (one-way)" } else { "" }
        ));
        Ok(RpcCall {
            device: device.into(),
            id,
            expires_at,
            slot,
        })
    }

    /// Sends a two-way server-side RPC and blocks until the reply (its payload text) or
    /// `timeout` (which is also the RPC's expiry).
    ///
    /// # Errors
    /// `UnknownDevice`, `InvalidJson`, `RpcTimeout`.
    pub fn send_rpc(
        &self,
        device: &str,
        method: &str,
        params_json: &str,
        timeout: Duration,
    ) -> Result<String, DevServerError> {
        let call = self.start_rpc(device, method, params_json, timeout, false)?;
        match call.wait(timeout + Duration::from_millis(50)) {
            Some(RpcOutcome::Reply(r)) => Ok(r),
            _ => Err(DevServerError::RpcTimeout {
                device: device.into(),
                id: call.id,
            }),
        }
    }

    /// Server-side RPC records of a device, by id.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn rpc_records(&self, device: &str) -> Result<Vec<RpcRecord>, DevServerError> {
        self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            dev.expire_rpcs(Instant::now());
            Ok(dev.rpcs.values().map(|e| e.record.clone()).collect())
        })
    }

    /// Scripts the reply to client-side RPC `method` (any device): `Some(json)` replies with
    /// that payload at once, `None` removes the entry. The table wins over the handler.
    pub fn set_client_rpc_reply(&self, method: &str, reply_json: Option<&str>) {
        self.inner.update(|st| match reply_json {
            Some(r) => {
                st.client_rpc_replies.insert(method.into(), r.into());
            }
            None => {
                st.client_rpc_replies.remove(method);
            }
        });
    }

    /// Installs (or removes) a function answering client-side RPCs.
    pub fn set_client_rpc_handler(&self, handler: Option<ClientRpcHandler>) {
        *self.inner.rpc_handler.lock() = handler;
    }

    /// Client-side RPC requests a device made (oldest first, last 1000).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn client_rpc_requests(
        &self,
        device: &str,
    ) -> Result<Vec<ClientRpcRecord>, DevServerError> {
        self.with_device(device, |d| d.client_rpcs.iter().cloned().collect())
    }

    /// All stored telemetry of a device, in arrival order.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn telemetry(&self, device: &str) -> Result<Vec<TelemetryPoint>, DevServerError> {
        self.with_device(device, |d| d.telemetry.iter().cloned().collect())
    }

    /// Latest telemetry value per key (highest `ts`; later arrival wins a tie).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn latest_telemetry(
        &self,
        device: &str,
    ) -> Result<BTreeMap<String, TelemetryPoint>, DevServerError> {
        self.with_device(device, |d| d.latest.clone())
    }

    /// Client-scope attributes.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn client_attributes(
        &self,
        device: &str,
    ) -> Result<BTreeMap<String, TbValue>, DevServerError> {
        self.with_device(device, |d| d.client_attrs.clone())
    }

    /// Shared-scope attributes.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn shared_attributes(
        &self,
        device: &str,
    ) -> Result<BTreeMap<String, TbValue>, DevServerError> {
        self.with_device(device, |d| d.shared_attrs.clone())
    }

    /// Claim requests of a device.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn claims(&self, device: &str) -> Result<Vec<Claim>, DevServerError> {
        self.with_device(device, |d| d.claims.clone())
    }

    /// Devices created or handed out by provisioning.
    pub fn provisioned_devices(&self) -> Vec<ProvisionedDevice> {
        self.inner.state.lock().provisioned.clone()
    }

    /// Connection events (last 100,000).
    pub fn connection_events(&self) -> Vec<ConnectionEvent> {
        self.inner.state.lock().events.iter().cloned().collect()
    }

    /// Whether a device has a live session.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn is_connected(&self, device: &str) -> Result<bool, DevServerError> {
        self.with_device(device, |d| d.session.is_some())
    }

    /// Assigns a firmware package to a device, or removes the assignment (`None`), as
    /// ThingsBoard does when a package is set on the device (spec 11.1, 17.41).
    ///
    /// Assigning records telemetry `fw_state = "INITIATED"`, sets the shared attributes
    /// `fw_title`, `fw_version`, `fw_size`, `fw_checksum_algorithm`, `fw_checksum` (computed
    /// here unless the package carries one) and `fw_tag` if the package has a tag, deletes
    /// `fw_tag` (without a tag) and `fw_url`, and, if the device is subscribed to
    /// `v1/devices/me/attributes`, pushes the set values as one object and then
    /// `{"deleted":["fw_tag","fw_url"]}` (`["fw_url"]` with a tag). A new assignment replaces
    /// the old one; a download already running keeps the image its request id started with
    /// (spec 11.2). Removing deletes all nine `fw_*` keys with one `deleted` push; removing
    /// when nothing is assigned does nothing. Returns the `fw_checksum` set (`None` when
    /// removing).
    ///
    /// # Errors
    /// `UnknownDevice`; `InvalidFirmware` for an empty title or version.
    pub fn set_firmware(
        &self,
        device: &str,
        package: Option<FirmwarePackage>,
    ) -> Result<Option<String>, DevServerError> {
        let Some(package) = package else {
            return self.remove_firmware(device);
        };
        for (what, v) in [("title", &package.title), ("version", &package.version)] {
            if v.is_empty() {
                return Err(DevServerError::InvalidFirmware(format!(
                    "the firmware {what} must not be empty"
                )));
            }
        }
        // Hash before taking the store lock: a large image takes a while.
        let checksum = package
            .checksum
            .clone()
            .unwrap_or_else(|| package.checksum_algorithm.checksum(&package.data));
        let (attrs, deleted) = crate::firmware::assignment_attributes(&package, &checksum);
        let set_payload = typed_json(&attrs);
        let deleted_payload = deleted_json(&deleted);
        let ts = now_ms();
        self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            dev.firmware = Some(package.data.clone());
            record_telemetry(
                dev,
                ts,
                "fw_state",
                TbValue::String("INITIATED".into()),
                self.inner.config.max_telemetry_per_device,
            );
            for (k, v) in attrs {
                dev.shared_attrs.insert(k, v);
            }
            for k in &deleted {
                dev.shared_attrs.remove(*k);
            }
            push_attr(dev, set_payload.clone());
            push_attr(dev, deleted_payload.clone());
            Ok::<(), DevServerError>(())
        })?;
        self.inner.logs.emit(format!(
            "\"{device}\" firmware assigned ({} bytes): {set_payload}",
            package.data.len()
        ));
        Ok(Some(checksum))
    }

    fn remove_firmware(&self, device: &str) -> Result<Option<String>, DevServerError> {
        let keys = crate::firmware::ALL_FW_ATTRIBUTE_KEYS;
        let payload = deleted_json(&keys);
        let removed = self.inner.update(|st| {
            let dev = st
                .devices
                .get_mut(device)
                .ok_or_else(|| DevServerError::UnknownDevice(device.into()))?;
            if dev.firmware.take().is_none() {
                return Ok(false);
            }
            for k in keys {
                dev.shared_attrs.remove(k);
            }
            push_attr(dev, payload.clone());
            Ok::<bool, DevServerError>(true)
        })?;
        if removed {
            self.inner
                .logs
                .emit(format!("\"{device}\" firmware unassigned: {payload}"));
        }
        Ok(None)
    }

    /// A stream of the human-readable log lines (one per connection, upload, RPC,
    /// provisioning). Each stream buffers up to 10,000 lines; more are dropped.
    pub fn log_stream(&self) -> LogStream {
        let (tx, rx) = std::sync::mpsc::sync_channel(LOG_STREAM_CAPACITY);
        self.inner.logs.subscribers.lock().push(tx);
        LogStream { rx }
    }

    /// A counter bumped by every change to the store.
    pub fn generation(&self) -> u64 {
        self.inner.state.lock().generation
    }

    /// Blocks until [`generation`](Self::generation) differs from `seen` or `timeout`
    /// passes; returns the current generation. Use it to await stored data without sleeping.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.state.lock();
        while st.generation == seen {
            if self.inner.changed.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.generation
    }

    /// Closes a device's session, as an administrator would (MQTT 5: DISCONNECT 0x98).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn disconnect_device(&self, device: &str) -> Result<bool, DevServerError> {
        self.with_device(device, |d| match &d.session {
            Some(link) => link
                .tx
                .send(SessionCmd::Close {
                    reason: "closed by the server".into(),
                    code: 0x98,
                })
                .is_ok(),
            None => false,
        })
    }
}

/// `{"deleted":[...]}`, the push for deleted shared attributes (spec 17.26).
fn deleted_json(keys: &[&str]) -> String {
    let arr = JVal::Arr(keys.iter().map(|k| JVal::Str((*k).into())).collect());
    format!("{{\"deleted\":{}}}", arr.to_json())
}

/// Stores one telemetry point as an upload would (spec 11.1: the server's own `fw_state`).
fn record_telemetry(dev: &mut Device, ts: i64, key: &str, value: TbValue, cap: usize) {
    let point = TelemetryPoint {
        ts,
        key: key.into(),
        value,
    };
    if dev.latest.get(key).map_or(true, |p| p.ts <= ts) {
        dev.latest.insert(key.into(), point.clone());
    }
    if dev.telemetry.len() >= cap.max(1) {
        dev.telemetry.pop_front();
    }
    dev.telemetry.push_back(point);
}

/// Pushes an attribute notification if the device's session subscribed (spec 2.11, 17.26).
fn push_attr(dev: &Device, payload: String) {
    if let Some(link) = dev.session.as_ref().filter(|l| l.attr_sub) {
        let _ = link.tx.send(SessionCmd::Publish {
            topic: crate::session::ATTRIBUTES_TOPIC.into(),
            payload: Bytes::from(payload),
            rpc: None,
        });
    }
}
