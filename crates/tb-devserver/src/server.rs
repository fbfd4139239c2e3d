//! The public server object and its thread-safe handle: the Rust (and, through the binding,
//! Python) API over the feature modules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::DevServerError;
use crate::features::rpc::{ClientRpcHandler, RpcCall};
use crate::features::{attributes, devices, firmware, rpc};
use crate::json::{parse_lenient, JVal};
use crate::log::LogStream;
use crate::ratelimit::{Limits, RateLimitSpec};
use crate::shared::Shared;
use crate::store::*;
use crate::value::{type_object, TbValue};

/// A running dev server. Dropping it shuts it down. Dereferences to its
/// [`DevServerHandle`], so every handle method is available on it.
pub struct DevServer {
    handle: DevServerHandle,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
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
        let limits = Limits {
            device: RateLimitSpec::parse_all(&config.rate_limits)?,
            gateway: RateLimitSpec::parse_all(&config.gateway_rate_limits)?,
        };
        let addr = SocketAddr::new(config.host, config.port);
        let listener = bind(&runtime, addr)?;
        let local = listener
            .local_addr()
            .map_err(|source| DevServerError::Bind { addr, source })?;
        let http = match config.http_port {
            Some(port) => {
                let addr = SocketAddr::new(config.host, port);
                let l = bind(&runtime, addr)?;
                let local = l
                    .local_addr()
                    .map_err(|source| DevServerError::Bind { addr, source })?;
                Some((l, local))
            }
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls_cert.is_some() || config.tls_key.is_some() {
            return Err(DevServerError::Config(
                "TLS is not available: tb-devserver was built without its `tls` feature".into(),
            ));
        }
        #[cfg(feature = "tls")]
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let acceptor = crate::net::tls::acceptor(cert, key)?;
                let addr = SocketAddr::new(config.host, config.tls_port);
                let l = bind(&runtime, addr)?;
                let local = l
                    .local_addr()
                    .map_err(|source| DevServerError::Bind { addr, source })?;
                Some((l, acceptor, local))
            }
            (None, None) => None,
            _ => {
                return Err(DevServerError::Config(
                    "TLS needs both a certificate and a key file".into(),
                ))
            }
        };
        #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
        let mut store = Store::default();
        let persistence = match &config.data {
            #[cfg(feature = "sqlite")]
            Some(dir) => Some(
                crate::store::sqlite::open(dir, &mut store, config.max_telemetry_per_device)
                    .map_err(DevServerError::Data)?,
            ),
            #[cfg(not(feature = "sqlite"))]
            Some(_) => {
                return Err(DevServerError::Data(
                    "persistence is not available: tb-devserver was built without its \
                     `sqlite` feature"
                        .into(),
                ))
            }
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, limits, shutdown, store, persistence));
        runtime.spawn(crate::net::mqtt::accept_loop(
            shared.clone(),
            listener,
            shutdown_rx.clone(),
        ));
        shared.logs.emit(format!("dev server listening on {local}"));
        #[cfg(not(feature = "tls"))]
        let tls_addr = None;
        #[cfg(feature = "tls")]
        let tls_addr = tls.map(|(l, acceptor, tls_local)| {
            runtime.spawn(crate::net::tls::accept_loop(
                shared.clone(),
                l,
                acceptor,
                shutdown_rx.clone(),
            ));
            shared
                .logs
                .emit(format!("dev server MQTTS (TLS) listening on {tls_local}"));
            tls_local
        });
        let http_addr = http.map(|(l, http_local)| {
            runtime.spawn(crate::net::http::serve(shared.clone(), l, shutdown_rx));
            shared.logs.emit(format!(
                "dev server HTTP (REST API, web page) on http://{http_local}/"
            ));
            http_local
        });
        if let Some(p) = &shared.persistence {
            let st = shared.state.lock();
            shared.logs.emit(format!(
                "data in {} ({} devices)",
                p.path.display(),
                st.store.devices.len()
            ));
        }
        Ok(DevServer {
            handle: DevServerHandle { shared },
            addr: local,
            http_addr,
            tls_addr,
            runtime: Mutex::new(None),
        })
    }

    /// The bound address (with the chosen port when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP listener's address (REST API, web page), if [`Config::http_port`] was set.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The MQTTS listener's address, if [`Config::tls_cert`] and [`Config::tls_key`] were set.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// A clonable, thread-safe handle to the store and commands.
    pub fn handle(&self) -> DevServerHandle {
        self.handle.clone()
    }

    /// Stops accepting, closes every connection and stops the runtime this server created.
    /// Idempotent; waits at most about one second.
    pub fn shutdown(&self) {
        let shared = &self.handle.shared;
        if shared.shutdown.send_replace(true) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while shared.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
        // Dropping the journal closes the writer's channel; it commits what it has and ends.
        let journal = shared.state.lock().store.journal.take();
        drop(journal);
        if let Some(p) = &shared.persistence {
            p.finish();
        }
        shared.logs.emit("dev server stopped".into());
        shared.logs.close_streams();
    }
}

/// Binds a listening socket on `addr` and registers it with `runtime`.
fn bind(runtime: &Handle, addr: SocketAddr) -> Result<tokio::net::TcpListener, DevServerError> {
    let err = |source| DevServerError::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(err)?;
    std_listener.set_nonblocking(true).map_err(err)?;
    let _guard = runtime.enter();
    tokio::net::TcpListener::from_std(std_listener).map_err(err)
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

/// Thread-safe handle: every method may be called from any thread; blocking methods take a
/// timeout. Cheap to clone.
#[derive(Clone)]
pub struct DevServerHandle {
    pub(crate) shared: Arc<Shared>,
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

fn plain(attrs: &Attributes) -> BTreeMap<String, TbValue> {
    attrs
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect()
}

impl DevServerHandle {
    fn with_device<R>(
        &self,
        name: &str,
        f: impl FnOnce(&Device) -> R,
    ) -> Result<R, DevServerError> {
        let st = self.shared.state.lock();
        st.store
            .devices
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
        devices::add(&self.shared, spec).map(|_| ())
    }

    /// Deletes a device, as ThingsBoard does: its session is closed and its credentials are
    /// refused from then on.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn delete_device(&self, name: &str) -> Result<(), DevServerError> {
        devices::remove(&self.shared, name)
    }

    /// A device's id, type, gateway flag and the gateways that created and last connected it
    /// (what ThingsBoard's REST API shows, thingsboard-gateway.md A.3).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn device_info(&self, device: &str) -> Result<crate::DeviceInfo, DevServerError> {
        devices::info(&self.shared, device)
    }

    /// Names of all devices, sorted.
    pub fn devices(&self) -> Vec<String> {
        devices::names(&self.shared)
    }

    /// Registers (or replaces) a provisioning profile.
    pub fn add_provision_profile(&self, profile: ProvisionProfile) {
        self.shared.update(|st| st.store.put_profile(profile));
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
        let values = type_object(&members, self.shared.config.typing())
            .map_err(|e| DevServerError::InvalidJson(e.message().into()))?;
        attributes::save_user(&self.shared, device, AttributeScope::Shared, values).map(|_| ())
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
        attributes::delete(&self.shared, device, AttributeScope::Shared, keys)
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
        rpc::start(&self.shared, device, method, params_json, expiry, oneway)
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
                id: call.id(),
            }),
        }
    }

    /// Server-side RPC records of a device, by id.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn rpc_records(&self, device: &str) -> Result<Vec<RpcRecord>, DevServerError> {
        rpc::records(&self.shared, device)
    }

    /// Scripts the reply to client-side RPC `method` (any device): `Some(json)` replies with
    /// that payload at once, `None` removes the entry. The table wins over the handler.
    pub fn set_client_rpc_reply(&self, method: &str, reply_json: Option<&str>) {
        self.shared.update(|st| match reply_json {
            Some(r) => {
                st.store.client_rpc_replies.insert(method.into(), r.into());
            }
            None => {
                st.store.client_rpc_replies.remove(method);
            }
        });
    }

    /// Installs (or removes) a function answering client-side RPCs.
    pub fn set_client_rpc_handler(&self, handler: Option<ClientRpcHandler>) {
        *self.shared.rpc_handler.lock() = handler;
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
        self.with_device(device, |d| plain(&d.client_attrs))
    }

    /// Shared-scope attributes.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn shared_attributes(
        &self,
        device: &str,
    ) -> Result<BTreeMap<String, TbValue>, DevServerError> {
        self.with_device(device, |d| plain(&d.shared_attrs))
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
        self.shared.state.lock().store.provisioned.clone()
    }

    /// Connection events (last 100,000).
    pub fn connection_events(&self) -> Vec<ConnectionEvent> {
        self.shared
            .state
            .lock()
            .store
            .events
            .iter()
            .cloned()
            .collect()
    }

    /// Whether a device has a live session.
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn is_connected(&self, device: &str) -> Result<bool, DevServerError> {
        devices::is_connected(&self.shared, device)
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
        match package {
            Some(p) => firmware::assign(&self.shared, device, &p, None).map(Some),
            None => firmware::unassign(&self.shared, device).map(|_| None),
        }
    }

    /// A stream of the human-readable log lines (one per connection, upload, RPC,
    /// provisioning). Each stream buffers up to 10,000 lines; more are dropped.
    pub fn log_stream(&self) -> LogStream {
        self.shared.logs.subscribe()
    }

    /// With [`Config::data`]: blocks until every change made so far is committed to the
    /// database, or `timeout` passes; `true` if it is (always `true` without `data`).
    pub fn sync(&self, timeout: Duration) -> bool {
        self.shared
            .durability()
            .map_or(true, |d| d.wait_blocking(timeout))
    }

    /// A counter bumped by every change to the store.
    pub fn generation(&self) -> u64 {
        self.shared.state.lock().store.generation
    }

    /// Blocks until [`generation`](Self::generation) differs from `seen` or `timeout`
    /// passes; returns the current generation. Use it to await stored data without sleeping.
    pub fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock();
        while st.store.generation == seen {
            if self
                .shared
                .changed
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                break;
            }
        }
        st.store.generation
    }

    /// Closes a device's session, as an administrator would (MQTT 5: DISCONNECT 0x98).
    ///
    /// # Errors
    /// `UnknownDevice`.
    pub fn disconnect_device(&self, device: &str) -> Result<bool, DevServerError> {
        devices::disconnect(&self.shared, device)
    }
}
