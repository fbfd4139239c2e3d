//! The Python classes of `thingsboard_sdk._engine`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tb_core::{Config, Device, Event, MessageId, Mode, ProvisionOutcome, QoS, RequestId};

use crate::client::{self, Link, Settings, Shared, Want};
use crate::convert;
use crate::errors::{MessageRefusedError, SdkError};
use crate::firmware;
use crate::runtime;
use crate::tls;
use crate::wait::{deadline, secs, SIGNAL_SLICE};

/// Blocks (GIL released) until `done` holds or the deadline passes; Ctrl-C interrupts.
fn block_until<F>(
    py: Python<'_>,
    shared: &Shared,
    want: Want,
    deadline: Option<Instant>,
    mut done: F,
) -> PyResult<bool>
where
    F: FnMut(&mut client::State) -> bool + Send,
{
    loop {
        let ok = crate::detach(py, || {
            client::wait_slice(shared, want, deadline, SIGNAL_SLICE, &mut done)
        });
        if ok {
            return Ok(true);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Moves up to `max` events (including due timeouts) into `taken`; true if any moved.
/// An event for Python: from tb-core, or a firmware outcome from the host.
pub(crate) enum Item {
    Core(Event),
    Firmware(firmware::Note),
    Gateway(tb_core::GatewayEvent),
}

pub(crate) fn drain_events(
    shared: &Shared,
    st: &mut client::State,
    taken: &mut Vec<Item>,
    max: usize,
) -> bool {
    st.core.handle_timeout(runtime::now_ms());
    // A firmware chunk that timed out queues a FAILED report.
    shared.send(st);
    st.in_hub = false;
    let before = taken.len();
    while taken.len() < max {
        match st.firmware_notes.pop_front() {
            Some(n) => taken.push(Item::Firmware(n)),
            None => break,
        }
    }
    while taken.len() < max {
        match st.core.poll_event() {
            Some(ev) => taken.push(Item::Core(ev)),
            None => break,
        }
    }
    while taken.len() < max {
        match st.core.poll_gateway_event() {
            Some(ev) => taken.push(Item::Gateway(ev)),
            None => break,
        }
    }
    // Whatever is left (beyond `max`) keeps the client listed in its hub.
    st.report_to_hub();
    taken.len() > before
}

/// One MQTT session to ThingsBoard (or a provisioning session), driven by tb-core.
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

/// The delivery state of one message accepted by `send_*`.
#[pyclass(module = "thingsboard_sdk._engine", frozen, name = "MessageHandle")]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: MessageId,
}

#[pymethods]
impl Handle {
    /// Waits until the broker acknowledged the message (QoS 1) or it was written (QoS 0).
    ///
    /// Args:
    ///     timeout: seconds to wait at most; None waits as long as it takes.
    ///
    /// Returns:
    ///     True once delivered, False if the timeout ran out first.
    ///
    /// Raises:
    ///     MessageRefusedError: the server refused the message (it closed the connection on
    ///         it again and again, e.g. a message bigger than its maxPayloadSize); the client
    ///         gave it up and went on with the rest of its queue.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let id = self.id;
        let dl = deadline(timeout, "timeout")?;
        let finished = block_until(py, &self.shared, Want::Message(id), dl, move |st| {
            !st.core.is_pending(id)
        })?;
        match self.error() {
            Some(why) if finished => Err(MessageRefusedError::new_err(why)),
            _ => Ok(finished),
        }
    }

    /// tb-mqtt-client's `TBPublishInfo.get()`: waits up to `timeout` seconds for the
    /// acknowledgement.
    ///
    /// Args:
    ///     timeout: seconds to wait at most (None: as long as it takes).
    ///
    /// Returns:
    ///     0 (`TB_ERR_SUCCESS`) once delivered, -1 (`TB_ERR_AGAIN`) if not yet, 9
    ///     (`TB_ERR_PAYLOAD_SIZE`) if the server refused it (see `wait`; `error` says why).
    #[pyo3(signature = (timeout=1.0))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<i32> {
        match self.wait(py, timeout) {
            Ok(true) => Ok(0),
            Ok(false) => Ok(-1),
            Err(e) if e.is_instance_of::<MessageRefusedError>(py) => Ok(TB_ERR_PAYLOAD_SIZE),
            Err(e) => Err(e),
        }
    }

    /// tb-mqtt-client's `TBPublishInfo.rc()`: the result of queueing the message, at once.
    ///
    /// Returns:
    ///     0 (`TB_ERR_SUCCESS`): the message was accepted (a full queue raised `QueueFullError`
    ///     at the send instead). As there, 0 does not mean acknowledged: `get()`/`wait()` do.
    fn rc(&self) -> i32 {
        // Design: a handle exists only for an accepted message, and tb-mqtt-client's rc() is
        // paho's enqueue result (spec: thingsboard-gateway.md B.2), so success is the only answer.
        0
    }

    /// tb-mqtt-client's `TBPublishInfo.mid()`: this message's id in the client.
    ///
    /// Returns:
    ///     An int unique per client; not the MQTT packet id, which a resend may change, and
    ///     one id for all parts of a split message.
    fn mid(&self) -> u64 {
        self.id.0
    }

    /// Whether the message was delivered already.
    #[getter]
    fn done(&self) -> bool {
        let st = self.shared.state.lock();
        !st.core.is_pending(self.id) && st.core.refused(self.id).is_none()
    }

    /// Why the message will never be delivered (the server refused it), or None.
    #[getter]
    fn error(&self) -> Option<String> {
        let st = self.shared.state.lock();
        st.core.refused(self.id).map(client::refusal_text)
    }

    fn __repr__(&self) -> String {
        let state = if self.error().is_some() {
            "refused"
        } else if self.done() {
            "True"
        } else {
            "False"
        };
        format!("<MessageHandle {} done={state}>", self.id.0)
    }
}

/// tb-mqtt-client's `TBPublishInfo.TB_ERR_PAYLOAD_SIZE`.
const TB_ERR_PAYLOAD_SIZE: i32 = 9;

impl Client {
    fn command<F>(&self, f: F) -> Result<MessageId, SdkError>
    where
        F: FnOnce(&mut Device) -> Result<MessageId, tb_core::Error>,
    {
        command_on(&self.shared, f)
    }

    fn handle(&self, id: MessageId) -> Handle {
        Handle {
            shared: self.shared.clone(),
            id,
        }
    }
}

/// Runs a command that queues a message (`f`), stores it in the durable queue when there is
/// one, and pumps. The one path for device and gateway commands alike.
pub(crate) fn command_on<F>(shared: &Shared, f: F) -> Result<MessageId, SdkError>
where
    F: FnOnce(&mut Device) -> Result<MessageId, tb_core::Error>,
{
    let mut st = shared.state.lock();
    let id = f(&mut st.core)?;
    if let Some(q) = &shared.settings.durable {
        let parts = crate::durable::Queue::parts(&st.core, id);
        if !parts.is_empty() {
            // Design: the INSERT runs without the state lock, so the IO task goes on
            // reading PUBACKs and writing what was pumped meanwhile; `durable_hold` stops
            // every pump until the row is written, so nothing is sent unstored (a PUBACK
            // always finds its row) and a failed store can always withdraw the message.
            st.durable_hold += 1;
            drop(st);
            let stored = q.store(id, &parts);
            st = shared.state.lock();
            st.durable_hold -= 1;
            if let Err(why) = stored {
                st.core.withdraw(id);
                shared.send(&mut st);
                return Err(SdkError::Storage(why));
            }
        }
    }
    shared.send(&mut st);
    Ok(id)
}

fn event_to_py(py: Python<'_>, ev: Event) -> PyResult<Py<PyAny>> {
    let t = match ev {
        Event::AttributeUpdate {
            data,
            subscriptions,
        } => {
            let ids: Vec<u32> = subscriptions.iter().map(|s| s.0).collect();
            PyTuple::new(
                py,
                [
                    "attributes".into_pyobject(py)?.into_any().unbind(),
                    convert::map_to_py(py, &data)?,
                    PyList::new(py, ids)?.into_any().unbind(),
                ],
            )?
        }
        Event::AttributeResponse { id, result } => {
            response_tuple(py, "attribute_response", id, result)?
        }
        Event::RpcResponse { id, result } => response_tuple(py, "rpc_response", id, result)?,
        Event::RpcRequest { id, body } => PyTuple::new(
            py,
            [
                "rpc_request".into_pyobject(py)?.into_any().unbind(),
                id.into_pyobject(py)?.into_any().unbind(),
                convert::to_py(py, &body)?,
            ],
        )?,
        Event::ProvisionResponse(outcome) => {
            let (status, msg, resp) = match outcome {
                ProvisionOutcome::Success(m) => ("SUCCESS".to_string(), String::new(), m),
                ProvisionOutcome::Failure {
                    status,
                    error_msg,
                    response,
                } => (status, error_msg, response),
            };
            PyTuple::new(
                py,
                [
                    "provision_response".into_pyobject(py)?.into_any().unbind(),
                    status.into_pyobject(py)?.into_any().unbind(),
                    msg.into_pyobject(py)?.into_any().unbind(),
                    convert::map_to_py(py, &resp)?,
                ],
            )?
        }
        Event::Dropped { topic, reason } => PyTuple::new(
            py,
            [
                "dropped".into_pyobject(py)?.into_any().unbind(),
                topic.into_pyobject(py)?.into_any().unbind(),
                reason.to_string().into_pyobject(py)?.into_any().unbind(),
                matches!(reason, tb_core::PeerError::Echo)
                    .into_pyobject(py)?
                    .to_owned()
                    .into_any()
                    .unbind(),
            ],
        )?,
    };
    Ok(t.into_any().unbind())
}

/// An event as the tuple `tb_device_mqtt` dispatches on.
pub(crate) fn item_to_py(py: Python<'_>, item: Item) -> PyResult<Py<PyAny>> {
    match item {
        Item::Core(ev) => event_to_py(py, ev),
        Item::Firmware(n) => note_to_py(py, n),
        Item::Gateway(ev) => crate::gateway::event_to_py(py, ev),
    }
}

/// A firmware note as the tuple `tb_device_mqtt` dispatches on: `(kind, ...)`.
fn note_to_py(py: Python<'_>, n: firmware::Note) -> PyResult<Py<PyAny>> {
    let t = match n {
        firmware::Note::Started {
            title,
            version,
            size,
        } => ("firmware_started", title, version, size).into_pyobject(py)?,
        firmware::Note::Updated {
            path,
            title,
            version,
            size,
        } => ("firmware_updated", title, version, size, path).into_pyobject(py)?,
        firmware::Note::Failed {
            title,
            version,
            error,
        } => ("firmware_failed", title, version, error).into_pyobject(py)?,
        firmware::Note::Progress { received, total } => {
            ("firmware_progress", received, total).into_pyobject(py)?
        }
    };
    Ok(t.into_any().unbind())
}

fn response_tuple<'py>(
    py: Python<'py>,
    kind: &str,
    id: RequestId,
    result: Result<serde_json::Value, tb_core::TimedOut>,
) -> PyResult<Bound<'py, PyTuple>> {
    let (value, timeout) = convert::response_to_py(py, result)?;
    PyTuple::new(
        py,
        [
            kind.into_pyobject(py)?.into_any().unbind(),
            id.0.into_pyobject(py)?.into_any().unbind(),
            value,
            timeout,
        ],
    )
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (host, port, client_id, *, username=None, password=None, qos=1,
        keepalive=120.0, tls=false, ca_certs=None, cert_file=None, key_file=None,
        tls_verify=true, reconnect=true, reconnect_min_delay=0.1, reconnect_max_delay=0.5,
        max_queued_messages=100_000, max_inflight=64, provisioning=false, chunk_size=0,
        firmware=true, firmware_dir=None, firmware_chunk_timeout=30.0, gateway=false,
        queue_dir=None, session_limits=true, pacing=true, rate_limits=None,
        limits_hold=0.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        host: String,
        port: i64,
        client_id: String,
        username: Option<String>,
        password: Option<String>,
        qos: i64,
        keepalive: f64,
        tls: bool,
        ca_certs: Option<String>,
        cert_file: Option<String>,
        key_file: Option<String>,
        tls_verify: bool,
        reconnect: bool,
        reconnect_min_delay: f64,
        reconnect_max_delay: f64,
        max_queued_messages: i64,
        max_inflight: i64,
        provisioning: bool,
        chunk_size: i64,
        firmware: bool,
        firmware_dir: Option<std::path::PathBuf>,
        firmware_chunk_timeout: f64,
        gateway: bool,
        queue_dir: Option<std::path::PathBuf>,
        session_limits: bool,
        pacing: bool,
        rate_limits: Option<crate::gateway::ManualLimits>,
        limits_hold: f64,
    ) -> PyResult<Client> {
        let limits = rate_limits.map(|l| l.parse()).transpose()?;
        let limits_hold_ms = secs(limits_hold, "limits_hold")?.as_millis() as u64;
        let chunk_size = usize::try_from(chunk_size).map_err(|_| {
            PyValueError::new_err(format!(
                "chunk_size must be 0 or more bytes, got {chunk_size}"
            ))
        })?;
        let chunk_timeout = secs(firmware_chunk_timeout, "firmware_chunk_timeout")?;
        let firmware_dir = match firmware_dir {
            Some(d) => d,
            None => std::env::current_dir().map_err(|e| {
                PyValueError::new_err(format!("cannot read the current folder for firmware: {e}"))
            })?,
        };
        let qos = QoS::from_int(qos).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| PyValueError::new_err(format!("port must be 1..65535, got {port}")))?;
        if host.is_empty() {
            return Err(PyValueError::new_err("host must not be empty"));
        }
        let keepalive = secs(keepalive, "keepalive")?;
        if !keepalive.is_zero() && keepalive < Duration::from_secs(1) {
            return Err(PyValueError::new_err(
                "keepalive must be 0 (off) or at least 1 second",
            ));
        }
        let keepalive = Duration::from_secs(keepalive.as_secs().min(65_535));
        let min_delay = secs(reconnect_min_delay, "reconnect_min_delay")?;
        let max_delay = secs(reconnect_max_delay, "reconnect_max_delay")?.max(min_delay);
        if max_queued_messages < 1 {
            return Err(PyValueError::new_err(format!(
                "max_queued_messages must be at least 1, got {max_queued_messages}"
            )));
        }
        let max_queued = max_queued_messages as usize;
        let max_inflight = u16::try_from(max_inflight)
            .ok()
            .filter(|n| (1..=65_000).contains(n))
            .ok_or_else(|| {
                PyValueError::new_err(format!("max_inflight must be 1..65000, got {max_inflight}"))
            })?;
        let tls_cfg = if tls || ca_certs.is_some() || cert_file.is_some() {
            Some(
                tls::client_config(&tls::TlsOptions {
                    ca_certs,
                    cert_file,
                    key_file,
                    verify: tls_verify,
                })
                .map_err(PyValueError::new_err)?,
            )
        } else {
            None
        };
        let mut core = Device::new(Config {
            qos,
            max_queued,
            mode: if provisioning {
                Mode::Provisioning
            } else if gateway {
                Mode::Gateway
            } else {
                Mode::Device
            },
            firmware: tb_core::FirmwareConfig {
                enabled: firmware && !provisioning,
                chunk_size,
                chunk_timeout_ms: chunk_timeout.as_millis() as u64,
                ..tb_core::FirmwareConfig::default()
            },
            ask_session_limits: session_limits && !provisioning,
            limits_hold_ms,
            limits,
            pace: pacing,
            ..Config::default()
        });
        let settings = Settings {
            host,
            port,
            client_id,
            username,
            password,
            keepalive,
            tls: tls_cfg,
            reconnect,
            min_delay,
            max_delay,
            max_inflight,
            firmware_dir,
            durable: None,
        };
        let mut settings = settings;
        if let Some(dir) = queue_dir {
            let (q, restored) = crate::durable::Queue::open(&dir, &settings.client_id, &mut core)
                .map_err(|e| PyErr::from(SdkError::Storage(e)))?;
            if restored > 0 {
                log::info!(
                    target: client::LOG,
                    "restored {restored} unacknowledged message(s) from {}",
                    dir.display()
                );
            }
            settings.durable = Some(q);
        }
        Ok(Client {
            shared: Shared::new(core, settings),
        })
    }

    /// Connects and waits for the CONNACK. Returns the session-present flag, or None on
    /// failure (the reason is in `last_error`).
    ///
    /// With `wait=False` it only starts the attempt and returns None at once; a later
    /// `connect()` waits for that attempt instead of starting another (`connect_all`).
    #[pyo3(signature = (timeout=10.0, wait=true))]
    fn connect(&self, py: Python<'_>, timeout: f64, wait: bool) -> PyResult<Option<bool>> {
        let t = secs(timeout, "timeout")?;
        let in_progress = {
            let st = self.shared.state.lock();
            if st.ready() {
                return Ok(Some(st.session_present));
            }
            st.link == Link::Connecting || st.link == Link::Up
        };
        if !in_progress && self.shared.start(t).is_err() {
            return Ok(None);
        }
        if !wait {
            return Ok(None);
        }
        let dl = Some(Instant::now() + t);
        let waited = block_until(py, &self.shared, Want::Link, dl, |st| {
            st.link != Link::Connecting && (st.link != Link::Up || st.subscribed)
        });
        let mut st = self.shared.state.lock();
        match waited {
            Err(e) => {
                self.shared.abort(&mut st);
                Err(e)
            }
            Ok(_) => match st.link {
                Link::Up if st.subscribed => Ok(Some(st.session_present)),
                Link::Up => {
                    self.shared.abort(&mut st);
                    st.last_error = Some(format!(
                        "the server did not acknowledge the subscriptions within {:.1} s",
                        t.as_secs_f64()
                    ));
                    Ok(None)
                }
                Link::Connecting if self.shared.settings.reconnect => {
                    // The attempt goes on in the background (it gives up on its own bound and
                    // retries with the backoff); a server that answers later gets what is queued.
                    st.last_error = Some(format!("no CONNACK within {:.1} s", t.as_secs_f64()));
                    Ok(None)
                }
                Link::Connecting => {
                    self.shared.abort(&mut st);
                    st.last_error = Some(format!("no CONNACK within {:.1} s", t.as_secs_f64()));
                    Ok(None)
                }
                // The first attempt failed; with reconnect on, the IO task keeps trying.
                Link::Down => Ok(None),
                _ => {
                    if st.last_error.is_none() {
                        st.last_error = Some("connection failed".into());
                    }
                    self.shared.abort(&mut st);
                    Ok(None)
                }
            },
        }
    }

    /// Waits (bounded) for queued QoS 1 messages, sends DISCONNECT and closes the socket.
    #[pyo3(signature = (flush_timeout=5.0))]
    fn disconnect(&self, py: Python<'_>, flush_timeout: f64) -> PyResult<()> {
        let up = self.shared.state.lock().link == Link::Up;
        if up {
            let dl = Some(Instant::now() + secs(flush_timeout, "flush_timeout")?);
            block_until(py, &self.shared, Want::Flush, dl, |st| {
                st.link != Link::Up || st.core.unacknowledged_qos1() == 0
            })?;
        }
        if self.shared.begin_close() {
            let dl = Some(Instant::now() + Duration::from_secs(2));
            let closed = block_until(py, &self.shared, Want::Link, dl, |st| st.link != Link::Up)?;
            if !closed {
                let mut st = self.shared.state.lock();
                self.shared.abort(&mut st);
            }
        }
        if let Some(q) = &self.shared.settings.durable {
            // Acknowledged messages leave the folder before disconnect() returns.
            crate::detach(py, || q.sync(Duration::from_secs(2)));
            // Lets a client made after this one (here or in another process) open the folder.
            q.release();
        }
        let left = self.shared.state.lock().core.unacknowledged();
        if left > 0 {
            log::warn!(
                target: client::LOG,
                "disconnect(): {left} message(s) not acknowledged by {}:{} stay queued in this \
                 client; a later connect() sends them",
                self.shared.settings.host,
                self.shared.settings.port
            );
        }
        Ok(())
    }

    /// Waits until every accepted QoS 1 message is acknowledged.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let dl = deadline(timeout, "timeout")?;
        block_until(py, &self.shared, Want::Flush, dl, |st| {
            st.core.unacknowledged_qos1() == 0
        })
    }

    fn send_telemetry(&self, data: &Bound<'_, PyAny>) -> PyResult<Handle> {
        let v = convert::to_payload(data, "telemetry", true)?;
        let id = self.command(|d| d.send_telemetry(&v))?;
        Ok(self.handle(id))
    }

    fn send_attributes(&self, data: &Bound<'_, PyAny>) -> PyResult<Handle> {
        let v = convert::to_payload(data, "attributes", false)?;
        let id = self.command(|d| d.send_attributes(&v))?;
        Ok(self.handle(id))
    }

    #[pyo3(signature = (secret_key=None, duration_ms=None))]
    fn claim_device(
        &self,
        secret_key: Option<String>,
        duration_ms: Option<u64>,
    ) -> PyResult<Handle> {
        let id = self.command(|d| d.claim_device(secret_key.as_deref(), duration_ms))?;
        Ok(self.handle(id))
    }

    fn send_rpc_reply(&self, request_id: &str, response: &Bound<'_, PyAny>) -> PyResult<Handle> {
        let v = convert::to_value(response, "RPC reply")?;
        let id = self.command(|d| d.send_rpc_reply(request_id, &v))?;
        Ok(self.handle(id))
    }

    fn request_attributes(
        &self,
        client_keys: Vec<String>,
        shared_keys: Vec<String>,
        timeout: f64,
    ) -> PyResult<u32> {
        let t = secs(timeout, "timeout")?.as_millis() as u64;
        let c: Vec<&str> = client_keys.iter().map(String::as_str).collect();
        let s: Vec<&str> = shared_keys.iter().map(String::as_str).collect();
        let mut st = self.shared.state.lock();
        let id = st
            .core
            .request_attributes(runtime::now_ms(), &c, &s, t)
            .map_err(SdkError::from)?;
        self.shared.send(&mut st);
        Ok(id.0)
    }

    fn send_rpc_call(
        &self,
        method: &str,
        params: &Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<u32> {
        let t = secs(timeout, "timeout")?.as_millis() as u64;
        let v = convert::to_value(params, "RPC params")?;
        let mut st = self.shared.state.lock();
        let id = st
            .core
            .send_rpc_call(runtime::now_ms(), method, &v, t)
            .map_err(SdkError::from)?;
        self.shared.send(&mut st);
        Ok(id.0)
    }

    fn provision(&self, request: &Bound<'_, PyAny>) -> PyResult<Handle> {
        let v = convert::to_payload(request, "provision_request", false)?;
        let id = self.command(|d| d.provision(&v))?;
        Ok(self.handle(id))
    }

    fn subscribe_to_attribute(&self, key: &str) -> u32 {
        self.shared.state.lock().core.subscribe_to_attribute(key).0
    }

    fn unsubscribe_from_attribute(&self, id: u32) -> bool {
        self.shared
            .state
            .lock()
            .core
            .unsubscribe_from_attribute(tb_core::SubscriptionId(id))
    }

    fn clear_subscriptions(&self) {
        self.shared.state.lock().core.clear_subscriptions();
    }

    fn cancel_request(&self, id: u32) {
        self.shared.state.lock().core.cancel_request(RequestId(id));
    }

    fn is_request_pending(&self, id: u32) -> bool {
        self.shared
            .state
            .lock()
            .core
            .is_request_pending(RequestId(id))
    }

    /// Takes up to `max` events. With a timeout, waits (GIL released) until one arrives, a
    /// request deadline passes, or the timeout runs out; `None` waits indefinitely.
    #[pyo3(signature = (timeout=0.0, max=1000))]
    fn poll_events(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        max: usize,
    ) -> PyResult<Py<PyList>> {
        let dl = match timeout {
            Some(t) if t <= 0.0 => Some(Instant::now()),
            other => deadline(other, "timeout")?,
        };
        let mut taken: Vec<Item> = Vec::new();
        {
            let mut st = self.shared.state.lock();
            st.core.handle_timeout(runtime::now_ms());
            self.shared.send(&mut st);
        }
        // A chunk timeout may have ended a firmware download.
        firmware::process(&self.shared);
        drain_events(&self.shared, &mut self.shared.state.lock(), &mut taken, max);
        if taken.is_empty() && dl.is_none_or(|d| d > Instant::now()) {
            loop {
                // Wake at the next request deadline too, so timeouts are delivered on time.
                let next = {
                    let st = self.shared.state.lock();
                    st.core.poll_timeout()
                };
                let wake = next.map(|ms| {
                    let now = runtime::now_ms();
                    Instant::now() + Duration::from_millis(ms.saturating_sub(now))
                });
                let until = match (dl, wake) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let got = crate::detach(py, || {
                    client::wait_slice(&self.shared, Want::Events, until, SIGNAL_SLICE, |st| {
                        drain_events(&self.shared, st, &mut taken, max)
                    })
                });
                if got {
                    break;
                }
                firmware::process(&self.shared);
                py.check_signals()?;
                if dl.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        let list = PyList::empty(py);
        for item in taken {
            list.append(item_to_py(py, item)?)?;
        }
        Ok(list.unbind())
    }

    /// Declares the firmware now running (no telemetry); updates start when the server
    /// offers a different title or version.
    fn set_current_firmware(&self, title: &str, version: &str) {
        self.shared
            .state
            .lock()
            .core
            .set_current_firmware(title, version);
    }

    /// The firmware now running: `(title, version)`.
    #[getter]
    fn current_firmware(&self) -> (String, String) {
        let st = self.shared.state.lock();
        let (t, v) = st.core.current_firmware();
        (t.to_string(), v.to_string())
    }

    /// Reports this client's pending events to `hub` under `key`.
    fn attach_hub(&self, hub: &HubHandle, key: u64) {
        let mut st = self.shared.state.lock();
        st.hub = Some((hub.inner.clone(), key));
        st.in_hub = false;
        st.report_to_hub();
    }

    /// True while an MQTT session is up.
    #[getter]
    fn connected(&self) -> bool {
        self.shared.state.lock().ready()
    }

    /// Link state: "idle", "connecting", "up", "down" (reconnecting) or "failed".
    #[getter]
    fn link(&self) -> &'static str {
        match self.shared.state.lock().link {
            Link::Idle => "idle",
            Link::Connecting => "connecting",
            Link::Up => "up",
            Link::Down => "down",
            Link::Failed => "failed",
        }
    }

    /// Why the last connection attempt failed or the link last dropped.
    #[getter]
    fn last_error(&self) -> Option<String> {
        self.shared.state.lock().last_error.clone()
    }

    /// Connection attempts the server refused so far (CONNACK return code not 0).
    #[getter]
    fn refusals(&self) -> u64 {
        self.shared.state.lock().refusals
    }

    /// The CONNACK return code of the last refused attempt (1-5; 5: not authorised, e.g. a
    /// wrong access token), or None if none was refused.
    #[getter]
    fn last_refusal(&self) -> Option<u8> {
        self.shared.state.lock().last_refusal
    }

    /// MQTT sessions opened so far: grows by one on every connect and reconnect.
    #[getter]
    fn sessions(&self) -> u64 {
        self.shared.state.lock().sessions
    }

    /// Messages queued or awaiting acknowledgement.
    #[getter]
    fn queued(&self) -> usize {
        self.shared.state.lock().core.unacknowledged()
    }
}

/// Where many clients report pending events, so one thread serves them all.
#[pyclass(module = "thingsboard_sdk._engine", frozen, name = "Hub")]
pub struct HubHandle {
    inner: Arc<client::Hub>,
}

#[pymethods]
impl HubHandle {
    #[new]
    fn new() -> HubHandle {
        HubHandle {
            inner: Arc::new(client::Hub::default()),
        }
    }

    /// Waits (GIL released, Ctrl-C interrupts) until a client has events; returns their keys,
    /// or an empty list once `timeout` seconds passed (None: no limit).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Vec<u64>> {
        let dl = deadline(timeout, "timeout")?;
        loop {
            let keys = crate::detach(py, || self.inner.wait(dl, SIGNAL_SLICE));
            if !keys.is_empty() {
                return Ok(keys);
            }
            py.check_signals()?;
            if dl.is_some_and(|d| Instant::now() >= d) {
                return Ok(keys);
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock();
        self.shared.abort(&mut st);
    }
}
