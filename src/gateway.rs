//! The Gateway MQTT API for Python: `_engine.Gateway(client)` queues sub-device messages on a
//! client created with `gateway=True`; every rule is tb-core's (`tb_core::gateway`), this file
//! only converts arguments and events.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tb_core::limits::LimitSet;
use tb_core::{GatewayEvent, MessageId, QoS, RateLimit, SessionLimits, SubscriptionId};

use crate::client::Shared;
use crate::convert;
use crate::errors::SdkError;
use crate::py::{Client, Handle};
use crate::runtime;

/// Limits set by hand (host extras): rate-limit strings as ThingsBoard writes them
/// (`"100:1,3000:60"`) and the packet size bound. Given, the server is not asked.
#[derive(FromPyObject)]
pub struct ManualLimits {
    #[pyo3(item)]
    messages: Option<String>,
    #[pyo3(item)]
    telemetry_messages: Option<String>,
    #[pyo3(item)]
    telemetry_data_points: Option<String>,
    #[pyo3(item)]
    gateway_messages: Option<String>,
    #[pyo3(item)]
    gateway_telemetry_messages: Option<String>,
    #[pyo3(item)]
    gateway_telemetry_data_points: Option<String>,
    #[pyo3(item)]
    max_payload_size: Option<usize>,
}

impl ManualLimits {
    pub(crate) fn parse(self) -> PyResult<SessionLimits> {
        let one = |name: &str, v: &Option<String>| -> PyResult<Option<RateLimit>> {
            match v {
                None => Ok(None),
                Some(text) => RateLimit::parse(text)
                    .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{name}: {e}"))),
            }
        };
        Ok(SessionLimits {
            max_payload_size: self.max_payload_size,
            max_inflight_messages: None,
            device: LimitSet {
                messages: one("messages_rate_limit", &self.messages)?,
                telemetry_messages: one("telemetry_rate_limit", &self.telemetry_messages)?,
                telemetry_data_points: one("telemetry_dp_rate_limit", &self.telemetry_data_points)?,
            },
            gateway: LimitSet {
                messages: one("device_messages_rate_limit", &self.gateway_messages)?,
                telemetry_messages: one(
                    "device_telemetry_rate_limit",
                    &self.gateway_telemetry_messages,
                )?,
                telemetry_data_points: one(
                    "device_telemetry_dp_rate_limit",
                    &self.gateway_telemetry_data_points,
                )?,
            },
        })
    }
}

/// Sub-device commands of a gateway session (thingsboard-gateway.md, Part A).
#[pyclass(module = "thingsboard_sdk._engine", frozen)]
pub struct Gateway {
    shared: Arc<Shared>,
}

/// An upload's `quality_of_service` as tb-mqtt-client takes it: 0 or 1, or None for the
/// session's QoS. Anything else is a ValueError naming the value, checked with the data.
pub enum QosArg {
    Session,
    Given(QoS),
    Bad(String),
}

impl<'py> FromPyObject<'py> for QosArg {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if ob.is_none() {
            return Ok(QosArg::Session);
        }
        if ob.downcast::<pyo3::types::PyInt>().is_ok() {
            if let Ok(Ok(q)) = ob.extract::<i64>().map(QoS::from_int) {
                return Ok(QosArg::Given(q));
            }
        }
        Ok(QosArg::Bad(
            ob.repr().map_or_else(|_| "?".into(), |r| r.to_string()),
        ))
    }
}

/// A sub-device name: a str, else a TypeError naming the argument (as the Python methods do).
fn device_arg<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, str>> {
    match ob.downcast::<pyo3::types::PyString>() {
        Ok(s) => Ok(s.to_cow()?),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "device must be a str, got {} {}",
            ob.get_type()
                .name()
                .map_or_else(|_| "object".into(), |n| n.to_string()),
            ob.repr().map_or_else(|_| "?".into(), |r| r.to_string())
        ))),
    }
}

impl QosArg {
    fn resolve(self, shared: &Shared) -> PyResult<QoS> {
        match self {
            QosArg::Session => Ok(shared.state.lock().core.config().qos),
            QosArg::Given(q) => Ok(q),
            QosArg::Bad(repr) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "quality_of_service must be 0 or 1, got {repr}"
            ))),
        }
    }
}

fn qos(n: i64) -> PyResult<QoS> {
    QoS::from_int(n).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
}

impl Gateway {
    fn command<F>(&self, f: F) -> PyResult<Handle>
    where
        F: FnOnce(&mut tb_core::Device) -> Result<MessageId, tb_core::Error>,
    {
        // The device's path: the durable queue (`queue_dir`) stores sub-device messages too.
        let id = crate::py::command_on(&self.shared, f)?;
        Ok(Handle {
            shared: self.shared.clone(),
            id,
        })
    }
}

#[pymethods]
impl Gateway {
    #[new]
    fn new(client: &Client) -> Gateway {
        Gateway {
            shared: client.shared.clone(),
        }
    }

    #[pyo3(signature = (device, device_type, qos=1))]
    fn connect_device(&self, device: &str, device_type: &str, qos: i64) -> PyResult<Handle> {
        let q = self::qos(qos)?;
        self.command(|d| d.gw_connect_device(device, device_type, q))
    }

    #[pyo3(signature = (device, qos=1))]
    fn disconnect_device(&self, device: &str, qos: i64) -> PyResult<Handle> {
        let q = self::qos(qos)?;
        self.command(|d| d.gw_disconnect_device(device, q))
    }

    // Design: tb-mqtt-client's parameter names, so that TBGatewayMqttClient can hand these
    // out as its gw_send_* methods with no Python frame in between (the hot path).
    #[pyo3(
        signature = (device, telemetry, quality_of_service=QosArg::Given(QoS::AtLeastOnce)),
        text_signature = "(self, device, telemetry, quality_of_service=1)"
    )]
    fn send_telemetry(
        &self,
        device: &Bound<'_, PyAny>,
        telemetry: &Bound<'_, PyAny>,
        quality_of_service: QosArg,
    ) -> PyResult<Handle> {
        let device = device_arg(device)?;
        let q = quality_of_service.resolve(&self.shared)?;
        let v = convert::to_payload(telemetry, "telemetry", true)?;
        self.command(|d| d.gw_send_telemetry(&device, &v, q))
    }

    #[pyo3(
        signature = (device, attributes, quality_of_service=QosArg::Given(QoS::AtLeastOnce)),
        text_signature = "(self, device, attributes, quality_of_service=1)"
    )]
    fn send_attributes(
        &self,
        device: &Bound<'_, PyAny>,
        attributes: &Bound<'_, PyAny>,
        quality_of_service: QosArg,
    ) -> PyResult<Handle> {
        let device = device_arg(device)?;
        let q = quality_of_service.resolve(&self.shared)?;
        let v = convert::to_payload(attributes, "attributes", false)?;
        self.command(|d| d.gw_send_attributes(&device, &v, q))
    }

    fn request_attributes(
        &self,
        device: &str,
        keys: Vec<String>,
        client: bool,
        timeout: f64,
    ) -> PyResult<u32> {
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {timeout}"
            )));
        }
        let k: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut st = self.shared.state.lock();
        let id = st
            .core
            .gw_request_attributes(
                runtime::now_ms(),
                device,
                &k,
                client,
                (timeout * 1000.0) as u64,
            )
            .map_err(SdkError::from)?;
        self.shared.send(&mut st);
        Ok(id.0)
    }

    #[pyo3(signature = (device, request_id, response, qos=1))]
    fn send_rpc_reply(
        &self,
        device: &str,
        request_id: i64,
        response: &Bound<'_, PyAny>,
        qos: i64,
    ) -> PyResult<Handle> {
        let q = self::qos(qos)?;
        let v = convert::to_value(response, "RPC reply")?;
        self.command(|d| d.gw_send_rpc_reply(device, request_id, &v, q))
    }

    #[pyo3(signature = (device, secret_key=None, duration_ms=None, qos=1))]
    fn claim(
        &self,
        device: &str,
        secret_key: Option<String>,
        duration_ms: Option<u64>,
        qos: i64,
    ) -> PyResult<Handle> {
        let q = self::qos(qos)?;
        self.command(|d| d.gw_claim(device, secret_key.as_deref(), duration_ms, q))
    }

    fn subscribe(&self, device: &str, key: &str) -> u32 {
        let mut st = self.shared.state.lock();
        st.core.gw_subscribe_to_attribute(device, key).0
    }

    fn unsubscribe(&self, id: u32) -> bool {
        let mut st = self.shared.state.lock();
        st.core.gw_unsubscribe(SubscriptionId(id))
    }

    fn cancel_request(&self, id: u32) {
        let mut st = self.shared.state.lock();
        st.core.gw_cancel_request(tb_core::RequestId(id));
    }

    fn devices(&self) -> Vec<String> {
        let st = self.shared.state.lock();
        st.core.gw_devices().map(str::to_string).collect()
    }
}

/// A gateway event as the tuple `tb_gateway_mqtt` dispatches on: `("gw_...", ...)`.
pub(crate) fn event_to_py(py: Python<'_>, ev: GatewayEvent) -> PyResult<Py<PyAny>> {
    let s = |v: &str| -> PyResult<Py<PyAny>> { Ok(v.into_pyobject(py)?.into_any().unbind()) };
    let t = match ev {
        GatewayEvent::AttributeUpdate {
            device,
            data,
            subscriptions,
        } => {
            let ids: Vec<u32> = subscriptions.iter().map(|s| s.0).collect();
            PyTuple::new(
                py,
                [
                    s("gw_attributes")?,
                    s(&device)?,
                    convert::map_to_py(py, &data)?,
                    PyList::new(py, ids)?.into_any().unbind(),
                ],
            )?
        }
        GatewayEvent::AttributeResponse { id, device, result } => {
            let (value, timeout) = convert::response_to_py(py, result)?;
            PyTuple::new(
                py,
                [
                    s("gw_attribute_response")?,
                    id.0.into_pyobject(py)?.into_any().unbind(),
                    s(&device)?,
                    value,
                    timeout,
                ],
            )?
        }
        GatewayEvent::RpcRequest { device, data } => PyTuple::new(
            py,
            [
                s("gw_rpc_request")?,
                s(&device)?,
                convert::map_to_py(py, &data)?,
            ],
        )?,
        GatewayEvent::DeviceDisconnected { device, reason } => PyTuple::new(
            py,
            [
                s("gw_device_disconnected")?,
                s(&device)?,
                reason.into_pyobject(py)?.into_any().unbind(),
            ],
        )?,
    };
    Ok(t.into_any().unbind())
}
