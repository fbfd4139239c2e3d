//! `thingsboard_sdk._engine.DevServer`: a thin binding over the `tb-devserver` crate.
//!
//! Contract: every method may be called from any Python thread. Each call into the server
//! runs with the GIL released (`crate::detach`), because the server's IO tasks log through
//! pyo3-log and so may wait for the GIL while they hold the server's store lock; holding the
//! GIL while waiting for that lock could deadlock. Blocking calls wait in slices of at most
//! [`SIGNAL_SLICE`](crate::wait::SIGNAL_SLICE) and check for Ctrl-C between them. JSON goes in and out as text; the
//! Python wrapper (`thingsboard_sdk.devserver`) converts with `json`. Stored values come out
//! as `(type, value)` with `type` ThingsBoard's name (`LONG`, `DOUBLE`, `BOOLEAN`, `STRING`,
//! `JSON`) and `value` a Python bool/int/float/str (JSON values as their text).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyString};
use tb_devserver::{
    ChecksumAlgorithm, ClientRpcRequest, Config, ConnectionEventKind, Credentials, DevServerError,
    DevServerHandle, DeviceSpec, FirmwarePackage, ProvisionProfile, ProvisionStrategy, RateLimits,
    RpcOutcome, RpcStatus, TbValue, UnknownAlgorithm,
};

use crate::wait::{deadline, secs, slice};

/// `Config::log_scope`: attaches to the interpreter once for a batch of log records. Design:
/// pyo3-log takes the GIL per record, and on a server thread that has no Python thread state
/// each take creates and destroys one (an mmap and munmap); that was three quarters of the
/// server's CPU per QoS 1 telemetry message (`perf record`, benches/devserver_scale.py part 2).
/// Inside the scope pyo3-log's own attach is a nested one and costs almost nothing. When
/// Python's logger drops INFO the batch is skipped after one check: pyo3-log would otherwise
/// call `isEnabledFor` per record (12-15 % of the server's CPU under a gateway's stream).
fn log_scope(forward: &mut dyn FnMut()) {
    // None once Python is exiting (see `Logger` in lib.rs): then no record reaches Python.
    // The scope holds the guard while it is attached, so the exit waits for it to detach.
    if let Some(_scope) = crate::python_scope() {
        if log::log_enabled!(target: tb_devserver::LOG_TARGET, log::Level::Info)
            && Python::try_attach(|py| {
                // The batch is INFO records only: when Python's logger drops INFO, skip it
                // with one check instead of one `isEnabledFor` call per record.
                if python_logs_info(py) {
                    forward();
                }
            })
            .is_some()
        {
            return;
        }
    }
    forward();
}

/// Whether Python's logger for the dev server's records would keep an INFO record (true when
/// that cannot be told, so nothing is dropped by mistake).
fn python_logs_info(py: Python<'_>) -> bool {
    py.import("logging")
        .and_then(|l| l.call_method1("getLogger", (tb_devserver::LOG_TARGET,)))
        .and_then(|l| l.call_method1("isEnabledFor", (20,)))
        .and_then(|r| r.is_truthy())
        .unwrap_or(true)
}

/// The single conversion of the server's errors into Python exceptions.
fn py_err(e: DevServerError) -> PyErr {
    let msg = e.to_string();
    match e {
        DevServerError::Bind { source, .. } => match source.raw_os_error() {
            // OSError(errno, msg) becomes the matching subclass (e.g. OSError with
            // errno EADDRINUSE), so callers can test `exc.errno`.
            Some(code) => PyOSError::new_err((code, msg)),
            None => PyOSError::new_err(msg),
        },
        DevServerError::Runtime(_) => PyRuntimeError::new_err(msg),
        DevServerError::Data(_) => PyOSError::new_err(msg),
        DevServerError::UnknownDevice(_) => PyKeyError::new_err(msg),
        DevServerError::RpcTimeout { .. } => PyTimeoutError::new_err(msg),
        DevServerError::Config(_)
        | DevServerError::DuplicateDevice(_)
        | DevServerError::InvalidCredentials(_)
        | DevServerError::InvalidJson(_)
        | DevServerError::InvalidFirmware(_) => PyValueError::new_err(msg),
    }
}

fn value<'py>(py: Python<'py>, v: &TbValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        TbValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        TbValue::Long(n) => (*n).into_pyobject(py)?.into_any(),
        TbValue::Double(d) => PyFloat::new(py, *d).into_any(),
        TbValue::String(s) | TbValue::Json(s) => PyString::new(py, s).into_any(),
    })
}

/// `(type, value)` of a stored value.
fn typed<'py>(py: Python<'py>, v: &TbValue) -> PyResult<(&'static str, Bound<'py, PyAny>)> {
    Ok((v.type_name(), value(py, v)?))
}

fn credentials_dict<'py>(py: Python<'py>, c: &Credentials) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("type", c.type_name())?;
    match c {
        Credentials::AccessToken(t) => d.set_item("token", t)?,
        Credentials::MqttBasic {
            client_id,
            username,
            password,
        } => {
            d.set_item("client_id", client_id)?;
            d.set_item("username", username)?;
            d.set_item("password", password)?;
        }
        Credentials::X509(hash) => d.set_item("hash", hash)?,
    }
    Ok(d)
}

fn rpc_status(s: RpcStatus) -> &'static str {
    match s {
        RpcStatus::Queued => "QUEUED",
        RpcStatus::Sent => "SENT",
        RpcStatus::Delivered => "DELIVERED",
        RpcStatus::Successful => "SUCCESSFUL",
        RpcStatus::Timeout => "TIMEOUT",
        RpcStatus::Expired => "EXPIRED",
    }
}

fn event_kind(k: ConnectionEventKind) -> &'static str {
    match k {
        ConnectionEventKind::Connected => "connected",
        ConnectionEventKind::ProvisionSession => "provision_session",
        ConnectionEventKind::Refused => "refused",
        ConnectionEventKind::Rejected => "rejected",
        ConnectionEventKind::Disconnected => "disconnected",
    }
}

fn resolve(host: &str, port: u16) -> PyResult<SocketAddr> {
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| PyOSError::new_err(format!("cannot resolve host {host:?}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| PyOSError::new_err(format!("host {host:?} has no address")))
}

/// A serving dev server and the runtime it runs on.
struct Running {
    server: tb_devserver::DevServer,
    runtime: tokio::runtime::Runtime,
}

impl Running {
    /// Closes every connection, then waits (bounded) for the runtime's threads to end.
    fn shutdown(self) {
        self.server.shutdown();
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// An embedded ThingsBoard-compatible MQTT server, started by the constructor.
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct DevServer {
    server: Mutex<Option<Running>>,
    handle: DevServerHandle,
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    /// Set once the server stopped, so log streams stop waiting.
    stopped: Arc<AtomicBool>,
}

impl DevServer {
    /// Runs `f` on the handle with the GIL released.
    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        F: FnOnce(&DevServerHandle) -> Result<T, DevServerError> + Send,
        T: Send,
    {
        let handle = &self.handle;
        crate::detach(py, || f(handle)).map_err(py_err)
    }
}

#[pymethods]
impl DevServer {
    /// Binds `host:port` (port 0: any free port, see `port`) and starts serving.
    ///
    /// Raises:
    ///     OSError: the address cannot be bound (errno EADDRINUSE when the port is in use).
    ///     ValueError: a bad option.
    #[new]
    #[pyo3(signature = (
        host = "127.0.0.1", port = 0, *,
        max_payload_size = 65536,
        inactivity_timeout = 600.0,
        client_rpc_timeout = 60.0,
        rpc_delivery_timeout = 10.0,
        provision_close_delay = 60.0,
        claim_duration_ms = 86_400_000,
        type_cast_enabled = true,
        max_string_value_length = 0,
        send_puback_on_validation_failure = false,
        max_telemetry_per_device = 10_000,
        rate_limits = None,
        telemetry_rate_limits = None,
        telemetry_data_point_rate_limits = None,
        gateway_rate_limits = None,
        gateway_telemetry_rate_limits = None,
        gateway_telemetry_data_point_rate_limits = None,
        worker_threads = 1,
        http_port = None,
        admin_username = "tenant@thingsboard.org",
        admin_password = "tenant",
        data = None,
        tls_cert = None,
        tls_key = None,
        tls_port = 0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        max_payload_size: usize,
        inactivity_timeout: f64,
        client_rpc_timeout: f64,
        rpc_delivery_timeout: f64,
        provision_close_delay: f64,
        claim_duration_ms: i64,
        type_cast_enabled: bool,
        max_string_value_length: usize,
        send_puback_on_validation_failure: bool,
        max_telemetry_per_device: usize,
        rate_limits: Option<String>,
        telemetry_rate_limits: Option<String>,
        telemetry_data_point_rate_limits: Option<String>,
        gateway_rate_limits: Option<String>,
        gateway_telemetry_rate_limits: Option<String>,
        gateway_telemetry_data_point_rate_limits: Option<String>,
        worker_threads: usize,
        http_port: Option<u16>,
        admin_username: &str,
        admin_password: &str,
        data: Option<std::path::PathBuf>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        tls_port: u16,
    ) -> PyResult<Self> {
        if admin_username.is_empty() || admin_password.is_empty() {
            return Err(PyValueError::new_err(
                "admin_username and admin_password must not be empty",
            ));
        }
        let addr = crate::detach(py, || resolve(host, port))?;
        let config = Config {
            host: addr.ip(),
            port: addr.port(),
            max_payload_size,
            max_inflight_messages: 100,
            inactivity_timeout: secs(inactivity_timeout, "inactivity_timeout")?,
            client_rpc_timeout: secs(client_rpc_timeout, "client_rpc_timeout")?,
            rpc_delivery_timeout: secs(rpc_delivery_timeout, "rpc_delivery_timeout")?,
            provision_close_delay: secs(provision_close_delay, "provision_close_delay")?,
            claim_duration_ms,
            type_cast_enabled,
            max_string_value_length,
            send_puback_on_validation_failure,
            rate_limits: RateLimits {
                messages: rate_limits,
                telemetry_messages: telemetry_rate_limits,
                telemetry_data_points: telemetry_data_point_rate_limits,
            },
            gateway_rate_limits: RateLimits {
                messages: gateway_rate_limits,
                telemetry_messages: gateway_telemetry_rate_limits,
                telemetry_data_points: gateway_telemetry_data_point_rate_limits,
            },
            max_telemetry_per_device: max_telemetry_per_device.max(1),
            worker_threads: worker_threads.max(1),
            data,
            tls_cert,
            tls_key,
            tls_port,
            log_scope: Some(log_scope),
            http_port,
            admin: tb_devserver::Login {
                username: admin_username.to_string(),
                password: admin_password.to_string(),
            },
            ..Config::default()
        };
        // Design: the runtime is ours (not `DevServer::start`'s) so that `stop` can wait for
        // its threads to end: once `stop` returns, the listening socket is closed and the
        // port can be bound again.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name("tb-devserver")
            .enable_all()
            .build()
            .map_err(|e| py_err(DevServerError::Runtime(e)))?;
        let server = crate::detach(py, || {
            tb_devserver::DevServer::start_on(runtime.handle().clone(), config)
        })
        .map_err(py_err)?;
        Ok(DevServer {
            handle: server.handle(),
            addr: server.local_addr(),
            http_addr: server.http_addr(),
            tls_addr: server.tls_addr(),
            server: Mutex::new(Some(Running { server, runtime })),
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The bound address, as text.
    #[getter]
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// The bound port (the chosen one when 0 was asked).
    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The HTTP port (REST API, web page), or None without an HTTP listener.
    #[getter]
    fn http_port(&self) -> Option<u16> {
        self.http_addr.map(|a| a.port())
    }

    /// The MQTTS (TLS) port, or None without a TLS listener.
    #[getter]
    fn tls_port(&self) -> Option<u16> {
        self.tls_addr.map(|a| a.port())
    }

    /// Whether the server still serves (`stop` not called yet).
    #[getter]
    fn running(&self) -> bool {
        self.server.lock().is_some()
    }

    /// Stops accepting, closes every connection; the stored data stays readable. Idempotent.
    fn stop(&self, py: Python<'_>) {
        let server = self.server.lock().take();
        if let Some(running) = server {
            crate::detach(py, move || running.shutdown());
        }
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Registers a device: `token` for access-token authentication, `cert_pem` (an X.509
    /// certificate, PEM text) for certificate authentication on the TLS port, otherwise MQTT
    /// basic credentials (`client_id` and/or `username`, optional `password`).
    ///
    /// Raises:
    ///     ValueError: the name exists, or the credentials are taken or invalid.
    #[pyo3(signature = (name, token=None, *, client_id=None, username=None, password=None,
                        gateway=false, profile=None, cert_pem=None))]
    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &self,
        py: Python<'_>,
        name: String,
        token: Option<String>,
        client_id: Option<String>,
        username: Option<String>,
        password: Option<String>,
        gateway: bool,
        profile: Option<String>,
        cert_pem: Option<String>,
    ) -> PyResult<()> {
        let basic = client_id.is_some() || username.is_some() || password.is_some();
        let kinds =
            usize::from(basic) + usize::from(token.is_some()) + usize::from(cert_pem.is_some());
        if kinds > 1 {
            return Err(PyValueError::new_err(format!(
                "device {name:?}: give one of token, cert_pem or MQTT basic credentials"
            )));
        }
        let mut spec = match token {
            _ if cert_pem.is_some() => DeviceSpec {
                name,
                credentials: Credentials::X509(cert_pem.unwrap_or_default()),
                gateway: false,
                profile: None,
            },
            Some(t) if t.is_empty() => {
                return Err(PyValueError::new_err(format!(
                    "device {name:?}: token must not be empty"
                )))
            }
            Some(t) => DeviceSpec::access_token(name, t),
            None => DeviceSpec::mqtt_basic(name, client_id, username, password),
        };
        spec = spec.gateway(gateway);
        if let Some(p) = profile {
            spec = spec.profile(p);
        }
        self.call(py, move |h| h.add_device(spec))
    }

    /// A device's `name`, `id`, `type`, `gateway` flag, `last_connected_gateway` and
    /// `created_by` (gateway names or None), as a dict.
    fn device_info<'py>(&self, py: Python<'py>, device: &str) -> PyResult<Bound<'py, PyDict>> {
        let info = self.call(py, |h| h.device_info(device))?;
        let d = PyDict::new(py);
        d.set_item("name", info.name)?;
        d.set_item("id", info.id.to_string())?;
        d.set_item("type", info.device_type)?;
        d.set_item("gateway", info.gateway)?;
        d.set_item("last_connected_gateway", info.last_connected_gateway)?;
        d.set_item("created_by", info.created_by)?;
        Ok(d)
    }

    /// Names of all devices, sorted.
    fn devices(&self, py: Python<'_>) -> Vec<String> {
        crate::detach(py, || self.handle.devices())
    }

    /// Registers (or replaces) a provisioning profile. `strategy` is
    /// `"ALLOW_CREATE_NEW_DEVICES"` or `"CHECK_PRE_PROVISIONED_DEVICES"`.
    #[pyo3(signature = (key, secret, strategy = "ALLOW_CREATE_NEW_DEVICES"))]
    fn add_provision_profile(
        &self,
        py: Python<'_>,
        key: String,
        secret: String,
        strategy: &str,
    ) -> PyResult<()> {
        let strategy = match strategy {
            "ALLOW_CREATE_NEW_DEVICES" => ProvisionStrategy::AllowCreateNewDevices,
            "CHECK_PRE_PROVISIONED_DEVICES" => ProvisionStrategy::CheckPreProvisionedDevices,
            other => {
                return Err(PyValueError::new_err(format!(
                    "strategy must be ALLOW_CREATE_NEW_DEVICES or \
                     CHECK_PRE_PROVISIONED_DEVICES, got {other:?}"
                )))
            }
        };
        let profile = ProvisionProfile {
            key,
            secret,
            strategy,
        };
        crate::detach(py, || self.handle.add_provision_profile(profile));
        Ok(())
    }

    /// Sets shared attributes from a JSON object (text) and pushes them to the device if it
    /// is subscribed.
    fn set_shared_attributes(&self, py: Python<'_>, device: &str, json: &str) -> PyResult<()> {
        self.call(py, |h| h.set_shared_attributes(device, json))
    }

    /// Deletes shared attributes and pushes `{"deleted": [...]}` to a subscribed device.
    fn delete_shared_attributes(
        &self,
        py: Python<'_>,
        device: &str,
        keys: Vec<String>,
    ) -> PyResult<()> {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.call(py, |h| h.delete_shared_attributes(device, &keys))
    }

    /// Starts a server-side RPC (`params` JSON text) that expires after `expiry` seconds.
    #[pyo3(signature = (device, method, params = "null", expiry = 10.0, oneway = false))]
    fn start_rpc(
        &self,
        py: Python<'_>,
        device: &str,
        method: &str,
        params: &str,
        expiry: f64,
        oneway: bool,
    ) -> PyResult<RpcCall> {
        let expiry = secs(expiry, "expiry")?;
        let call = self.call(py, |h| h.start_rpc(device, method, params, expiry, oneway))?;
        Ok(RpcCall {
            call: Arc::new(call),
        })
    }

    /// Sends a two-way server-side RPC and waits for the reply (its payload text).
    ///
    /// Raises:
    ///     TimeoutError: no reply within `timeout` seconds.
    #[pyo3(signature = (device, method, params = "null", timeout = 10.0))]
    fn send_rpc(
        &self,
        py: Python<'_>,
        device: &str,
        method: &str,
        params: &str,
        timeout: f64,
    ) -> PyResult<String> {
        let call = self.start_rpc(py, device, method, params, timeout, false)?;
        match call.wait(py, None)? {
            Some(reply) => Ok(reply),
            None => Err(PyTimeoutError::new_err(format!(
                "RPC {} to device {device:?} got no reply within {timeout} s",
                call.call.id()
            ))),
        }
    }

    /// Server-side RPC records of a device: dicts with id, method, params (JSON text),
    /// oneway, status (ThingsBoard's RpcStatus name), reply (text or None).
    fn rpc_records<'py>(&self, py: Python<'py>, device: &str) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let records = self.call(py, |h| h.rpc_records(device))?;
        records
            .iter()
            .map(|r| {
                let d = PyDict::new(py);
                d.set_item("id", r.id)?;
                d.set_item("method", &r.method)?;
                d.set_item("params", &r.params)?;
                d.set_item("oneway", r.oneway)?;
                d.set_item("status", rpc_status(r.status))?;
                d.set_item("reply", &r.reply)?;
                Ok(d)
            })
            .collect()
    }

    /// Scripts the reply (JSON text) to client-side RPC `method`; None removes it.
    #[pyo3(signature = (method, reply))]
    fn set_client_rpc_reply(&self, py: Python<'_>, method: &str, reply: Option<&str>) {
        crate::detach(py, || self.handle.set_client_rpc_reply(method, reply));
    }

    /// Installs `handler(device, id, method, params_json) -> str | None` for client-side
    /// RPCs (None removes it). It runs on a server thread; an exception in it is printed
    /// and the request gets the default answer.
    #[pyo3(signature = (handler))]
    fn set_client_rpc_handler(&self, py: Python<'_>, handler: Option<Py<PyAny>>) {
        let handler = handler.map(|h| {
            let h = Arc::new(h);
            let f: tb_devserver::ClientRpcHandler = Arc::new(move |req: &ClientRpcRequest| {
                // During interpreter shutdown the request gets the default answer; the guard
                // makes the exit wait (bounded) for a handler under way.
                let _scope = crate::python_scope()?;
                Python::try_attach(|py| {
                    let args = (&req.device, req.id, &req.method, &req.params);
                    match h.call1(py, args) {
                        Ok(r) if r.is_none(py) => None,
                        Ok(r) => match r.extract::<String>(py) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                e.print(py);
                                None
                            }
                        },
                        Err(e) => {
                            e.print(py);
                            None
                        }
                    }
                })
                .flatten()
            });
            f
        });
        crate::detach(py, || self.handle.set_client_rpc_handler(handler));
    }

    /// Client-side RPC requests of a device: (ts, id, method, params JSON, reply JSON|None).
    #[allow(clippy::type_complexity)]
    fn client_rpc_requests(
        &self,
        py: Python<'_>,
        device: &str,
    ) -> PyResult<Vec<(i64, i32, String, String, Option<String>)>> {
        let recs = self.call(py, |h| h.client_rpc_requests(device))?;
        Ok(recs
            .into_iter()
            .map(|r| (r.ts, r.id, r.method, r.params, r.reply))
            .collect())
    }

    /// Stored telemetry in arrival order: (ts, key, type, value).
    #[allow(clippy::type_complexity)]
    fn telemetry<'py>(
        &self,
        py: Python<'py>,
        device: &str,
    ) -> PyResult<Vec<(i64, String, &'static str, Bound<'py, PyAny>)>> {
        let points = self.call(py, |h| h.telemetry(device))?;
        points
            .into_iter()
            .map(|p| Ok((p.ts, p.key, p.value.type_name(), value(py, &p.value)?)))
            .collect()
    }

    /// Latest telemetry per key: {key: (ts, type, value)}.
    fn latest_telemetry<'py>(&self, py: Python<'py>, device: &str) -> PyResult<Bound<'py, PyDict>> {
        let latest = self.call(py, |h| h.latest_telemetry(device))?;
        let d = PyDict::new(py);
        for (k, p) in latest {
            d.set_item(k, (p.ts, p.value.type_name(), value(py, &p.value)?))?;
        }
        Ok(d)
    }

    /// Client-scope attributes: {key: (type, value)}.
    fn client_attributes<'py>(
        &self,
        py: Python<'py>,
        device: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let attrs = self.call(py, |h| h.client_attributes(device))?;
        let d = PyDict::new(py);
        for (k, v) in attrs {
            d.set_item(k, typed(py, &v)?)?;
        }
        Ok(d)
    }

    /// Shared-scope attributes: {key: (type, value)}.
    fn shared_attributes<'py>(
        &self,
        py: Python<'py>,
        device: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let attrs = self.call(py, |h| h.shared_attributes(device))?;
        let d = PyDict::new(py);
        for (k, v) in attrs {
            d.set_item(k, typed(py, &v)?)?;
        }
        Ok(d)
    }

    /// Claim requests of a device: (ts, secret_key, duration_ms).
    fn claims(&self, py: Python<'_>, device: &str) -> PyResult<Vec<(i64, String, i64)>> {
        let claims = self.call(py, |h| h.claims(device))?;
        Ok(claims
            .into_iter()
            .map(|c| (c.ts, c.secret_key, c.duration_ms))
            .collect())
    }

    /// Devices created or handed out by provisioning: dicts with ts, name, profile_key,
    /// credentials (dict with `type` and its fields), gateway.
    fn provisioned_devices<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let devices = crate::detach(py, || self.handle.provisioned_devices());
        devices
            .iter()
            .map(|p| {
                let d = PyDict::new(py);
                d.set_item("ts", p.ts)?;
                d.set_item("name", &p.name)?;
                d.set_item("profile_key", &p.profile_key)?;
                d.set_item("credentials", credentials_dict(py, &p.credentials)?)?;
                d.set_item("gateway", p.gateway)?;
                Ok(d)
            })
            .collect()
    }

    /// Connection events, oldest first: dicts with ts, conn_id, peer, kind, device,
    /// client_id, version, return_code, reason.
    fn connection_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let events = crate::detach(py, || self.handle.connection_events());
        events
            .iter()
            .map(|e| {
                let d = PyDict::new(py);
                d.set_item("ts", e.ts)?;
                d.set_item("conn_id", e.conn_id)?;
                d.set_item("peer", e.peer.to_string())?;
                d.set_item("kind", event_kind(e.kind))?;
                d.set_item("device", &e.device)?;
                d.set_item("client_id", &e.client_id)?;
                d.set_item("version", e.version.map(|v| v.as_str()))?;
                d.set_item("return_code", e.return_code)?;
                d.set_item("reason", &e.reason)?;
                Ok(d)
            })
            .collect()
    }

    /// Whether a device has a live session.
    fn is_connected(&self, py: Python<'_>, device: &str) -> PyResult<bool> {
        self.call(py, |h| h.is_connected(device))
    }

    /// Closes a device's session as an administrator would; False if it had none.
    fn disconnect_device(&self, py: Python<'_>, device: &str) -> PyResult<bool> {
        self.call(py, |h| h.disconnect_device(device))
    }

    /// Assigns a firmware package (spec 11.1): sets and pushes the `fw_*` shared attributes
    /// and serves `data` on `v2/fw/request/...`; returns `fw_checksum`. `data=None` removes
    /// the assignment (returns None). `algorithm` is ThingsBoard's name (any case);
    /// `checksum` overrides the computed one.
    #[pyo3(signature = (device, data=None, title="", version="", algorithm="SHA256", checksum=None, tag=None))]
    #[allow(clippy::too_many_arguments)]
    fn set_firmware(
        &self,
        py: Python<'_>,
        device: &str,
        data: Option<&Bound<'_, PyBytes>>,
        title: &str,
        version: &str,
        algorithm: &str,
        checksum: Option<String>,
        tag: Option<String>,
    ) -> PyResult<Option<String>> {
        let algorithm: ChecksumAlgorithm = algorithm
            .parse()
            .map_err(|e: UnknownAlgorithm| PyValueError::new_err(e.to_string()))?;
        let package = data.map(|d| FirmwarePackage {
            title: title.into(),
            version: version.into(),
            data: bytes::Bytes::copy_from_slice(d.as_bytes()),
            checksum_algorithm: algorithm,
            checksum,
            tag,
        });
        self.call(py, |h| h.set_firmware(device, package))
    }

    /// A new stream of the human-readable log lines (from now on).
    fn log_stream(&self, py: Python<'_>) -> LogStream {
        let stream = crate::detach(py, || self.handle.log_stream());
        LogStream {
            rx: Arc::new(Mutex::new(stream)),
            stopped: self.stopped.clone(),
        }
    }

    /// With `data`: waits until every change made so far is committed to the database or
    /// `timeout` seconds pass (None: no limit); True if it is. Ctrl-C interrupts.
    #[pyo3(signature = (timeout = None))]
    fn sync(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let dl = deadline(timeout, "timeout")?;
        loop {
            let s = slice(dl);
            if crate::detach(py, || self.handle.sync(s)) {
                return Ok(true);
            }
            if dl.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            py.check_signals()?;
        }
    }

    /// A counter bumped by every change to the store.
    fn generation(&self, py: Python<'_>) -> u64 {
        crate::detach(py, || self.handle.generation())
    }

    /// Waits until `generation()` differs from `seen` or `timeout` seconds pass (None: no
    /// limit); returns the current generation. Ctrl-C interrupts.
    #[pyo3(signature = (seen, timeout = None))]
    fn wait_for_change(&self, py: Python<'_>, seen: u64, timeout: Option<f64>) -> PyResult<u64> {
        let dl = deadline(timeout, "timeout")?;
        loop {
            let s = slice(dl);
            let g = crate::detach(py, || self.handle.wait_for_change(seen, s));
            if g != seen || dl.is_some_and(|d| Instant::now() >= d) {
                return Ok(g);
            }
            py.check_signals()?;
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<DevServer {} {}>",
            self.addr,
            if self.running() { "running" } else { "stopped" }
        )
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        // Shutting down waits (bounded) for sessions that may log through pyo3-log, which
        // needs the GIL: release it meanwhile. During interpreter shutdown drop as is.
        if let Some(running) = self.server.get_mut().take() {
            let mut slot = Some(running);
            let _ = Python::try_attach(|py| {
                if let Some(running) = slot.take() {
                    crate::detach(py, move || running.shutdown());
                }
            });
            if let Some(running) = slot {
                running.shutdown();
            }
        }
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// A pending server-side RPC, from `DevServer.start_rpc`.
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct RpcCall {
    call: Arc<tb_devserver::RpcCall>,
}

#[pymethods]
impl RpcCall {
    /// Per-device RPC id (the `{id}` of `v1/devices/me/rpc/request/{id}`).
    #[getter]
    fn id(&self) -> u32 {
        self.call.id()
    }

    /// Device name.
    #[getter]
    fn device(&self) -> String {
        self.call.device().to_owned()
    }

    /// Waits for the reply: its payload text; None if still pending after `timeout`
    /// seconds (None: until the RPC expires).
    ///
    /// Raises:
    ///     TimeoutError: the RPC expired without a reply.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let dl = deadline(timeout, "timeout")?;
        loop {
            let s = slice(dl);
            let call = &self.call;
            match crate::detach(py, || call.wait(s)) {
                Some(RpcOutcome::Reply(r)) => return Ok(Some(r)),
                Some(RpcOutcome::Expired) => {
                    return Err(PyTimeoutError::new_err(format!(
                        "RPC {} to device {:?} expired without a reply",
                        call.id(),
                        call.device()
                    )))
                }
                None => {}
            }
            if dl.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    fn __repr__(&self) -> String {
        format!("<RpcCall {} to {:?}>", self.call.id(), self.call.device())
    }
}

/// Lines of the dev server's human-readable log, from `DevServer.log_stream`.
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct LogStream {
    rx: Arc<Mutex<tb_devserver::LogStream>>,
    stopped: Arc<AtomicBool>,
}

#[pymethods]
impl LogStream {
    /// The next line, waiting up to `timeout` seconds (None: no limit); None on timeout or
    /// once the server stopped. Ctrl-C interrupts.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let dl = deadline(timeout, "timeout")?;
        loop {
            let s = slice(dl);
            let rx = &self.rx;
            if let Some(line) = crate::detach(py, || rx.lock().recv_timeout(s)) {
                return Ok(Some(line));
            }
            if self.stopped.load(Ordering::SeqCst) {
                // lines logged while stopping are still buffered
                return Ok(crate::detach(py, || rx.lock().try_recv()));
            }
            if dl.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// The next line if one is ready, else None.
    fn try_recv(&self, py: Python<'_>) -> Option<String> {
        crate::detach(py, || self.rx.lock().try_recv())
    }
}

/// Writes a CA, a server certificate for `localhost`/`127.0.0.1` and a device certificate
/// (PEM) to folder `dir`, or keeps them if all are there; returns their paths by role
/// (`ca_cert`, `ca_key`, `server_cert`, `server_key`, `device_cert`, `device_key`).
///
/// Raises:
///     ValueError: they cannot be made or written.
#[pyfunction]
pub fn write_self_signed(py: Python<'_>, dir: std::path::PathBuf) -> PyResult<Bound<'_, PyDict>> {
    let files = crate::detach(py, || tb_devserver::write_self_signed(&dir)).map_err(py_err)?;
    let d = PyDict::new(py);
    for (k, v) in [
        ("ca_cert", &files.ca_cert),
        ("ca_key", &files.ca_key),
        ("server_cert", &files.server_cert),
        ("server_key", &files.server_key),
        ("device_cert", &files.device_cert),
        ("device_key", &files.device_key),
    ] {
        d.set_item(k, v.to_string_lossy())?;
    }
    Ok(d)
}
